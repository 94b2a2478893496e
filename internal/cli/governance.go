package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/stage/governance"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/workflow"
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

// GovStatusCmd is "lambda-check governance status".
type GovStatusCmd struct {
	State string `placeholder:"STATE" help:"Only proposals in this state (pending, approved, rejected, applied, stale, superseded, blocked, invalid)."`
}

// Run lists the states.
func (c *GovStatusCmd) Run(rt *Runtime) error {
	env, err := govEnv(rt)
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
	id, err := rt.ProposalID(c.ID)
	if err != nil {
		return err
	}
	c.ID = id
	env, err := govEnv(rt)
	if err != nil {
		return err
	}
	st, err := governance.EvaluateOne(env, c.ID)
	if err != nil {
		return workflow.GovernanceError(err)
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
		rt.Printf("  approved by %s %s at %s %s%s\n", s.Key, paren(s.Owner), s.Time, s.Reason, carried(s))
	}
	for _, s := range st.Rejects {
		rt.Printf("  rejected by %s %s at %s %s%s\n", s.Key, paren(s.Owner), s.Time, s.Reason, carried(s))
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
	id, err := rt.ProposalID(c.ID)
	if err != nil {
		return err
	}
	c.ID = id
	k, err := sign.ReadPrivateKey(rt.Abs(c.Key))
	if err != nil {
		return exitcode.Input(err, "")
	}
	e, release, err := rt.Lock()
	if err != nil {
		return err
	}
	defer release()
	res, err := workflow.Decision(rt.Ctx, e, c.ID, verdict, c.Reason, k)
	if res != nil {
		if res.Repeat != "" {
			rt.Printf("%s: nothing to do\n", res.Repeat)
			return nil
		}
		renderState(rt, res.State)
		if res.Applied != nil {
			renderApplied(rt, c.ID, res.Applied)
		}
	}
	return err
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
	for i, p := range c.IDs {
		id, err := rt.ProposalID(p)
		if err != nil {
			return err
		}
		c.IDs[i] = id
	}
	e, release, err := rt.Lock()
	if err != nil {
		return err
	}
	defer release()
	ds, err := workflow.Decide(rt.Ctx, e, nil, c.IDs)
	for _, d := range ds {
		if d.Problem != "" {
			rt.Printf("%s: still pending: %s\n", d.ID, d.Problem)
		} else {
			rt.Printf("%s: %s by %s\n", d.ID, d.Decision.Verdict, d.Decision.Signer)
		}
	}
	if err != nil {
		return err
	}
	return workflow.DecideVerdict(ds)
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
	id, err := rt.ProposalID(c.ID)
	if err != nil {
		return err
	}
	c.ID = id
	e, release, err := rt.Lock()
	if err != nil {
		return err
	}
	defer release()
	genv, err := workflow.Governance(rt.Ctx, e, nil)
	if err != nil {
		return err
	}
	a, err := workflow.Apply(rt.Ctx, e, genv, c.ID, c.NoCommit)
	if err != nil {
		return err
	}
	renderApplied(rt, c.ID, a)
	return nil
}

func renderApplied(rt *Runtime, id string, a *workflow.ApplyResult) {
	switch {
	case a.Repeat != "":
		rt.Printf("%s: nothing to do\n", a.Repeat)
	case a.Staged:
		rt.Printf("applied %s: staged in the index; commit it with git commit\n", id)
	default:
		rt.Printf("applied %s: commit %s (approved by %s)\n", id, a.Commit, strings.Join(a.Signers, ", "))
	}
}

// govEnv is governance's view of the workspace as it is now.
func govEnv(rt *Runtime) (governance.Env, error) {
	if err := snapshot.CheckWorkspace(rt.WorkspaceDir()); err != nil {
		return governance.Env{}, err
	}
	e, err := rt.ReadWorkflow()
	if err != nil {
		return governance.Env{}, err
	}
	return workflow.Governance(rt.Ctx, e, nil)
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
	in, err := io.ReadAll(io.LimitReader(rt.Env.Stdin, 16<<20+1))
	if err != nil {
		return err
	}
	if len(in) > 16<<20 {
		return exitcode.Input(errors.New("stdin: more than 16 MiB: not a proposal.json"), "pipe a proposal.json in")
	}
	env, err := artifact.Decode[propose.Proposal](in, propose.Spec)
	if err != nil {
		return exitcode.Input(fmt.Errorf("stdin: %w", err), "pipe a proposal.json in")
	}
	// A decision's time is a record: the system clock, never --now.
	now := time.Now().UTC()
	b := &governance.Bound{Proposal: &env.Payload, Digest: artifact.Digest(in)}
	raw, err := governance.SignDecision(b, c.Verdict, c.Reason, governance.Program, k, now)
	if err != nil {
		return err
	}
	_, err = rt.Env.Stdout.Write(raw)
	return err
}

// carried says where a decision made on an earlier proposal of the same
// change comes from.
func carried(s governance.Signer) string {
	if s.CarriedFrom == "" {
		return ""
	}
	return " (on " + s.CarriedFrom + ", the same change)"
}
