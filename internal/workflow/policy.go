package workflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/stage/policy"
)

// PolicyOptions are what a policy check takes beyond the environment.
type PolicyOptions struct {
	// Snap is the snapshot to check; nil takes (and writes) a new one.
	Snap *Snap
	// Fresh says Snap was taken just now under the lock (files on disk
	// are then its gitlinks').
	Fresh bool
	// Config is the policy configuration (LoadPolicyConfig).
	Config *policy.Config
	// NoEval leaves flake.nix unevaluated.
	NoEval bool
	// Out is where policy.json goes (default: the state directory).
	Out string
}

// PolicyResult is a policy check as written.
type PolicyResult struct {
	Report *policy.Report
	Written
}

// Policy checks the workspace against the node's rules and writes
// policy.json with its audit event.
func Policy(ctx context.Context, e *Env, o PolicyOptions) (*PolicyResult, error) {
	if o.Snap == nil {
		o.Fresh = true
	}
	snap, err := snapshotOr(ctx, e, o.Snap)
	if err != nil {
		return nil, err
	}
	cachePath := e.File(IntegrityCache)
	req := policy.Request{Snapshot: snap.Snapshot, Config: o.Config, Now: e.asOf(), Trust: e.Now(), NixNote: "--no-eval was given", Fresh: o.Fresh,
		Integrity: readIntegrityCache(e, cachePath)}
	if !o.NoEval {
		req.Nix, req.NixNote = e.Nix()
	}
	res, err := policy.Run(ctx, req)
	if errors.Is(err, policy.ErrLockChanged) {
		return nil, exitcode.Input(err, "take a new snapshot (run without --snapshot)")
	}
	if err != nil {
		return nil, err
	}
	if res.IntegrityReused > 0 {
		e.Logf("lock-integrity: %d of %d locked revisions checked against results of earlier runs (%s)", res.IntegrityReused, len(res.Integrity.Entries), cachePath)
	}
	if cb, err := artifact.Encode(res.Integrity); err == nil {
		if err := artifact.WriteFile(cachePath, cb, 0o644); err != nil {
			e.Logf("warning: lock-integrity results not kept for the next run: %v", err)
		}
	}
	out := firstOf(o.Out, e.File("policy.json"))
	s := res.Report.Summary
	ev := audit.Event{Stage: "policy", Detail: fmt.Sprintf("%s: %d deny, %d warn", s.Verdict, s.Deny, s.Warn)}
	if s.Verdict != "pass" {
		ev.Result = audit.ResultFail
	}
	w, err := writeArtifact(e, policy.Spec, out, snap.Inputs(), &res.Report, ev)
	if err != nil {
		return nil, err
	}
	return &PolicyResult{Report: &res.Report, Written: w}, nil
}

// PolicyVerdict is the error a policy check's verdict makes: a deny
// finding (or, with failOnWarn, a warning) or nothing checked.
func PolicyVerdict(r *policy.Report, failOnWarn bool) error {
	switch s := r.Summary; {
	case s.Verdict == "unknown":
		return &exitcode.FailError{Reason: "policy: " + s.Reason}
	case s.Deny > 0:
		return &exitcode.FailError{Reason: "policy: " + Plural(s.Deny, "deny finding")}
	case failOnWarn && s.Warn > 0:
		return &exitcode.FailError{Reason: fmt.Sprintf("policy: %s (--fail-on warn)", Plural(s.Warn, "warning"))}
	}
	return nil
}

// LoadPolicyConfig reads the policy file p, or <workspace>/policy.json
// when p is empty and it exists, or the defaults.
func LoadPolicyConfig(workspace, p string) (*policy.Config, error) {
	cfgPath, optional := filepath.Join(workspace, "policy.json"), true
	if p != "" {
		cfgPath, optional = p, false
	}
	pcfg, err := policy.LoadConfig(cfgPath, optional)
	if err != nil {
		return nil, exitcode.Input(err, "docs/policy.md describes the file; 'lambda-check policy --rules' lists the rules")
	}
	return pcfg, nil
}

// readIntegrityCache reads lock-integrity's earlier results; an unreadable
// cache is ignored (everything is recomputed), never trusted in part.
func readIntegrityCache(e *Env, p string) *policy.IntegrityCache {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	var c policy.IntegrityCache
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || c.SchemaVersion != policy.IntegrityCacheVersion {
		e.Logf("warning: ignoring %s (unreadable or another version); recomputing", p)
		return nil
	}
	return &c
}

// Plural is "1 thing" or "N things".
func Plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
