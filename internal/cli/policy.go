package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/stage/policy"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/workflow"
)

// PolicyCmd is "lambda-check policy".
type PolicyCmd struct {
	Policy   string `placeholder:"FILE" help:"The policy configuration (default: <workspace>/policy.json when it exists, else every rule's defaults)."`
	Snapshot string `placeholder:"FILE" help:"Check this snapshot artifact instead of taking a new snapshot."`
	FailOn   string `enum:"deny,warn" default:"deny" help:"Exit 3 on deny findings only (deny), or on warnings too (warn)."`
	NoEval   bool   `help:"Do not evaluate flake.nix's inputs with Nix; check flake.lock alone."`
	Out      string `placeholder:"FILE" help:"Write the artifact here instead of <state-dir>/policy.json."`
	Rules    bool   `help:"List the rules with their defaults and exit."`
}

// Help is shown by "lambda-check policy --help".
func (c *PolicyCmd) Help() string {
	return `Checks the workspace against the node's rules and writes policy.json: one
finding per problem, with its rule, severity (deny or warn), subject
(submodule, input, module or path), what is wrong and what to do. Among
the rules: a gitlink that differs from the flake.lock pin of the same
repository (lock-drift), submodules not clean at their gitlinks, inputs
locked to local paths or forks, inputs with their own nixpkgs, lock entries
whose narHash does not match the repository, unsigned module metadata, and
messaging modules without RLN. 'lambda-check policy --rules' lists them all;
docs/policy.md documents each rule, its options and the configuration file.

Unless --snapshot is given, a new snapshot is taken (and written) first.
Exit 3 when a deny finding exists (or a warning, with --fail-on warn).`
}

// Run checks the policy.
func (c *PolicyCmd) Run(rt *Runtime) error {
	if c.Rules {
		return c.listRules(rt)
	}
	o := workflow.PolicyOptions{NoEval: c.NoEval}
	if c.Snapshot == "" {
		if err := snapshot.CheckWorkspace(rt.WorkspaceDir()); err != nil {
			return err
		}
	}
	var err error
	if o.Config, err = workflow.LoadPolicyConfig(rt.WorkspaceDir(), absIf(rt, c.Policy)); err != nil {
		return err
	}
	if c.Snapshot != "" {
		if o.Snap, err = workflow.ReadSnapshot(rt.Abs(c.Snapshot)); err != nil {
			return err
		}
	}
	if o.Out, err = outFile(rt, c.Out); err != nil {
		return err
	}
	e, release, err := rt.Lock()
	if err != nil {
		return err
	}
	defer release()
	res, err := workflow.Policy(rt.Ctx, e, o)
	if err != nil {
		return err
	}
	if rt.Globals.JSON {
		if err := rt.Print(res.Bytes); err != nil {
			return err
		}
	} else {
		renderPolicy(rt, res.Report)
		rt.Logf("wrote %s (%s)", res.Path, res.Digest)
	}
	return workflow.PolicyVerdict(res.Report, c.FailOn == "warn")
}

// absIf is the absolute path of a flag's file, or "" when not given.
func absIf(rt *Runtime, p string) string {
	if p == "" {
		return ""
	}
	return rt.Abs(p)
}

// outFile is an --out FILE made absolute and checked before any work: its
// directory must exist and it must not be a directory (bad input, 82).
func outFile(rt *Runtime, p string) (string, error) {
	if p == "" {
		return "", nil
	}
	abs := rt.Abs(p)
	if st, err := os.Stat(abs); err == nil && st.IsDir() {
		return "", exitcode.Input(fmt.Errorf("--out %s is a directory", p), "give a file name")
	}
	if st, err := os.Stat(filepath.Dir(abs)); err != nil || !st.IsDir() {
		return "", exitcode.Input(fmt.Errorf("--out %s: the directory %s does not exist", p, filepath.Dir(abs)), "create it, or write elsewhere")
	}
	return abs, nil
}

func (c *PolicyCmd) listRules(rt *Runtime) error {
	rs := policy.Rules()
	if rt.Globals.JSON {
		type rule struct {
			ID       string          `json:"id"`
			Summary  string          `json:"summary"`
			Enabled  bool            `json:"enabled"`
			Severity policy.Severity `json:"severity"`
			Options  any             `json:"options"`
		}
		out := make([]rule, len(rs))
		for i, r := range rs {
			out[i] = rule(r)
		}
		return rt.PrintJSON(out)
	}
	for _, r := range rs {
		state := "on "
		if !r.Enabled {
			state = "off"
		}
		rt.Printf("%-16s %s %-4s  %s\n", r.ID, state, r.Severity, r.Summary)
	}
	return nil
}

func renderPolicy(rt *Runtime, r *policy.Report) {
	enabled := 0
	for _, x := range r.Rules {
		if x.Enabled {
			enabled++
		}
	}
	rt.Printf("policy: %s — %d deny, %d warn (%d of %d rules enabled)\n", r.Summary.Verdict, r.Summary.Deny, r.Summary.Warn, enabled, len(r.Rules))
	for _, f := range r.Findings {
		rt.Printf("  %-4s  %-15s %s %s: %s\n", f.Severity, f.Rule, f.Subject.Kind, f.Subject.Name, f.Message)
		for i, d := range f.Details {
			if i == 10 && len(f.Details) > 11 {
				rt.Printf("        %15s   and %d more (policy.json lists them)\n", "", len(f.Details)-10)
				break
			}
			rt.Printf("        %15s   %s\n", "", d)
		}
		if f.Hint != "" {
			rt.Printf("        %15s hint: %s\n", "", f.Hint)
		}
	}
	if !r.FlakeNix.Evaluated {
		rt.Logf("flake.nix not evaluated (%s): only flake.lock was checked", r.FlakeNix.Note)
	}
}
