package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/stage/policy"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/statedir"
	"github.com/lambda-os/lambda-check/internal/workspace"
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
	if c.Snapshot == "" {
		if err := snapshot.CheckWorkspace(rt.WorkspaceDir()); err != nil {
			return err
		}
	}
	pcfg, err := loadPolicyConfig(rt, c.Policy)
	if err != nil {
		return err
	}
	now, err := rt.Clock()
	if err != nil {
		return err
	}
	sd, unlock, err := rt.LockState()
	if err != nil {
		return err
	}
	defer unlock()

	fresh := c.Snapshot == ""
	snap, snapDigest, err := snapshotFor(rt, sd, c.Snapshot)
	if err != nil {
		return err
	}
	out := sd.File("policy.json")
	if c.Out != "" {
		out = rt.Abs(c.Out)
	}
	pw, err := checkPolicy(rt, sd, snap, snapDigest, fresh, pcfg, now, c.NoEval, out)
	if err != nil {
		return err
	}
	rep, b, digest := pw.report, pw.bytes, pw.digest
	if rt.Globals.JSON {
		if _, err := rt.Env.Stdout.Write(b); err != nil {
			return err
		}
	} else {
		renderPolicy(rt, rep)
		rt.Logf("wrote %s (%s)", out, digest)
	}
	switch {
	case rep.Summary.Verdict == "unknown":
		return &exitcode.FailError{Reason: "policy: " + rep.Summary.Reason}
	case rep.Summary.Deny > 0:
		return &exitcode.FailError{Reason: fmt.Sprintf("policy: %s", plural(rep.Summary.Deny, "deny finding"))}
	case c.FailOn == "warn" && rep.Summary.Warn > 0:
		return &exitcode.FailError{Reason: fmt.Sprintf("policy: %s (--fail-on warn)", plural(rep.Summary.Warn, "warning"))}
	}
	return nil
}

// policyWritten is a policy artifact as written.
type policyWritten struct {
	report       *policy.Report
	bytes        []byte
	path, digest string
}

// checkPolicy runs the policy stage over a snapshot and writes the
// artifact; the caller holds the state lock.
func checkPolicy(rt *Runtime, sd *statedir.Dir, snap *workspace.Snapshot, snapDigest string, fresh bool, cfg *policy.Config, now time.Time, noEval bool, out string) (*policyWritten, error) {
	cachePath := sd.File(integrityCacheFile)
	req := policy.Request{Snapshot: snap, Config: cfg, Now: now, NixNote: "--no-eval was given", Fresh: fresh,
		Integrity: readIntegrityCache(rt, cachePath)}
	if !noEval {
		req.Nix, req.NixNote = rt.Nix()
	}
	res, err := policy.Run(rt.Ctx, req)
	if errors.Is(err, policy.ErrLockChanged) {
		return nil, exitcode.Input(err, "take a new snapshot (run without --snapshot)")
	}
	if err != nil {
		return nil, err
	}
	if res.IntegrityReused > 0 {
		rt.Logf("lock-integrity: %d of %d locked revisions checked against results of earlier runs (%s)", res.IntegrityReused, len(res.Integrity.Entries), cachePath)
	}
	if cb, err := artifact.Encode(res.Integrity); err == nil {
		if err := artifact.WriteFile(cachePath, cb, 0o644); err != nil {
			rt.Logf("warning: lock-integrity results not kept for the next run: %v", err)
		}
	}
	b, digest, err := artifact.Write(out, &artifact.Envelope[*policy.Report]{
		Kind: policy.Spec.Kind, SchemaVersion: policy.Spec.Version, Producer: rt.Producer(),
		Inputs:  []artifact.Input{{Kind: workspace.SnapshotSpec.Kind, Digest: snapDigest}},
		Payload: &res.Report,
	})
	if err != nil {
		return nil, err
	}
	result := audit.ResultOK
	if res.Report.Summary.Verdict != "pass" {
		result = audit.ResultFail
	}
	if err := rt.record(sd, audit.Event{Stage: "policy", Inputs: []artifact.Input{{Kind: workspace.SnapshotSpec.Kind, Digest: snapDigest}},
		Output: output(policy.Spec.Kind, out, b), Result: result,
		Detail: fmt.Sprintf("%s: %d deny, %d warn", res.Report.Summary.Verdict, res.Report.Summary.Deny, res.Report.Summary.Warn)}); err != nil {
		return nil, err
	}
	return &policyWritten{report: &res.Report, bytes: b, path: out, digest: digest}, nil
}

// integrityCacheFile keeps lock-integrity's results in the state
// directory: recomputing a narHash means hashing a whole tree, and a
// commit's never changes.
const integrityCacheFile = "integrity-cache.json"

// readIntegrityCache reads lock-integrity's earlier results; an unreadable
// cache is ignored (everything is recomputed), never trusted in part.
func readIntegrityCache(rt *Runtime, p string) *policy.IntegrityCache {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	var c policy.IntegrityCache
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || c.SchemaVersion != policy.IntegrityCacheVersion {
		rt.Logf("warning: ignoring %s (unreadable or another version); recomputing", p)
		return nil
	}
	return &c
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

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
