package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/stage/governance"
	"github.com/lambda-os/lambda-check/internal/stage/plan"
	"github.com/lambda-os/lambda-check/internal/stage/policy"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/stage/upgrades"
	"github.com/lambda-os/lambda-check/internal/statedir"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// ProposeCmd is "lambda-check propose".
type ProposeCmd struct {
	Upgrades     string `placeholder:"FILE" help:"The upgrades artifact (default: <state-dir>/upgrades.json)."`
	Policy       string `placeholder:"FILE" help:"The policy configuration changes are checked against (default: <workspace>/policy.json when it exists)."`
	WorkspaceURL string `name:"workspace-url" placeholder:"URL" help:"How proposal flakes reach the workspace (default: git+file://<workspace>; for CI: github:owner/repo or git+https://...)."`
}

// Help is shown by "lambda-check propose --help".
func (c *ProposeCmd) Help() string {
	return `Turns each upgrade that 'lambda-check upgrades' found into a proposal, in
dependency order (leaves first), in <state-dir>/proposals/<id>/:

  change.patch   moves the gitlink and the matching flake.lock node (rev,
                 narHash, lastModified, revCount computed in-process)
                 together; 'git apply --index' applies it to the base,
                 'git am' commits it.
  flake.nix      the workspace at its base commit with the input moved:
  flake.lock     nix build path:<dir>#packages.<system>.<name>,
                 nix flake check path:<dir>, and hydraJobs for Hydra.
  proposal.json  what moves where, the base it applies to, the commits it
                 brings, the policy findings the change introduces
                 (forbidden paths, local overrides, follows) and the digest
                 of every file. A deny finding makes it not approvable.

The id is derived from the change and its base: proposing again with the
same inputs changes nothing. The workspace is never written: the patch is
built from git objects in memory. Use 'path:' to build a proposal that lives
inside the workspace's git tree (Nix would otherwise see only tracked files).`
}

// Run writes the proposals.
func (c *ProposeCmd) Run(rt *Runtime) error {
	ws := rt.WorkspaceDir()
	if err := snapshot.CheckWorkspace(ws); err != nil {
		return err
	}
	pcfg, err := loadPolicyConfig(rt, c.Policy)
	if err != nil {
		return err
	}
	sd, unlock, err := rt.LockState()
	if err != nil {
		return err
	}
	defer unlock()
	upPath := sd.File("upgrades.json")
	if c.Upgrades != "" {
		upPath = rt.Abs(c.Upgrades)
	}
	upEnv, _, err := artifact.Read[upgrades.Upgrades](upPath, upgrades.Spec)
	if errors.Is(err, fs.ErrNotExist) {
		return exitcode.Input(fmt.Errorf("no upgrades to propose: %s does not exist", upPath), "run 'lambda-check upgrades' first")
	}
	if err != nil {
		return exitcode.Input(fmt.Errorf("read upgrades: %w", err), "")
	}
	w, err := snapshotLocked(rt, sd, "")
	if err != nil {
		return err
	}
	res, err := proposeLocked(rt, sd, w.snapshot, &upEnv.Payload, pcfg, c.WorkspaceURL)
	if err != nil {
		return err
	}
	if rt.Globals.JSON {
		if err := rt.PrintJSON(struct {
			Proposals []propose.Outcome `json:"proposals"`
		}{nonNil(res.Outcomes)}); err != nil {
			return err
		}
	} else {
		renderOutcomes(rt, res.Outcomes, sd.File("proposals"))
	}
	return proposeVerdict(res.Outcomes)
}

// proposeVerdict fails the stage (after every other proposal was written)
// when an upgrade could not be proposed.
func proposeVerdict(os []propose.Outcome) error {
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

// proposeLocked orders the upgrades with the flake graph and writes their
// proposals; the caller holds the state lock.
func proposeLocked(rt *Runtime, sd *statedir.Dir, snap *workspace.Snapshot, up *upgrades.Upgrades, pcfg *policy.Config, workspaceURL string) (*propose.Result, error) {
	cfg, err := rt.Config()
	if err != nil {
		return nil, err
	}
	v, err := plan.LoadGraph(rt.Ctx, plan.GraphRequest{Workspace: snap.Root, Exclude: cfg.GraphExclude(), Why: "not needed"})
	var order *plan.Plan
	if err == nil {
		var changes, unplaced []string
		for _, r := range up.Repos {
			if r.IsUpgrade() {
				changes = append(changes, r.Inputs...)
				if len(r.Inputs) == 0 {
					unplaced = append(unplaced, r.Path)
				}
			}
		}
		var res *plan.Result
		if res, err = plan.Run(rt.Ctx, plan.Request{Graph: &v.Graph, Changes: changes, Unplaced: unplaced, FlakeLock: v.FlakeLock}); err == nil {
			order = &res.Plan
		}
	}
	if order == nil {
		rt.Logf("warning: no dependency order (%v): proposals are ordered by path", err)
	}
	res, err := propose.Run(rt.Ctx, propose.Request{
		Snapshot: snap, Upgrades: up, Plan: order,
		Stores: sd.File("remotes"), Dir: sd.File("proposals"), Policy: pcfg,
		WorkspaceURL: workspaceURL,
		Producer:     rt.Producer(),
		Eval:         rt.evaluator(),
	})
	if errors.Is(err, propose.ErrBaseMoved) {
		return nil, exitcode.Input(err, "run 'lambda-check upgrades' again")
	}
	if err != nil {
		return nil, err
	}
	unchanged := 0
	for _, o := range res.Outcomes {
		if !o.Written && o.Skipped == "" {
			// The same proposal exists already: nothing happened to it.
			unchanged++
			continue
		}
		e := audit.Event{Stage: "propose", Detail: fmt.Sprintf("%s %s → %s", o.Submodule, short(o.From), short(o.To))}
		if o.Skipped != "" {
			e.Result, e.Detail = audit.ResultFail, e.Detail+": skipped: "+o.Skipped
		} else {
			p := filepath.Join(sd.File("proposals"), o.ID, propose.ProposalFile)
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			e.Output = output(propose.Spec.Kind, p, b)
			if !o.Approvable {
				e.Result, e.Detail = audit.ResultFail, e.Detail+": not approvable"
			}
		}
		if err := rt.record(sd, e); err != nil {
			return nil, err
		}
	}
	if unchanged == len(res.Outcomes) {
		// Still one event for the run, as for every stage.
		if err := rt.record(sd, audit.Event{Stage: "propose", Detail: fmt.Sprintf("%d proposals, all unchanged", unchanged)}); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// loadPolicyConfig reads --policy, or <workspace>/policy.json when it
// exists, or the defaults.
func loadPolicyConfig(rt *Runtime, p string) (*policy.Config, error) {
	cfgPath, optional := filepath.Join(rt.WorkspaceDir(), "policy.json"), true
	if p != "" {
		cfgPath, optional = rt.Abs(p), false
	}
	pcfg, err := policy.LoadConfig(cfgPath, optional)
	if err != nil {
		return nil, exitcode.Input(err, "docs/policy.md describes the file; 'lambda-check policy --rules' lists the rules")
	}
	return pcfg, nil
}

func renderOutcomes(rt *Runtime, os []propose.Outcome, dir string) {
	written, same, skipped := 0, 0, 0
	for _, o := range os {
		switch {
		case o.Skipped != "":
			skipped++
		case o.Written:
			written++
		default:
			same++
		}
	}
	rt.Printf("propose: %d proposals (%d written, %d unchanged, %d skipped), leaves first\n", len(os)-skipped, written, same, skipped)
	for _, o := range os {
		if o.Skipped != "" {
			rt.Printf("  skipped  %s: %s\n", o.Submodule, o.Skipped)
			continue
		}
		level := "-"
		if o.Level >= 0 {
			level = fmt.Sprint(o.Level)
		}
		state := "approvable"
		if !o.Approvable {
			state = fmt.Sprintf("NOT approvable (%d findings)", o.Findings)
		}
		rt.Printf("  level %s  %s  %s  %s → %s  %s\n", level, o.ID, o.Submodule, short(o.From), short(o.To), state)
	}
	if len(os) > skipped {
		rt.Printf("in %s; build one with: nix build path:%s/<id>#packages.<system>.<name>\n", dir, dir)
	}
}

// ProposalsCmd is "lambda-check proposals".
type ProposalsCmd struct {
	List  ProposalsListCmd  `cmd:"" default:"withargs" help:"List the proposals and their status."`
	Show  ProposalsShowCmd  `cmd:"" help:"Show one proposal: what it moves, its commits, findings and patch."`
	Prune ProposalsPruneCmd `cmd:"" help:"Remove proposals that can never be applied and that nobody decided on."`
}

// ProposalsPruneCmd is "lambda-check proposals prune".
type ProposalsPruneCmd struct {
	DryRun bool `help:"Only list what would be removed."`
}

// Help is shown by "lambda-check proposals prune --help".
func (c *ProposalsPruneCmd) Help() string {
	return `Removes the proposals that are stale (the workspace moved from their base) or
superseded (another proposal moves the same pin further) and have no
decision on record. Proposals with decisions (approved, rejected, applied)
stay, with their decisions. A removed upgrade is proposed again by the next
'propose' if it still applies. The cycle prunes after proposing unless
cycle.keepStale is set.`
}

// Run prunes.
func (c *ProposalsPruneCmd) Run(rt *Runtime) error {
	sd, unlock, err := rt.LockState()
	if err != nil {
		return err
	}
	defer unlock()
	ids, err := pruneLocked(rt, sd, c.DryRun)
	if err != nil {
		return err
	}
	if rt.Globals.JSON {
		return rt.PrintJSON(struct {
			Removed []string `json:"removed"`
			DryRun  bool     `json:"dryRun"`
		}{nonNil(ids), c.DryRun})
	}
	verb := "removed"
	if c.DryRun {
		verb = "would remove"
	}
	for _, id := range ids {
		rt.Printf("%s %s\n", verb, id)
	}
	rt.Logf("%s %d proposals", verb, len(ids))
	return nil
}

// pruneLocked removes (or lists) the prunable proposals and records it.
func pruneLocked(rt *Runtime, sd *statedir.Dir, dryRun bool) ([]string, error) {
	ls, err := listProposals(rt)
	if err != nil {
		return nil, err
	}
	if dryRun {
		var ids []string
		for _, l := range ls {
			if propose.Prunable(l, sd.File("decisions")) {
				ids = append(ids, l.Proposal.ID)
			}
		}
		return ids, nil
	}
	ids, err := propose.Prune(sd.File("proposals"), sd.File("decisions"), ls)
	if len(ids) > 0 {
		if rerr := rt.record(sd, audit.Event{Stage: "prune", Detail: fmt.Sprintf("removed %d stale or superseded proposals nobody decided on: %s", len(ids), strings.Join(ids, ", "))}); rerr != nil {
			return ids, rerr
		}
	}
	return ids, err
}

// ProposalsListCmd is "lambda-check proposals list".
type ProposalsListCmd struct{}

// Help is shown by "lambda-check proposals list --help".
func (c *ProposalsListCmd) Help() string {
	return `Lists every proposal in <state-dir>/proposals with its status, derived from
the proposal and the workspace as it is now (nothing is stored):
pending (applies to the workspace), blocked (a deny finding), stale (the
workspace moved from its base), superseded (another proposal moves the same
pin further). A directory whose files do not match their digests is listed
as invalid.`
}

// Run lists the proposals.
func (c *ProposalsListCmd) Run(rt *Runtime) error {
	ls, err := listProposals(rt)
	if err != nil {
		return err
	}
	if rt.Globals.JSON {
		type row struct {
			ID         string `json:"id"`
			Status     string `json:"status"`
			Why        string `json:"why,omitempty"`
			Problem    string `json:"problem,omitempty"`
			Submodule  string `json:"submodule"`
			From       string `json:"from"`
			To         string `json:"to"`
			Commits    int    `json:"commits"`
			Approvable bool   `json:"approvable"`
		}
		rows := []row{}
		for _, l := range ls {
			p := l.Proposal
			st := l.Status
			if l.Problem != "" {
				st = "invalid"
			}
			rows = append(rows, row{p.ID, st, l.Why, l.Problem, p.Submodule, p.From, p.To, p.Commits, p.Approvable})
		}
		return rt.PrintJSON(struct {
			Proposals []row `json:"proposals"`
		}{rows})
	}
	if len(ls) == 0 {
		rt.Printf("no proposals\n")
		return nil
	}
	for _, l := range ls {
		p := l.Proposal
		if l.Problem != "" {
			rt.Printf("%-11s %s: %s\n", "invalid", p.ID, l.Problem)
			continue
		}
		why := ""
		if l.Why != "" {
			why = " (" + l.Why + ")"
		}
		rt.Printf("%-11s %s  %s  %s → %s  %d commits%s\n", l.Status, p.ID, p.Submodule, short(p.From), short(p.To), p.Commits, why)
	}
	return nil
}

func listProposals(rt *Runtime) ([]propose.Listed, error) {
	ws := rt.WorkspaceDir()
	if err := snapshot.CheckWorkspace(ws); err != nil {
		return nil, err
	}
	sd, err := statedir.Open(rt.StateDirPath())
	if err != nil {
		return nil, err
	}
	var current *workspace.Snapshot
	if rt.snaps != nil && rt.snaps.w != nil {
		current = rt.snaps.w.snapshot // the cycle's
	} else {
		res, err := snapshot.Run(rt.Ctx, snapshot.Request{Workspace: ws, Exclude: []string{sd.Path}})
		if err != nil {
			return nil, err
		}
		current = &res.Snapshot
	}
	ls, err := propose.List(sd.File("proposals"), current, sd.File("remotes"))
	if err != nil {
		return nil, err
	}
	// An applied proposal's base has moved, of course: say applied.
	for i := range ls {
		l := &ls[i]
		if l.Problem != "" || l.Status != propose.StatusStale {
			continue
		}
		b, err := governance.LoadBound(sd.File("proposals"), l.Proposal.ID)
		if err != nil {
			continue
		}
		if a := governance.AppliedFor(sd.File("decisions"), current, b); a != nil {
			l.Status, l.Why = governance.StateApplied, "in commit "+short(a.Commit)
			if a.Staged {
				l.Why = "staged, not committed"
			}
		}
	}
	return ls, nil
}

// ProposalsShowCmd is "lambda-check proposals show".
type ProposalsShowCmd struct {
	ID    string `arg:"" help:"The proposal's id."`
	Patch bool   `help:"Print the patch as well."`
}

// Run shows a proposal.
func (c *ProposalsShowCmd) Run(rt *Runtime) error {
	dir := filepath.Join(rt.StateDirPath(), "proposals")
	p, err := propose.Load(dir, c.ID)
	if errors.Is(err, propose.ErrNoProposal) {
		return exitcode.Input(err, "'lambda-check proposals list' lists them")
	}
	if err != nil {
		return exitcode.Input(err, "")
	}
	if rt.Globals.JSON {
		return rt.PrintJSON(p)
	}
	rt.Printf("proposal %s (%s)\n", p.ID, p.Kind)
	rt.Printf("  %s on %s: %s → %s, %d commits\n", p.Submodule, p.Branch, p.From, p.To, p.Commits)
	if len(p.Inputs) > 0 {
		rt.Printf("  flake inputs: %s\n", strings.Join(p.Inputs, ", "))
	}
	for _, m := range p.Lock {
		rt.Printf("  flake.lock %s: rev %s → %s, narHash %s → %s\n", m.Node, short(m.From.String("rev")), short(m.To.String("rev")), m.From.String("narHash"), m.To.String("narHash"))
	}
	rt.Printf("  base: HEAD %s, gitlink %s, flake.lock %s\n", short(p.Base.Head), short(p.Base.Gitlink), p.Base.FlakeLock)
	rt.Printf("  commit (as git am makes it): %s\n", p.Commit)
	for _, l := range p.Log {
		rt.Printf("    %s %s\n", l.Hash[:12], l.Subject)
	}
	if p.LogTruncated {
		rt.Printf("    ... %d more\n", p.Commits-len(p.Log))
	}
	if len(p.Findings) == 0 {
		rt.Printf("  findings: none; approvable\n")
	}
	for _, f := range p.Findings {
		rt.Printf("  %s %s %s: %s\n", f.Severity, f.Rule, f.Subject.Name, f.Message)
	}
	if p.Build.Locked {
		rt.Printf("  build: nix build %s#packages.<system>.<name>\n", p.Build.Flake)
	} else {
		rt.Printf("  build: nix build %s#... (%s)\n", p.Build.Flake, p.Build.LockNote)
	}
	if c.Patch {
		b, err := os.ReadFile(filepath.Join(dir, p.ID, propose.PatchFile))
		if err != nil {
			return err
		}
		rt.Printf("\n%s", b)
	}
	return nil
}
