package workflow

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/stage/governance"
	"github.com/lambda-os/lambda-check/internal/stage/plan"
	"github.com/lambda-os/lambda-check/internal/stage/policy"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
)

// ProposeOptions are what proposing takes beyond the environment.
type ProposeOptions struct {
	// Snap is the workspace the proposals apply to; nil takes a new one.
	Snap *Snap
	// Upgrades are proposed; nil reads the state directory's.
	Upgrades *UpgradesResult
	// Plan orders them; nil computes the order from flake.lock.
	Plan *plan.Plan
	// Policy is what each change is checked against.
	Policy *policy.Config
	// WorkspaceURL is how proposal flakes reach the workspace.
	WorkspaceURL string
}

// Propose turns each upgrade into a proposal (a patch and a flake), in
// dependency order, and records each new one.
func Propose(ctx context.Context, e *Env, o ProposeOptions) (*propose.Result, error) {
	snap, err := snapshotOr(ctx, e, o.Snap)
	if err != nil {
		return nil, err
	}
	up := o.Upgrades
	if up == nil {
		if up, err = ReadUpgrades(e, "", "upgrades to propose", "run 'lambda-check upgrades' first"); err != nil {
			return nil, err
		}
	}
	order := o.Plan
	if order == nil {
		order, err = upgradeOrder(ctx, e, up)
		if err != nil {
			e.Logf("warning: no dependency order (%v): proposals are ordered by path", err)
		}
	}
	quarantine, err := quarantineMap(e)
	if err != nil {
		return nil, err
	}
	res, err := propose.Run(ctx, propose.Request{
		Snapshot: snap.Snapshot, Upgrades: up.Upgrades, Plan: order, Quarantine: quarantine,
		Stores: e.File("remotes"), Dir: e.File("proposals"), Policy: o.Policy,
		WorkspaceURL: o.WorkspaceURL, Producer: e.Producer, Eval: e.evaluator(), Group: e.Config.Propose.Group,
	})
	if errors.Is(err, propose.ErrBaseMoved) {
		return nil, exitcode.Input(err, "run 'lambda-check upgrades' again")
	}
	if err != nil {
		return nil, err
	}
	unchanged := 0
	for _, oc := range res.Outcomes {
		if !oc.Written && oc.Skipped == "" {
			// The same proposal exists already: nothing happened to it.
			unchanged++
			continue
		}
		ev := audit.Event{Stage: "propose", Detail: fmt.Sprintf("%s %s → %s", oc.Submodule, Short(oc.From), Short(oc.To))}
		if oc.Skipped != "" {
			ev.Result, ev.Detail = audit.ResultFail, ev.Detail+": skipped: "+oc.Skipped
		} else {
			p := filepath.Join(e.File("proposals"), oc.ID, propose.ProposalFile)
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			ev.Output = output(propose.Spec.Kind, p, b)
			if !oc.Approvable {
				ev.Result, ev.Detail = audit.ResultFail, ev.Detail+": not approvable"
			}
		}
		if err := e.Record(ev); err != nil {
			return nil, err
		}
	}
	if unchanged == len(res.Outcomes) {
		// Still one event for the run, as for every stage.
		if err := e.Record(audit.Event{Stage: "propose", Detail: fmt.Sprintf("%d proposals, all unchanged", unchanged)}); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// upgradeOrder orders the upgrades with flake.lock's graph (flake.nix is
// not needed for the order).
func upgradeOrder(ctx context.Context, e *Env, up *UpgradesResult) (*plan.Plan, error) {
	v, err := plan.LoadGraph(ctx, plan.GraphRequest{Workspace: e.Workspace, Exclude: e.Config.GraphExclude(), Why: "not needed"})
	if err != nil {
		return nil, err
	}
	changes, unplaced := upgradeChanges(up.Upgrades)
	res, err := plan.Run(ctx, plan.Request{Graph: &v.Graph, Changes: changes, Unplaced: unplaced, FlakeLock: v.FlakeLock})
	if err != nil {
		return nil, err
	}
	return &res.Plan, nil
}

// ProposeVerdict fails the stage (after every other proposal was
// written) when an upgrade could not be proposed.
func ProposeVerdict(os []propose.Outcome) error {
	var skipped []string
	for _, o := range os {
		if o.Skipped != "" {
			skipped = append(skipped, o.Submodule)
		}
	}
	if len(skipped) == 0 {
		return nil
	}
	return &exitcode.FailError{Reason: fmt.Sprintf("propose: %d of %d upgrades not proposed (%s): see the reasons above", len(skipped), len(os), strings.Join(skipped, ", "))}
}

// Proposals lists the proposals with their status against snap (nil: the
// workspace as it is now); an applied one says so.
func Proposals(ctx context.Context, e *Env, snap *Snap) ([]propose.Listed, error) {
	if err := e.Open(); err != nil {
		return nil, err
	}
	if snap == nil {
		var err error
		if snap, err = CurrentSnapshot(ctx, e); err != nil {
			return nil, err
		}
	}
	current := snap.Snapshot
	ls, err := propose.List(e.File("proposals"), current, e.File("remotes"))
	if err != nil {
		return nil, err
	}
	quarantine, err := quarantineMap(e)
	if err != nil {
		return nil, err
	}
	// An applied proposal says so (its gitlink moved on, or it was rolled
	// back since). An upgrade to a quarantined revision is blocked,
	// whenever it was made.
	for i := range ls {
		l := &ls[i]
		if l.Problem != "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(e.File("decisions"), l.Proposal.ID, governance.AppliedFile)); err != nil {
			// never applied: nothing to check
		} else if b, err := governance.LoadBound(e.File("proposals"), l.Proposal.ID); err == nil {
			if a := governance.AppliedFor(e.File("decisions"), current, b); a != nil {
				l.Status, l.Why = governance.StateApplied, "in commit "+Short(a.Commit)
				if a.Staged {
					l.Why = "staged, not committed"
				}
				continue
			}
		}
		if l.Status == propose.StatusPending && l.Proposal.Kind != propose.KindRollback {
			for _, mv := range l.Proposal.Moves() {
				if why, bad := quarantine[propose.QuarantineKey(mv.Submodule, mv.To)]; bad {
					l.Status, l.Why = propose.StatusBlocked, "its revision is quarantined: "+why
					break
				}
			}
		}
	}
	return ls, nil
}

// Prune removes (or, dryRun, lists) the stale and superseded proposals
// nobody decided on, and records it.
func Prune(ctx context.Context, e *Env, snap *Snap, dryRun bool) ([]string, error) {
	ls, err := Proposals(ctx, e, snap)
	if err != nil {
		return nil, err
	}
	if dryRun {
		var ids []string
		for _, l := range ls {
			if propose.Prunable(l, e.File("decisions")) {
				ids = append(ids, l.Proposal.ID)
			}
		}
		return ids, nil
	}
	if err := e.mustHold(); err != nil {
		return nil, err
	}
	ids, err := propose.Prune(e.File("proposals"), e.File("decisions"), ls)
	if len(ids) > 0 {
		if rerr := e.Record(audit.Event{Stage: "prune", Detail: fmt.Sprintf("removed %d stale or superseded proposals nobody decided on: %s", len(ids), strings.Join(ids, ", "))}); rerr != nil {
			return ids, rerr
		}
	}
	return ids, err
}

// Subject says in a line what a proposal moves.
func Subject(p *propose.Proposal) string {
	if p.Kind == propose.KindGroup {
		return fmt.Sprintf("%s (%d upgrades together)", p.Submodule, len(p.Members))
	}
	return fmt.Sprintf("%s %s → %s", p.Submodule, Short(p.From), Short(p.To))
}
