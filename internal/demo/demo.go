// Package demo is "lambda-check demo": it builds a realistic Logos-like
// workspace with the sample generator and tells the whole story on it
// through the workflows, as an operator would run them: snapshot, policy,
// graph, upgrades and proposals; a proposal approved with a demo key and
// applied; cycles with verify (on the real runtime when given, else on a
// SIMULATED one, said so everywhere); an upgrade whose build crashes,
// rolled back by heal; and the HTML report. It renders nothing: the
// command line prints what it returns.
package demo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/config"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/stage/governance"
	"github.com/lambda-os/lambda-check/internal/stage/plan"
	"github.com/lambda-os/lambda-check/internal/stage/policy"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
	"github.com/lambda-os/lambda-check/internal/stage/upgrades"
	"github.com/lambda-os/lambda-check/internal/workflow"
)

// Options are the demo's.
type Options struct {
	// Dir is where the demo is built (new or empty).
	Dir string
	// Modules is how many module repositories the workspace has.
	Modules int
	// StateDirGiven keeps the caller's state directory; otherwise it is
	// the demo workspace's own. ConfigGiven says a configuration file was
	// given (the demo writes its own, so it refuses).
	StateDirGiven, ConfigGiven bool
	// Self runs this program again (the simulated runtime needs it).
	Self string
	// Host and ModulesDir, when both are set, are a real runtime to
	// verify with.
	Host, ModulesDir string
	// LockTimeout is how long to wait for the state directory's lock.
	LockTimeout time.Duration
}

// Result is what the demo did, for people and (the exported JSON) for
// machines.
type Result struct {
	Workspace string            `json:"workspace"`
	Remotes   string            `json:"remotes"`
	Snapshot  string            `json:"snapshot"`
	Digest    string            `json:"digest"`
	Policy    string            `json:"policy"`
	Summary   policy.Summary    `json:"policySummary"`
	Levels    [][]plan.Step     `json:"order"`
	Upgrades  string            `json:"upgrades"`
	Proposals []propose.Outcome `json:"proposals"`
	Applied   string            `json:"applied"`
	Audit     *audit.Report     `json:"audit"`
	Story     *Story            `json:"story"`

	// What each step found, for rendering.
	Snap         *workflow.Snap           `json:"-"`
	PolicyReport *policy.Report           `json:"-"`
	Graph        *plan.GraphView          `json:"-"`
	Order        *plan.Plan               `json:"-"`
	Found        *upgrades.Upgrades       `json:"-"`
	ProposalsDir string                   `json:"-"`
	Took         map[string]time.Duration `json:"-"`
	// Governance says what the governance step did, a line each.
	Governance []string `json:"-"`
	// Now lists the proposals at the end, a line each; TryNext the
	// commands to explore further, runnable as printed, after its note.
	Now         []string `json:"-"`
	TryNextNote string   `json:"-"`
	TryNext     []string `json:"-"`
}

// Run builds the demo workspace in o.Dir and tells the story; e is the
// environment the demo's own workspace and state directory go into.
func Run(ctx context.Context, e *workflow.Env, o Options) (*Result, error) {
	if o.Modules < 1 || o.Modules > 5000 {
		return nil, &exitcode.UsageError{Err: fmt.Errorf("--modules must be between 1 and 5000, got %d", o.Modules)}
	}
	if ents, err := os.ReadDir(o.Dir); err == nil && len(ents) > 0 {
		return nil, exitcode.Input(fmt.Errorf("demo directory %q is not empty", o.Dir), "give --dir a new or empty directory; nothing in an existing one is overwritten")
	}
	opts := sample.DemoOptions()
	opts.Modules = o.Modules
	if o.Modules < 10 {
		// Keep only the ahead and drift repositories the smaller catalog has.
		opts.Ahead = map[string]int{"logos-capability-module": 1}
		opts.Drift = []string{"logos-liblogos"}
	}
	start := time.Now()
	e.Logf("building a sample workspace with %d modules in %s", o.Modules, o.Dir)
	ws, err := sample.Generate(ctx, o.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("build demo workspace: %w", err)
	}
	e.Logf("built in %s: %d repositories, remotes ahead of their pins: %d, lock entries drifted from their gitlinks: %d",
		time.Since(start).Round(time.Millisecond), len(ws.Repos), len(opts.Ahead), len(opts.Drift))

	// The demo's own workspace; a state directory the user gave still
	// applies.
	e.Workspace = ws.Root
	if !o.StateDirGiven {
		e.StateDir = filepath.Join(ws.Root, ".lambda-check")
	}
	release, err := e.Lock(ctx, o.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer release()
	res := &Result{Workspace: ws.Root, Remotes: ws.Remotes, ProposalsDir: e.File("proposals"), Took: map[string]time.Duration{}}
	timed := func(name string, f func() error) error {
		t := time.Now()
		err := f()
		res.Took[name] = time.Since(t)
		if err != nil {
			return fmt.Errorf("%s of the demo workspace: %w", name, err)
		}
		return nil
	}
	var pcfg *policy.Config
	steps := []struct {
		name string
		run  func() error
	}{
		{"snapshot", func() (err error) { res.Snap, err = workflow.TakeSnapshot(ctx, e, ""); return }},
		{"policy", func() error {
			var err error
			if pcfg, err = policy.LoadConfig(filepath.Join(ws.Root, "policy.json"), false); err != nil {
				return err
			}
			p, err := workflow.Policy(ctx, e, workflow.PolicyOptions{Snap: res.Snap, Fresh: true, Config: pcfg})
			if err == nil {
				res.PolicyReport, res.Policy, res.Summary = p.Report, p.Path, p.Report.Summary
			}
			return err
		}},
		{"graph", func() (err error) {
			if res.Graph, err = workflow.Graph(ctx, e, workflow.GraphOptions{}); err != nil {
				return err
			}
			res.Order, err = workflow.Order(ctx, res.Graph)
			return
		}},
		{"upgrades", func() error {
			u, err := workflow.Upgrades(ctx, e, workflow.UpgradesOptions{Snap: res.Snap})
			if err == nil {
				res.Found, res.Upgrades = u.Upgrades, u.Path
			}
			return err
		}},
		{"propose", func() error {
			p, err := workflow.Propose(ctx, e, workflow.ProposeOptions{Snap: res.Snap, Upgrades: &workflow.UpgradesResult{Upgrades: res.Found}, Policy: pcfg})
			if err == nil {
				res.Proposals = p.Outcomes
			}
			return err
		}},
		{"governance", func() error { return demoGovernance(ctx, e, o, res) }},
	}
	for _, s := range steps {
		if err := timed(s.name, s.run); err != nil {
			return nil, err
		}
	}
	res.Snapshot, res.Digest, res.Levels = res.Snap.Path, res.Snap.Digest, res.Order.Levels
	if res.Story, err = runStory(ctx, e, o, ws, filepath.Join(e.File("keys"), "demo-operator.key")); err != nil {
		return nil, fmt.Errorf("the demo's cycles: %w", err)
	}
	if err := tryNext(ctx, e, o, ws, res); err != nil {
		return nil, err
	}
	return res, nil
}

// demoGovernance makes a demo operator key (approver and checkpoint roles)
// in the state directory with its registry and configuration, approves the
// first proposal with it, applies it, checkpoints the audit log and
// verifies it. The keys are demo keys made on this machine; nothing here is
// a published seed.
func demoGovernance(ctx context.Context, e *workflow.Env, o Options, res *Result) error {
	if len(res.Proposals) == 0 || res.Proposals[0].Skipped != "" {
		res.Governance = append(res.Governance, "no proposal to decide on")
		return nil
	}
	keyDir := e.File("keys")
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return err
	}
	k, err := sign.GenerateKey("demo-operator", nil)
	if err != nil {
		return err
	}
	kb, err := sign.MarshalPrivateKey(k)
	if err != nil {
		return err
	}
	keyPath := filepath.Join(keyDir, "demo-operator.key")
	if err := artifact.WriteFile(keyPath, kb, 0o600); err != nil {
		return err
	}
	reg, err := artifact.Encode(sign.Registry{SchemaVersion: sign.RegistryVersion, Keys: []sign.Key{
		sign.RegistryKey(k, sign.Scope{Owner: "the demo operator", Roles: []string{sign.RoleApprover, sign.RoleCheckpoint}}),
	}})
	if err != nil {
		return err
	}
	if err := artifact.WriteFile(e.File("keys.json"), reg, 0o644); err != nil {
		return err
	}
	if _, err := os.Stat(e.File("config.json")); err == nil || o.ConfigGiven {
		return fmt.Errorf("the demo's state dir already has a configuration")
	}
	if err := writeConfig(e, map[string]any{"schemaVersion": 1, "keys": "keys.json", "governance": map[string]any{"backend": "human"}}); err != nil {
		return err
	}
	id := res.Proposals[0].ID
	d, err := workflow.Decision(ctx, e, id, governance.Approve, "demo: reviewed the patch", k)
	if err != nil {
		return err
	}
	res.Governance = append(res.Governance, fmt.Sprintf("approved %s with the demo key %s: %s", id, k.ID, d.State.State))
	a, err := apply(ctx, e, id)
	if err != nil {
		return err
	}
	res.Governance = append(res.Governance, a)
	res.Applied = id
	cp, err := workflow.Checkpoint(e, k)
	if err != nil {
		return err
	}
	res.Governance = append(res.Governance, fmt.Sprintf("audit checkpoint at seq %d signed by %s", cp.Seq, cp.Signer))
	v, err := workflow.AuditVerify(ctx, e, "", "")
	if err != nil {
		return err
	}
	res.Audit = v.Report
	if v.Report.Problem != nil {
		return fmt.Errorf("the demo's audit log does not verify: %v", v.Report.Problem)
	}
	res.Governance = append(res.Governance,
		fmt.Sprintf("audit verify: %d events, head %s; the checkpoint of seq %d is valid in the log and beside it", v.Report.Events, v.Report.Head[:19]+"…", cp.Seq),
		fmt.Sprintf("demo key (approver, checkpoint): %s, registry %s", keyPath, e.File("keys.json")))
	return nil
}

// apply applies an approved proposal and says what it did, as
// 'governance apply' does.
func apply(ctx context.Context, e *workflow.Env, id string) (string, error) {
	genv, err := workflow.Governance(ctx, e, nil)
	if err != nil {
		return "", err
	}
	a, err := workflow.Apply(ctx, e, genv, id, false)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("applied %s: commit %s (approved by %s)", id, a.Commit, strings.Join(a.Signers, ", ")), nil
}

// writeConfig writes the demo's configuration into the state directory
// and makes it the environment's.
func writeConfig(e *workflow.Env, cfg map[string]any) error {
	b, err := artifact.Encode(cfg)
	if err != nil {
		return err
	}
	p := e.File("config.json")
	if err := artifact.WriteFile(p, b, 0o644); err != nil {
		return err
	}
	c, err := config.Load(p, false)
	if err != nil {
		return err
	}
	e.Config = c
	return nil
}

// tryNext lists the proposals at the end and the commands to explore the
// demo workspace, each runnable as printed: the binary is named the way it
// can be run again (a 'go run' binary is gone when the demo ends, so a
// copy in the demo directory is named instead), and only proposals that
// exist now are named, with their state.
func tryNext(ctx context.Context, e *workflow.Env, o Options, ws *sample.Workspace, res *Result) error {
	lc, note, err := binary(o)
	if err != nil {
		return err
	}
	ls, err := workflow.Proposals(ctx, e, nil)
	if err != nil {
		return err
	}
	var pending *propose.Listed
	rolledBack := map[string]string{} // submodule@to → the rollback that undid it
	for i := range ls {
		if p := ls[i].Proposal; p != nil && p.Kind == "rollback" && ls[i].Status == governance.StateApplied {
			rolledBack[p.Submodule+"@"+p.From] = p.ID
		}
	}
	for i := range ls {
		l := &ls[i]
		if l.Proposal == nil {
			res.Now = append(res.Now, fmt.Sprintf("%-10s %s  %s", l.Status, filepath.Base(l.Dir), l.Problem))
			continue
		}
		p := l.Proposal
		what := ""
		if rb := rolledBack[p.Submodule+"@"+p.To]; rb != "" && p.Kind == "upgrade" {
			if l.Status == governance.StateApplied {
				what = "  (rolled back by " + rb + ")"
			} else {
				what = "  (the revision that crashed and was rolled back)"
			}
		} else if pending == nil && l.Status == "pending" {
			pending = l
		}
		res.Now = append(res.Now, fmt.Sprintf("%-10s %s  %s %s → %s%s", l.Status, p.ID, p.Submodule, workflow.Short(p.From), workflow.Short(p.To), what))
	}
	res.TryNextNote = note
	w := ws.Root
	t := []string{
		"echo change >> " + filepath.Join(ws.Root, "repos", ws.Repos[2].Name, "README.md"),
		fmt.Sprintf("%s snapshot -w %s --compare %s", lc, w, res.Snapshot),
		fmt.Sprintf("%s policy -w %s   # exits 3: the drifted lock entry is there on purpose", lc, w),
		fmt.Sprintf("%s plan -w %s --input logos-cpp-sdk --input logos-chat-module", lc, w),
		fmt.Sprintf("%s graph -w %s --format dot > graph.dot   # dot -Tsvg graph.dot > graph.svg, with Graphviz", lc, w),
		fmt.Sprintf("%s proposals -w %s", lc, w),
	}
	if pending != nil {
		p := pending.Proposal
		t = append(t, fmt.Sprintf("%s proposals -w %s show %s --patch", lc, w, p.ID),
			fmt.Sprintf("nix build --no-link '%s#packages.%s.%s'   # needs nix with flakes", p.Build.Flake, ws.System, filepath.Base(p.Submodule)))
	}
	res.TryNext = append(t,
		fmt.Sprintf("%s governance -w %s status", lc, w),
		fmt.Sprintf("%s audit -w %s tail", lc, w),
		fmt.Sprintf("%s cycle -w %s   # exits 3: degraded by the same drift", lc, w),
		fmt.Sprintf("%s report -w %s --html report.html", lc, w))
	return nil
}

// binary is how the user can run this program again: "lambda-check" when
// that is what PATH finds, else the path of this binary, or, for a binary
// 'go run' built in a temporary directory, a copy kept in the demo
// directory (with a note saying so).
func binary(o Options) (string, string, error) {
	self := o.Self
	if self == "" {
		return "lambda-check", " (after go install ./cmd/lambda-check)", nil
	}
	if p, err := exec.LookPath("lambda-check"); err == nil && sameFile(p, self) {
		return "lambda-check", "", nil
	}
	if !strings.Contains(self, string(filepath.Separator)+"go-build") {
		return shellQuote(self), "", nil
	}
	bin := filepath.Join(o.Dir, "bin", "lambda-check")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", "", err
	}
	if err := copyExecutable(self, bin); err != nil {
		return "", "", fmt.Errorf("keep a copy of lambda-check for the commands below: %w", err)
	}
	return shellQuote(bin), " (with the copy of this 'go run' binary kept in the demo directory; or go install ./cmd/lambda-check and call lambda-check)", nil
}

func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// shellQuote quotes a path for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
