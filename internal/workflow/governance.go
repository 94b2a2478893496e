package workflow

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/logos"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/stage/governance"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
)

// Registry reads the configured key registry; nil and the reason when none
// is configured.
func Registry(e *Env) (*sign.Registry, string, error) {
	p := e.Config.KeysPath()
	if p == "" {
		return nil, "no key registry configured (\"keys\" in the config)", nil
	}
	reg, err := sign.ReadRegistry(p)
	if err != nil {
		return nil, "", exitcode.Input(err, "\"keys\" in the config names the key registry (docs/artifacts.md)")
	}
	return reg, "", nil
}

// Governance assembles what governance derives state from, for the
// workspace as snap shows it (nil: a new snapshot, written when the lock
// is held).
func Governance(ctx context.Context, e *Env, snap *Snap) (governance.Env, error) {
	reg, why, err := Registry(e)
	if err != nil {
		return governance.Env{}, err
	}
	if reg == nil {
		return governance.Env{}, exitcode.Input(errors.New("governance needs a key registry: "+why), "set \"keys\" in the config to the registry of approver keys (docs/governance.md)")
	}
	g := e.Config.Governance
	gc := &governance.Config{Backend: g.Backend, Threshold: g.Threshold, Signers: g.Signers, Program: g.Program,
		ProgramTimeout: e.Config.ProgramTimeout(), Environ: e.Environ}
	if gc.Backend == "" {
		gc.Backend = governance.Human
	}
	if err := gc.Validate(reg); err != nil {
		return governance.Env{}, exitcode.Input(err, "see docs/governance.md")
	}
	if err := e.Open(); err != nil {
		return governance.Env{}, err
	}
	gc.Track = &logos.Tracker{Dir: e.File("running")}
	if snap == nil {
		if e.Held() {
			snap, err = TakeSnapshot(ctx, e, "")
		} else {
			snap, err = CurrentSnapshot(ctx, e)
		}
		if err != nil {
			return governance.Env{}, err
		}
	}
	quarantine, err := quarantineMap(e)
	if err != nil {
		return governance.Env{}, err
	}
	return governance.Env{Proposals: e.File("proposals"), Decisions: e.File("decisions"), Stores: e.File("remotes"),
		Snapshot: snap.Snapshot, Registry: reg, Config: gc, Now: e.Now(), Quarantine: quarantine}, nil
}

// GovernanceError maps governance errors to the exit-code table.
func GovernanceError(err error) error {
	var de *governance.DeciderError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, governance.ErrKey):
		return exitcode.Input(err, "the key registry (\"keys\" in the config) says what each key may sign")
	case errors.Is(err, governance.ErrTransition):
		return exitcode.Input(err, "'lambda-check governance show ID' says why")
	case errors.Is(err, governance.ErrNotClean):
		return exitcode.Input(err, "commit, stash or undo the changes there, or propose again")
	case errors.Is(err, propose.ErrNoProposal):
		return exitcode.Input(err, "'lambda-check governance status' lists them")
	case errors.As(err, &de):
		return &exitcode.FailError{Reason: err.Error()}
	case errors.Is(err, gitrepo.ErrLocked):
		return &exitcode.BusyError{Err: err, Hint: "a git command is working in the workspace: run this again when it is done"}
	}
	return err
}

// GovernanceStates maps each proposal to its governance state, or nil
// when there is no key registry or the state cannot be derived.
func GovernanceStates(ctx context.Context, e *Env, snap *Snap) map[string]string {
	if e.Config.KeysPath() == "" {
		return nil
	}
	genv, err := Governance(ctx, e, snap)
	if err != nil {
		return nil
	}
	states, err := governance.Evaluate(genv)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, s := range states {
		out[s.ID] = s.State
	}
	return out
}

// DecideResult is a decision recorded by a person's key.
type DecideResult struct {
	State *governance.State
	// Repeat, when set, says the same decision was on record already:
	// nothing was done.
	Repeat string
	// Applied, with governance.autoApply, is the apply the decision made.
	Applied *ApplyResult
}

// ApplyResult is what an apply did.
type ApplyResult struct {
	*governance.Applied
	// Repeat, when set, says the proposal was applied already: nothing
	// was done.
	Repeat string
}

// Decision records a person's signed approval or rejection of a proposal;
// with governance.autoApply, the approval that meets the threshold applies
// it.
func Decision(ctx context.Context, e *Env, id, verdict, reason string, k *sign.PrivateKey) (*DecideResult, error) {
	genv, err := Governance(ctx, e, nil)
	if err != nil {
		return nil, err
	}
	st, err := governance.Record(genv, id, verdict, reason, k)
	var done *governance.Done
	if errors.As(err, &done) {
		return &DecideResult{State: st, Repeat: done.What}, nil
	}
	if err != nil {
		return nil, GovernanceError(err)
	}
	if err := e.Record(audit.Event{Stage: verdict, Detail: fmt.Sprintf("%s by %s: now %s", id, k.ID, st.State)}); err != nil {
		return nil, err
	}
	res := &DecideResult{State: st}
	if st.State == governance.StateApproved && e.Config.Governance.AutoApply {
		e.Logf("governance.autoApply: applying %s", id)
		if res.Applied, err = Apply(ctx, e, genv, id, false); err != nil {
			return res, err
		}
	}
	return res, nil
}

// Decided is what the program decider said about one proposal.
type Decided struct {
	ID       string               `json:"id"`
	Decision *governance.Decision `json:"decision,omitempty"`
	Problem  string               `json:"problem,omitempty"`
}

// Decide runs the program backend's decider on the proposals ids (nil:
// every pending one) and files its signed decisions; a decider that does
// not decide leaves the proposal pending and fails the verdict.
func Decide(ctx context.Context, e *Env, snap *Snap, ids []string) ([]Decided, error) {
	genv, err := Governance(ctx, e, snap)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		all, err := governance.Evaluate(genv)
		if err != nil {
			return nil, err
		}
		for _, s := range all {
			if s.State == governance.StatePending {
				ids = append(ids, s.ID)
			}
		}
	}
	var out []Decided
	for _, id := range ids {
		d, err := governance.Decide(ctx, genv, id)
		ev := audit.Event{Stage: "decide"}
		dd := Decided{ID: id, Decision: d}
		if err != nil {
			var de *governance.DeciderError
			if !errors.As(err, &de) {
				return out, GovernanceError(err)
			}
			dd.Problem = err.Error()
			ev.Result, ev.Detail = audit.ResultFail, err.Error()
		} else {
			ev.Detail = fmt.Sprintf("%s: %s by %s", id, d.Verdict, d.Signer)
		}
		out = append(out, dd)
		if err := e.Record(ev); err != nil {
			return out, err
		}
	}
	return out, nil
}

// DecideVerdict fails when the decider left proposals undecided.
func DecideVerdict(ds []Decided) error {
	var failed []string
	for _, d := range ds {
		if d.Problem != "" {
			failed = append(failed, d.ID)
		}
	}
	if len(failed) > 0 {
		return &exitcode.FailError{Reason: fmt.Sprintf("the decider did not decide %s", strings.Join(failed, ", "))}
	}
	return nil
}

// Apply applies an approved proposal and records it; the workspace may
// have moved afterwards, whatever happened: take a new snapshot.
func Apply(ctx context.Context, e *Env, genv governance.Env, id string, noCommit bool) (*ApplyResult, error) {
	res, err := apply(ctx, e, genv, id, noCommit)
	var done *governance.Done
	if errors.As(err, &done) {
		return &ApplyResult{Applied: &res.Applied, Repeat: done.What}, nil
	}
	if err != nil {
		if rerr := e.Record(audit.Event{Stage: "apply", Result: audit.ResultError, Detail: id + ": " + err.Error()}); rerr != nil {
			e.Logf("warning: %v", rerr)
		}
		return nil, GovernanceError(err)
	}
	b, _ := artifact.Encode(res.Applied)
	detail := id + ": committed " + res.Applied.Commit
	if res.Applied.Staged {
		detail = id + ": staged"
	}
	if err := e.Record(audit.Event{Stage: "apply", Output: output("lambda-check/applied", "", b), Detail: detail}); err != nil {
		return nil, err
	}
	if len(res.SkippedHooks) > 0 {
		e.Logf("note: the commit was made in-process: the workspace's %s hooks did not run (the change was checked by policy and approved instead)", strings.Join(res.SkippedHooks, ", "))
	}
	return &ApplyResult{Applied: &res.Applied}, nil
}

// apply runs governance's apply as this environment does it: the user's
// git configuration and ssh, the journal in the state directory, the
// acting user as committer. It records nothing.
func apply(ctx context.Context, e *Env, genv governance.Env, id string, noCommit bool) (*governance.ApplyResult, error) {
	gcfg, ssh, err := e.Git()
	if err != nil {
		return nil, err
	}
	return governance.Apply(ctx, governance.ApplyRequest{Env: genv, ID: id, NoCommit: noCommit, Journal: e.File(ApplyJournal),
		Committer: committer(e), Git: gcfg, SSH: ssh, InsteadOf: e.Config.Upgrades.InsteadOf})
}

// committer commits what lambda-check applies: the acting user.
func committer(e *Env) gitrepo.Signature {
	return gitrepo.Signature{Name: e.Actor, Email: e.Actor}
}
