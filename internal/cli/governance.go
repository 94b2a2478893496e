package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/stage/governance"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/statedir"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// GovernanceCmd is "lambda-check governance".
type GovernanceCmd struct {
	Status       GovStatusCmd       `cmd:"" default:"withargs" aliases:"list" help:"List proposals with their governance state."`
	Show         GovShowCmd         `cmd:"" help:"Show one proposal's state: who approved, who is missing, what was ignored."`
	Approve      GovApproveCmd      `cmd:"" help:"Approve a proposal with your key."`
	Reject       GovRejectCmd       `cmd:"" help:"Reject a proposal with your key."`
	Decide       GovDecideCmd       `cmd:"" help:"Run the program backend's decider on pending proposals."`
	Apply        GovApplyCmd        `cmd:"" help:"Apply an approved proposal: checkout, gitlink and flake.lock in one commit."`
	SignDecision GovSignDecisionCmd `cmd:"" name:"sign-decision" help:"Sign a decision on the proposal.json read from stdin (for program deciders)."`
}

// govEnv assembles what governance derives state from; the snapshot is
// taken now (and written when the lock is held).
func govEnv(rt *Runtime, sd *statedir.Dir, locked bool) (governance.Env, error) {
	cfg, err := rt.Config()
	if err != nil {
		return governance.Env{}, err
	}
	reg, why, err := rt.registry()
	if err != nil {
		return governance.Env{}, err
	}
	if reg == nil {
		return governance.Env{}, exitcode.Input(errors.New("governance needs a key registry: "+why), "set \"keys\" in the config to the registry of approver keys (docs/governance.md)")
	}
	g := cfg.Governance
	gc := &governance.Config{Backend: g.Backend, Threshold: g.Threshold, Signers: g.Signers, Program: g.Program}
	if gc.Backend == "" {
		gc.Backend = governance.Human
	}
	if g.ProgramTimeout != "" {
		gc.ProgramTimeout, _ = time.ParseDuration(g.ProgramTimeout)
	}
	if err := gc.Validate(reg); err != nil {
		return governance.Env{}, exitcode.Input(err, "see docs/governance.md")
	}
	now, err := rt.Clock()
	if err != nil {
		return governance.Env{}, err
	}
	ws := rt.WorkspaceDir()
	if err := snapshot.CheckWorkspace(ws); err != nil {
		return governance.Env{}, err
	}
	var snap *workspace.Snapshot
	if locked {
		w, err := snapshotLocked(rt, sd, "")
		if err != nil {
			return governance.Env{}, err
		}
		snap = w.snapshot
	} else if rt.snaps != nil && rt.snaps.w != nil {
		snap = rt.snaps.w.snapshot // the cycle's
	} else {
		res, err := snapshot.Run(rt.Ctx, snapshot.Request{Workspace: ws, Exclude: []string{sd.Path}})
		if err != nil {
			return governance.Env{}, err
		}
		snap = &res.Snapshot
	}
	return governance.Env{Proposals: sd.File("proposals"), Decisions: sd.File("decisions"), Stores: sd.File("remotes"),
		Snapshot: snap, Registry: reg, Config: gc, Now: now}, nil
}

// govError maps governance errors to the exit-code table.
func govError(err error) error {
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
	}
	return err
}

// GovStatusCmd is "lambda-check governance status".
type GovStatusCmd struct {
	State string `placeholder:"STATE" help:"Only proposals in this state (pending, approved, rejected, applied, stale, superseded, blocked, invalid)."`
}

// Run lists the states.
func (c *GovStatusCmd) Run(rt *Runtime) error {
	sd, err := statedir.Open(rt.StateDirPath())
	if err != nil {
		return err
	}
	env, err := govEnv(rt, sd, false)
	if err != nil {
		return err
	}
	all, err := governance.Evaluate(env)
	if err != nil {
		return err
	}
	var out []governance.State
	for _, s := range all {
		if c.State == "" || s.State == c.State {
			out = append(out, s)
		}
	}
	if rt.Globals.JSON {
		return rt.PrintJSON(struct {
			Proposals []governance.State `json:"proposals"`
		}{nonNil(out)})
	}
	if len(out) == 0 {
		rt.Printf("no proposals\n")
		return nil
	}
	for _, s := range out {
		rt.Printf("%-10s %s  %s  %d/%d approvals  %s\n", s.State, s.ID, s.Submodule, len(s.Approvals), s.Threshold, s.Why)
	}
	return nil
}

// GovShowCmd is "lambda-check governance show".
type GovShowCmd struct {
	ID string `arg:"" help:"The proposal's id."`
}

// Run shows one state.
func (c *GovShowCmd) Run(rt *Runtime) error {
	sd, err := statedir.Open(rt.StateDirPath())
	if err != nil {
		return err
	}
	env, err := govEnv(rt, sd, false)
	if err != nil {
		return err
	}
	st, err := governance.EvaluateOne(env, c.ID)
	if err != nil {
		return govError(err)
	}
	if rt.Globals.JSON {
		return rt.PrintJSON(st)
	}
	renderState(rt, st)
	return nil
}

func renderState(rt *Runtime, st *governance.State) {
	rt.Printf("proposal %s (%s): %s", st.ID, st.Submodule, st.State)
	if st.Why != "" {
		rt.Printf(" (%s)", st.Why)
	}
	rt.Printf("\n  backend %s: %d of %d approvals; keys that decide: %s\n", st.Backend, len(st.Approvals), st.Threshold, strings.Join(st.Eligible, ", "))
	for _, s := range st.Approvals {
		rt.Printf("  approved by %s %s at %s %s\n", s.Key, paren(s.Owner), s.Time, s.Reason)
	}
	for _, s := range st.Rejects {
		rt.Printf("  rejected by %s %s at %s %s\n", s.Key, paren(s.Owner), s.Time, s.Reason)
	}
	if st.Missing > 0 && (st.State == governance.StatePending) {
		rt.Printf("  missing: %d more approval(s)\n", st.Missing)
	}
	for _, i := range st.Ignored {
		rt.Printf("  ignored: %s\n", i)
	}
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}

// GovDecisionCmd is what approve and reject take.
type GovDecisionCmd struct {
	ID     string `arg:"" help:"The proposal's id."`
	Key    string `required:"" placeholder:"FILE" help:"Your private key file (mode 0600); never on the command line."`
	Reason string `placeholder:"TEXT" help:"Why, for the record."`
}

// GovApproveCmd is "lambda-check governance approve".
type GovApproveCmd struct{ GovDecisionCmd }

// Run records an approval.
func (c *GovApproveCmd) Run(rt *Runtime) error { return c.decide(rt, governance.Approve) }

// GovRejectCmd is "lambda-check governance reject".
type GovRejectCmd struct{ GovDecisionCmd }

// Run records a rejection.
func (c *GovRejectCmd) Run(rt *Runtime) error { return c.decide(rt, governance.Reject) }

// Help is shown by "lambda-check governance approve --help".
func (c *GovApproveCmd) Help() string {
	return `Signs an approval with your key and files it with the proposal. The record
is bound to the proposal's digest (all its files) and base, so it cannot be
replayed onto another proposal or survive a change to this one. Refused when
the proposal is not pending, when your key would not count (not in the
registry, no approver role, expired, not among the signers), or when you
already decided. With governance.autoApply, the approval that meets the
threshold applies the proposal.`
}

func (c *GovDecisionCmd) decide(rt *Runtime, verdict string) error {
	k, err := sign.ReadPrivateKey(rt.Abs(c.Key))
	if err != nil {
		return exitcode.Input(err, "")
	}
	sd, unlock, err := rt.LockState()
	if err != nil {
		return err
	}
	defer unlock()
	env, err := govEnv(rt, sd, true)
	if err != nil {
		return err
	}
	st, err := governance.Record(env, c.ID, verdict, c.Reason, k)
	if err != nil {
		return govError(err)
	}
	if err := rt.record(sd, audit.Event{Stage: verdict, Detail: fmt.Sprintf("%s by %s: now %s", c.ID, k.ID, st.State)}); err != nil {
		return err
	}
	renderState(rt, st)
	cfg, _ := rt.Config()
	if st.State == governance.StateApproved && cfg.Governance.AutoApply {
		rt.Logf("governance.autoApply: applying %s", c.ID)
		return applyLocked(rt, sd, env, c.ID, false)
	}
	return nil
}

// GovDecideCmd is "lambda-check governance decide".
type GovDecideCmd struct {
	IDs []string `arg:"" optional:"" name:"id" help:"Proposals to decide (default: every pending one)."`
}

// Help is shown by "lambda-check governance decide --help".
func (c *GovDecideCmd) Help() string {
	return `With the program backend: runs the configured decider (governance.program)
once per pending proposal, with proposal.json on stdin, and files the signed
decision it prints on stdout (see 'governance sign-decision'). A missing,
failing, slow or lying decider leaves the proposal pending and is reported
(exit 3); nothing decides in its place.`
}

// Run runs the decider.
func (c *GovDecideCmd) Run(rt *Runtime) error {
	sd, unlock, err := rt.LockState()
	if err != nil {
		return err
	}
	defer unlock()
	env, err := govEnv(rt, sd, true)
	if err != nil {
		return err
	}
	ids := c.IDs
	if len(ids) == 0 {
		all, err := governance.Evaluate(env)
		if err != nil {
			return err
		}
		for _, s := range all {
			if s.State == governance.StatePending {
				ids = append(ids, s.ID)
			}
		}
	}
	var failed []string
	for _, id := range ids {
		d, err := governance.Decide(rt.Ctx, env, id)
		ev := audit.Event{Stage: "decide"}
		if err != nil {
			var de *governance.DeciderError
			if !errors.As(err, &de) {
				return govError(err)
			}
			failed = append(failed, id)
			ev.Result, ev.Detail = audit.ResultFail, err.Error()
			rt.Printf("%s: still pending: %v\n", id, err)
		} else {
			ev.Detail = fmt.Sprintf("%s: %s by %s", id, d.Verdict, d.Signer)
			rt.Printf("%s: %s by %s\n", id, d.Verdict, d.Signer)
		}
		if err := rt.record(sd, ev); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return &exitcode.FailError{Reason: fmt.Sprintf("the decider did not decide %s", strings.Join(failed, ", "))}
	}
	return nil
}

// GovApplyCmd is "lambda-check governance apply".
type GovApplyCmd struct {
	ID       string `arg:"" help:"The proposal's id."`
	NoCommit bool   `help:"Stage the change (index and work tree) without committing."`
}

// Help is shown by "lambda-check governance apply --help".
func (c *GovApplyCmd) Help() string {
	return `Applies an approved proposal, after checking: the decisions meet the
backend's threshold, every file of the proposal matches its digest, the
workspace is still at the proposal's base and clean where the proposal
touches it, and the change recomputed from the proposal is exactly the
proposed commit. Then, under the state lock: the submodule is checked out at
the new revision (fetched from its remote if missing), flake.lock and the
gitlink are updated, and one commit touching exactly those paths is made,
with trailers naming the proposal and its approvers. Any failure puts the
workspace back as it was.`
}

// Run applies.
func (c *GovApplyCmd) Run(rt *Runtime) error {
	sd, unlock, err := rt.LockState()
	if err != nil {
		return err
	}
	defer unlock()
	env, err := govEnv(rt, sd, true)
	if err != nil {
		return err
	}
	return applyLocked(rt, sd, env, c.ID, c.NoCommit)
}

func applyLocked(rt *Runtime, sd *statedir.Dir, env governance.Env, id string, noCommit bool) error {
	cfg, err := rt.Config()
	if err != nil {
		return err
	}
	user := rt.actor()
	// Whatever happens, the workspace may have moved.
	defer rt.snaps.invalidate()
	gcfg, ssh, err := rt.Git()
	if err != nil {
		return err
	}
	res, err := governance.Apply(rt.Ctx, governance.ApplyRequest{Env: env, ID: id, NoCommit: noCommit,
		Committer: gitrepo.Signature{Name: user, Email: user}, Git: gcfg, SSH: ssh, InsteadOf: cfg.Upgrades.InsteadOf})
	if err != nil {
		rerr := rt.record(sd, audit.Event{Stage: "apply", Result: audit.ResultError, Detail: id + ": " + err.Error()})
		if rerr != nil {
			rt.Logf("warning: %v", rerr)
		}
		return govError(err)
	}
	b, _ := artifact.Encode(res.Applied)
	detail := id + ": committed " + res.Applied.Commit
	if res.Applied.Staged {
		detail = id + ": staged"
	}
	if err := rt.record(sd, audit.Event{Stage: "apply", Output: output("lambda-check/applied", "", b), Detail: detail}); err != nil {
		return err
	}
	if res.Applied.Staged {
		rt.Printf("applied %s: staged in the index; commit it with git commit\n", id)
	} else {
		rt.Printf("applied %s: commit %s (approved by %s)\n", id, res.Applied.Commit, strings.Join(res.Applied.Signers, ", "))
	}
	return nil
}

// GovSignDecisionCmd is "lambda-check governance sign-decision".
type GovSignDecisionCmd struct {
	Key     string `required:"" placeholder:"FILE" help:"The decider's private key file."`
	Verdict string `required:"" enum:"approve,reject" help:"approve or reject."`
	Reason  string `placeholder:"TEXT" help:"Why, for the record."`
}

// Help is shown by "lambda-check governance sign-decision --help".
func (c *GovSignDecisionCmd) Help() string {
	return `Reads a proposal.json on stdin and prints a decision record on it, signed
with the key: what a program decider (governance.program) answers. A decider
written in another language signs the same record itself: ed25519 over
"lambda-check/governance-decision/v1\n" and the RFC 8785 form of the record
without its "signatures" (docs/governance.md).`
}

// Run signs.
func (c *GovSignDecisionCmd) Run(rt *Runtime) error {
	k, err := sign.ReadPrivateKey(rt.Abs(c.Key))
	if err != nil {
		return exitcode.Input(err, "")
	}
	in, err := io.ReadAll(io.LimitReader(rt.Env.Stdin, 16<<20))
	if err != nil {
		return err
	}
	env, err := artifact.Decode[propose.Proposal](in, propose.Spec)
	if err != nil {
		return exitcode.Input(fmt.Errorf("stdin: %w", err), "pipe a proposal.json in")
	}
	now, err := rt.Clock()
	if err != nil {
		return err
	}
	b := &governance.Bound{Proposal: &env.Payload, Digest: artifact.Digest(in)}
	raw, err := governance.SignDecision(b, c.Verdict, c.Reason, governance.Program, k, now)
	if err != nil {
		return err
	}
	_, err = rt.Env.Stdout.Write(raw)
	return err
}
