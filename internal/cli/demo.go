package cli

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/stage/governance"
	"github.com/lambda-os/lambda-check/internal/stage/plan"
	"github.com/lambda-os/lambda-check/internal/stage/policy"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
	"github.com/lambda-os/lambda-check/internal/stage/upgrades"
	"github.com/lambda-os/lambda-check/internal/statedir"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// DemoCmd is "lambda-check demo".
type DemoCmd struct {
	Dir     string `placeholder:"DIR" help:"Build the sample workspace here (must be empty or absent; default: a new temporary directory, kept)."`
	Modules int    `default:"10" help:"How many Logos module repositories the sample workspace has."`
}

// Help is shown by "lambda-check demo --help".
func (c *DemoCmd) Help() string {
	return `Builds a realistic Logos-like workspace: a superproject with module
submodules under repos/ (each with metadata.json and a flake), local bare
remotes of which some are ahead of their pins, a flake.nix whose inputs follow
a shared SDK, and a flake.lock with one entry drifted from its gitlink (so
policy fails on purpose). Then it tells the whole story: snapshot, policy,
graph, upgrades and proposals; a proposal approved with a demo key made here
and applied; a cycle with verify; an upgrade whose new build crashes, found
by verify and rolled back by heal; and the HTML report. It prints what each
step found and where everything is, and exits 0.

Verify needs a Logos runtime. With a host on PATH (or LAMBDA_CHECK_LOGOS_HOST)
and LAMBDA_CHECK_MODULES_DIR set to built modules, the demo verifies those;
otherwise it uses a SIMULATED runtime, labelled so everywhere: a stand-in host
speaking the March logos_host protocol and stand-in plugins with Qt metadata
but no code (in <dir>/simulated-runtime).`
}

// Run builds the workspace and runs the stages.
func (c *DemoCmd) Run(rt *Runtime) error {
	if c.Modules < 1 || c.Modules > 5000 {
		return errUsage("--modules must be between 1 and 5000, got %d", c.Modules)
	}
	dir := c.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "lambda-check-demo-")
		if err != nil {
			return err
		}
		dir = d
	} else {
		dir = rt.Abs(dir)
	}
	opts := sample.DemoOptions()
	opts.Modules = c.Modules
	if c.Modules < 10 {
		// Keep only the ahead and drift repositories the smaller catalog has.
		opts.Ahead = map[string]int{"logos-capability-module": 1}
		opts.Drift = []string{"logos-liblogos"}
	}
	start := time.Now()
	rt.Logf("building a sample workspace with %d modules in %s", c.Modules, dir)
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return exitcode.Input(fmt.Errorf("demo directory %q is not empty", dir), "give --dir a new or empty directory; nothing in an existing one is overwritten")
	}
	ws, err := sample.Generate(rt.Ctx, dir, opts)
	if err != nil {
		return fmt.Errorf("build demo workspace: %w", err)
	}
	rt.Logf("built in %s: %d repositories, remotes ahead of their pins: %d, lock entries drifted from their gitlinks: %d",
		time.Since(start).Round(time.Millisecond), len(ws.Repos), len(opts.Ahead), len(opts.Drift))

	// The demo's own workspace; a --state-dir the user gave still applies.
	rt.Globals.Workspace = ws.Root
	sd, unlock, err := rt.LockState()
	if err != nil {
		return err
	}
	defer unlock()
	start = time.Now()
	w, err := snapshotLocked(rt, sd, "")
	if err != nil {
		return fmt.Errorf("snapshot of the demo workspace: %w", err)
	}
	snapTook := time.Since(start)

	start = time.Now()
	pcfg, err := policy.LoadConfig(filepath.Join(ws.Root, "policy.json"), false)
	if err != nil {
		return err
	}
	now, err := rt.Clock()
	if err != nil {
		return err
	}
	pw, err := checkPolicy(rt, sd, w.snapshot, w.digest, true, pcfg, now, false, sd.File("policy.json"))
	if err != nil {
		return fmt.Errorf("policy of the demo workspace: %w", err)
	}
	policyTook := time.Since(start)

	start = time.Now()
	gv, err := loadGraph(rt, false, false)
	if err != nil {
		return fmt.Errorf("graph of the demo workspace: %w", err)
	}
	order, err := plan.Run(rt.Ctx, plan.Request{Graph: &gv.Graph, Changes: gv.RootInputs()})
	if err != nil {
		return err
	}
	graphTook := time.Since(start)

	start = time.Now()
	gcfg, ssh, err := rt.Git()
	if err != nil {
		return err
	}
	ures, err := upgrades.Run(rt.Ctx, upgrades.Request{Snapshot: w.snapshot, Store: sd.File("remotes"), Git: gcfg, SSH: ssh})
	if err != nil {
		return fmt.Errorf("upgrades of the demo workspace: %w", err)
	}
	upPath := sd.File("upgrades.json")
	_, upDigest, err := artifact.Write(upPath, &artifact.Envelope[*upgrades.Upgrades]{
		Kind: upgrades.Spec.Kind, SchemaVersion: upgrades.Spec.Version, Producer: rt.Producer(),
		Inputs:  []artifact.Input{{Kind: workspace.SnapshotSpec.Kind, Digest: w.digest}},
		Payload: &ures.Upgrades,
	})
	if err != nil {
		return err
	}
	if err := rt.record(sd, audit.Event{Stage: "upgrades", Inputs: []artifact.Input{{Kind: workspace.SnapshotSpec.Kind, Digest: w.digest}},
		Output: &audit.Output{Kind: upgrades.Spec.Kind, Digest: upDigest, Path: upPath}}); err != nil {
		return err
	}
	upTook := time.Since(start)
	start = time.Now()
	props, err := proposeLocked(rt, sd, w.snapshot, &ures.Upgrades, pcfg, "")
	if err != nil {
		return fmt.Errorf("proposals for the demo workspace: %w", err)
	}
	proposeTook := time.Since(start)

	// Governance: a demo operator key (made here, kept in the state dir),
	// approves the first proposal, which is then applied; the audit log is
	// checkpointed and verified.
	start = time.Now()
	gov, err := demoGovernance(rt, sd, props)
	if err != nil {
		return fmt.Errorf("governance in the demo workspace: %w", err)
	}
	govTook := time.Since(start)

	story, err := runDemoStory(rt, sd, dir, ws, filepath.Join(sd.File("keys"), "demo-operator.key"))
	if err != nil {
		return fmt.Errorf("the demo's cycles: %w", err)
	}

	if rt.Globals.JSON {
		return rt.PrintJSON(struct {
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
			Story     *demoStory        `json:"story"`
		}{ws.Root, ws.Remotes, w.path, w.digest, pw.path, pw.report.Summary, order.Plan.Levels, upPath, props.Outcomes, gov.applied, gov.audit, story})
	}
	rt.Printf("== snapshot (%s)\n", snapTook.Round(time.Microsecond))
	renderSnapshot(rt, w.snapshot)
	rt.Printf("\n== policy (%s)\n", policyTook.Round(time.Microsecond))
	renderPolicy(rt, pw.report)
	rt.Printf("\n== graph (%s)\n", graphTook.Round(time.Microsecond))
	renderGraph(rt, gv, &order.Plan)
	rt.Printf("\n== upgrades (%s)\n", upTook.Round(time.Microsecond))
	renderUpgrades(rt, &ures.Upgrades)
	rt.Printf("\n== propose (%s)\n", proposeTook.Round(time.Microsecond))
	renderOutcomes(rt, props.Outcomes, sd.File("proposals"))
	rt.Printf("\n== governance and audit (%s)\n", govTook.Round(time.Microsecond))
	for _, l := range gov.lines {
		rt.Printf("%s\n", l)
	}
	rt.Printf("\nruntime for verify: %s\n", story.Runtime)
	for _, l := range story.lines {
		if strings.HasPrefix(l, "== ") {
			rt.Printf("\n")
		}
		rt.Printf("%s\n", l)
	}
	rt.Printf("\nreport:    %s\n", story.Report)
	rt.Printf("\nartifacts: %s, %s, %s\n", w.path, pw.path, upPath)
	rt.Printf("workspace: %s\n", ws.Root)
	rt.Printf("remotes:   %s\n", ws.Remotes)
	return demoTryNext(rt, dir, ws, w.path)
}

// demoTryNext prints commands to explore the demo workspace, each runnable
// as printed: the binary is named the way it can be run again (a 'go run'
// binary is gone when the demo ends, so a copy in the demo directory is
// named instead), and only proposals that exist now are named, with their
// state.
func demoTryNext(rt *Runtime, dir string, ws *sample.Workspace, snapPath string) error {
	lc, note, err := demoBinary(rt, dir)
	if err != nil {
		return err
	}
	ls, err := listProposals(rt)
	if err != nil {
		return err
	}
	rt.Printf("\nproposals now:\n")
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
			rt.Printf("  %-10s %s  %s\n", l.Status, filepath.Base(l.Dir), l.Problem)
			continue
		}
		p := l.Proposal
		note := ""
		if rb := rolledBack[p.Submodule+"@"+p.To]; rb != "" && p.Kind == "upgrade" {
			if l.Status == governance.StateApplied {
				note = "  (rolled back by " + rb + ")"
			} else {
				note = "  (the revision that crashed and was rolled back)"
			}
		} else if pending == nil && l.Status == "pending" {
			pending = l
		}
		rt.Printf("  %-10s %s  %s %s → %s%s\n", l.Status, p.ID, p.Submodule, short(p.From), short(p.To), note)
	}
	rt.Printf("\nTry next%s:\n", note)
	rt.Printf("  echo change >> %s\n", filepath.Join(ws.Root, "repos", ws.Repos[2].Name, "README.md"))
	rt.Printf("  %s snapshot -w %s --compare %s\n", lc, ws.Root, snapPath)
	rt.Printf("  %s policy -w %s   # exits 3: the drifted lock entry is there on purpose\n", lc, ws.Root)
	rt.Printf("  %s plan -w %s --input logos-cpp-sdk --input logos-chat-module\n", lc, ws.Root)
	rt.Printf("  %s graph -w %s --format dot > graph.dot   # dot -Tsvg graph.dot > graph.svg, with Graphviz\n", lc, ws.Root)
	rt.Printf("  %s proposals -w %s\n", lc, ws.Root)
	if pending != nil {
		p := pending.Proposal
		rt.Printf("  %s proposals -w %s show %s --patch\n", lc, ws.Root, p.ID)
		rt.Printf("  nix build --no-link '%s#packages.%s.%s'   # needs nix with flakes\n", p.Build.Flake, ws.System, filepath.Base(p.Submodule))
	}
	rt.Printf("  %s governance -w %s status\n", lc, ws.Root)
	rt.Printf("  %s audit -w %s tail\n", lc, ws.Root)
	rt.Printf("  %s cycle -w %s   # exits 3: degraded by the same drift\n", lc, ws.Root)
	rt.Printf("  %s report -w %s --html report.html\n", lc, ws.Root)
	return nil
}

// demoBinary is how the user can run this program again: "lambda-check"
// when that is what PATH finds, else the path of this binary, or, for a
// binary 'go run' built in a temporary directory, a copy kept in the demo
// directory (with a note saying so).
func demoBinary(rt *Runtime, dir string) (string, string, error) {
	self := rt.Env.Self
	if self == "" {
		return "lambda-check", " (after go install ./cmd/lambda-check)", nil
	}
	if p, err := exec.LookPath("lambda-check"); err == nil && sameFile(p, self) {
		return "lambda-check", "", nil
	}
	if !strings.Contains(self, string(filepath.Separator)+"go-build") {
		return shellQuote(self), "", nil
	}
	bin := filepath.Join(dir, "bin", "lambda-check")
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

// demoGov is what the demo's governance step did.
type demoGov struct {
	applied string
	audit   *audit.Report
	lines   []string
}

// demoGovernance makes a demo operator key (approver and checkpoint roles)
// in the state directory with its registry and configuration, approves the
// first proposal with it, applies it, checkpoints the audit log and
// verifies it. The keys are demo keys made on this machine; nothing here is
// a published seed.
func demoGovernance(rt *Runtime, sd *statedir.Dir, props *propose.Result) (*demoGov, error) {
	out := &demoGov{}
	if len(props.Outcomes) == 0 || props.Outcomes[0].Skipped != "" {
		out.lines = append(out.lines, "no proposal to decide on")
		return out, nil
	}
	keyDir := sd.File("keys")
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return nil, err
	}
	k, err := sign.GenerateKey("demo-operator", nil)
	if err != nil {
		return nil, err
	}
	kb, err := sign.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	keyPath := filepath.Join(keyDir, "demo-operator.key")
	if err := artifact.WriteFile(keyPath, kb, 0o600); err != nil {
		return nil, err
	}
	reg, err := artifact.Encode(sign.Registry{SchemaVersion: sign.RegistryVersion, Keys: []sign.Key{
		sign.RegistryKey(k, sign.Scope{Owner: "the demo operator", Roles: []string{sign.RoleApprover, sign.RoleCheckpoint}}),
	}})
	if err != nil {
		return nil, err
	}
	if err := artifact.WriteFile(sd.File("keys.json"), reg, 0o644); err != nil {
		return nil, err
	}
	cfgPath := sd.File("config.json")
	if _, err := os.Stat(cfgPath); err == nil || rt.Globals.Config != "" {
		return nil, fmt.Errorf("the demo's state dir already has a configuration")
	}
	if err := artifact.WriteFile(cfgPath, []byte("{\n  \"schemaVersion\": 1,\n  \"keys\": \"keys.json\",\n  \"governance\": {\"backend\": \"human\"}\n}\n"), 0o644); err != nil {
		return nil, err
	}
	rt.cfg = nil // read the configuration just written

	id := props.Outcomes[0].ID
	env, err := govEnv(rt, sd, true)
	if err != nil {
		return nil, err
	}
	st, err := governance.Record(env, id, governance.Approve, "demo: reviewed the patch", k)
	if err != nil {
		return nil, err
	}
	if err := rt.record(sd, audit.Event{Stage: governance.Approve, Detail: fmt.Sprintf("%s by %s: now %s", id, k.ID, st.State)}); err != nil {
		return nil, err
	}
	out.lines = append(out.lines, fmt.Sprintf("approved %s with the demo key %s: %s", id, k.ID, st.State))
	env, err = govEnv(rt, sd, true)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	sub := &Runtime{Ctx: rt.Ctx, Env: rt.Env, Globals: rt.Globals, cfg: rt.cfg}
	sub.Env.Stdout = &buf
	if err := applyLocked(sub, sd, env, id, false); err != nil {
		return nil, err
	}
	out.lines = append(out.lines, strings.TrimSpace(buf.String()))
	out.applied = id
	cp, err := checkpointLocked(rt, sd, k)
	if err != nil {
		return nil, err
	}
	out.lines = append(out.lines, fmt.Sprintf("audit checkpoint at seq %d signed by %s", cp.Seq, cp.Signer))
	f, err := os.Open(sd.File(auditFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	regParsed, _, err := rt.registry()
	if err != nil {
		return nil, err
	}
	cps, err := audit.ReadCheckpoints(sd.File(checkpointsDir))
	if err != nil {
		return nil, err
	}
	now, _ := rt.Clock()
	rep, err := audit.Verify(f, audit.VerifyOptions{Registry: regParsed, Now: now, Checkpoints: cps})
	if err != nil {
		return nil, err
	}
	out.audit = rep
	if rep.Problem != nil {
		return nil, fmt.Errorf("the demo's audit log does not verify: %v", rep.Problem)
	}
	out.lines = append(out.lines, fmt.Sprintf("audit verify: %d events, head %s; the checkpoint of seq %d is valid in the log and beside it", rep.Events, rep.Head[:19]+"…", cp.Seq))
	out.lines = append(out.lines, fmt.Sprintf("demo key (approver, checkpoint): %s, registry %s", keyPath, sd.File("keys.json")))
	return out, nil
}
