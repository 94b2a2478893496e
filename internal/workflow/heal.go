package workflow

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/proc"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/stage/governance"
	"github.com/lambda-os/lambda-check/internal/stage/heal"
	"github.com/lambda-os/lambda-check/internal/stage/policy"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
	"github.com/lambda-os/lambda-check/internal/stage/verify"
)

// HealOptions are what heal takes beyond the environment.
type HealOptions struct {
	// Snap is the workspace rollbacks are proposed for; nil takes a new
	// snapshot.
	Snap *Snap
	// Policy is what each rollback is checked against.
	Policy *policy.Config
}

// HealResult is a heal run as written.
type HealResult struct {
	Report *heal.Report
	Written
	// Moved says a rollback was applied: the workspace is not Snap any
	// more.
	Moved bool
}

// Heal finds the modules that regressed since the last verify, proposes
// their rollbacks and, with heal.autoApply, approves, applies, rebuilds
// and verifies again; it writes heal.json and records each regression.
func Heal(ctx context.Context, e *Env, o HealOptions) (*HealResult, error) {
	venv, vb, err := artifact.Read[verify.Report](e.File("verify.json"), verify.Spec)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, exitcode.Input(errors.New("no verify.json: nothing to judge"), "run 'lambda-check verify' first")
	}
	if err != nil {
		return nil, exitcode.Input(fmt.Errorf("read verify.json: %w", err), "")
	}
	history, bad, err := ReadHistory(e.File(HistoryFile))
	if err != nil {
		return nil, exitcode.Input(err, "")
	}
	if bad > 0 {
		e.Logf("warning: %s: %d lines that do not decode (torn by a crash?) were skipped", HistoryFile, bad)
	}
	snap, err := snapshotOr(ctx, e, o.Snap)
	if err != nil {
		return nil, err
	}
	run := artifact.Digest(vb)
	res, err := heal.Run(ctx, heal.Request{Current: &venv.Payload, CurrentRun: run, History: healEntries(history),
		Propose: propose.Request{Snapshot: snap.Snapshot, Dir: e.File("proposals"), Stores: e.File("remotes"), Policy: o.Policy, Producer: e.Producer}})
	if err != nil {
		return nil, err
	}
	rep := &res.Report
	for i := range rep.Regressions {
		r := &rep.Regressions[i]
		ev := audit.Event{Stage: "heal", Result: audit.ResultFail,
			Detail: fmt.Sprintf("regression of %s (%s) at %s; last passed at %s", r.Module, r.Reason, Short(r.Now), Short(r.LastPass))}
		if r.Proposal != "" {
			ev.Detail += "; rollback proposal " + r.Proposal
		} else {
			ev.Detail += "; no rollback: " + r.Problem
		}
		if err := e.Record(ev); err != nil {
			return nil, err
		}
	}
	// A revision a module regressed at is known bad: no upgrade to it is
	// approvable again until an operator clears it.
	if err := quarantineRegressions(e, rep.Regressions); err != nil {
		return nil, err
	}
	moved := false
	if e.Config.Heal.AutoApply {
		if moved, err = autoHeal(ctx, e, rep); err != nil {
			return nil, err
		}
	}
	ev := audit.Event{Stage: "heal", Detail: rep.Verdict}
	if rep.Verdict != "healthy" {
		ev.Result = audit.ResultFail
	}
	w, err := writeArtifact(e, heal.Spec, e.File("heal.json"), []artifact.Input{{Kind: verify.Spec.Kind, Digest: run}}, rep, ev)
	if err != nil {
		return nil, err
	}
	return &HealResult{Report: rep, Written: w, Moved: moved}, nil
}

// HealVerdict fails when a module regressed, healed or not.
func HealVerdict(r *heal.Report) error {
	if r.Verdict != "healthy" {
		return &exitcode.FailError{Reason: fmt.Sprintf("heal: %d regressions", len(r.Regressions))}
	}
	return nil
}

// autoHeal approves each rollback with heal.key, applies it, rebuilds
// with verify.build and verifies again; it says whether anything was
// applied.
func autoHeal(ctx context.Context, e *Env, rep *heal.Report) (bool, error) {
	cfg := e.Config
	k, err := sign.ReadPrivateKey(cfg.Path(cfg.Heal.Key))
	if err != nil {
		return false, exitcode.Input(fmt.Errorf("heal.key: %w", err), "")
	}
	applied := false
	for i := range rep.Regressions {
		r := &rep.Regressions[i]
		if r.Proposal == "" || !r.Approvable {
			continue
		}
		// Each step reads the workspace as it is now: a new snapshot.
		genv, err := Governance(ctx, e, nil)
		if err != nil {
			return applied, err
		}
		st, err := governance.Record(genv, r.Proposal, governance.Approve, "heal.autoApply: roll back "+r.Module, k)
		if done := (*governance.Done)(nil); errors.As(err, &done) {
			err = nil // approved by heal.key before: go on with it
		}
		if err != nil {
			r.Problem = "auto-approval refused: " + err.Error()
			continue
		}
		if err := e.Record(audit.Event{Stage: governance.Approve, Detail: fmt.Sprintf("%s by %s (heal.autoApply): now %s", r.Proposal, k.ID, st.State)}); err != nil {
			return applied, err
		}
		if st.State != governance.StateApproved {
			r.Problem = "auto-approval does not meet the threshold: " + st.Why
			continue
		}
		if genv, err = Governance(ctx, e, nil); err != nil {
			return applied, err
		}
		a, err := applyQuiet(ctx, e, genv, r.Proposal)
		if err != nil {
			r.Problem = "apply: " + err.Error()
			continue
		}
		r.Applied = a.Commit
		applied = true
		if err := e.Record(audit.Event{Stage: "apply", Detail: r.Proposal + ": committed " + a.Commit + " (heal.autoApply)"}); err != nil {
			return applied, err
		}
	}
	if !applied {
		return false, nil
	}
	if b := cfg.Verify.Build; len(b) > 0 {
		cmd := proc.Command(ctx, proc.Options{}, b[0], b[1:]...)
		cmd.Dir = e.Workspace
		out, err := cmd.CombinedOutput()
		if err != nil {
			return true, fmt.Errorf("verify.build after the rollback: %w: %s", err, out)
		}
	}
	again, err := Verify(ctx, e, VerifyOptions{})
	if err != nil {
		return true, err
	}
	rep.Reverify = &again.Report.Summary
	return true, nil
}

// applyQuiet applies as heal does: the apply's own success is recorded by
// the caller with its reason.
func applyQuiet(ctx context.Context, e *Env, genv governance.Env, id string) (*governance.Applied, error) {
	res, err := apply(ctx, e, genv, id, false)
	var done *governance.Done
	if err != nil && !errors.As(err, &done) {
		return nil, err
	}
	return &res.Applied, nil
}
