package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/workflow"
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

With "propose": {"group": "level"} in the config, the upgrades of each plan
level are one proposal (grp-level-N-...): one patch and one flake.lock change
for all of them, approved and applied as a unit.

The id is derived from the change and its base: proposing again with the
same inputs changes nothing, and a proposal whose paths did not move is kept
(with its approvals) when the workspace moves elsewhere. The workspace is never written: the patch is
built from git objects in memory. Use 'path:' to build a proposal that lives
inside the workspace's git tree (Nix would otherwise see only tracked files).`
}

// Run writes the proposals.
func (c *ProposeCmd) Run(rt *Runtime) error {
	if err := snapshot.CheckWorkspace(rt.WorkspaceDir()); err != nil {
		return err
	}
	pcfg, err := workflow.LoadPolicyConfig(rt.WorkspaceDir(), absIf(rt, c.Policy))
	if err != nil {
		return err
	}
	e, release, err := rt.Lock()
	if err != nil {
		return err
	}
	defer release()
	o := workflow.ProposeOptions{Policy: pcfg, WorkspaceURL: c.WorkspaceURL}
	if o.Upgrades, err = workflow.ReadUpgrades(e, absIf(rt, c.Upgrades), "upgrades to propose", "run 'lambda-check upgrades' first"); err != nil {
		return err
	}
	res, err := workflow.Propose(rt.Ctx, e, o)
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
		renderOutcomes(rt, res.Outcomes, e.File("proposals"))
	}
	return workflow.ProposeVerdict(res.Outcomes)
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
		move := fmt.Sprintf("  %s → %s", short(o.From), short(o.To))
		if o.From == "" {
			move = "" // a group: its members are in proposals show
		}
		rt.Printf("  level %s  %s  %s%s  %s\n", level, o.ID, o.Submodule, move, state)
		if o.Note != "" {
			rt.Printf("    %s\n", o.Note)
		}
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
	e, release, err := rt.Lock()
	if err != nil {
		return err
	}
	defer release()
	ids, err := workflow.Prune(rt.Ctx, e, nil, c.DryRun)
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
		move := fmt.Sprintf("  %s → %s", short(p.From), short(p.To))
		if p.Kind == propose.KindGroup {
			move = ""
		}
		rt.Printf("%-11s %s  %s%s  %d commits%s\n", l.Status, p.ID, p.Submodule, move, p.Commits, why)
	}
	return nil
}

// listProposals lists the proposals against the workspace as it is.
func listProposals(rt *Runtime) ([]propose.Listed, error) {
	if err := snapshot.CheckWorkspace(rt.WorkspaceDir()); err != nil {
		return nil, err
	}
	e, err := rt.ReadWorkflow()
	if err != nil {
		return nil, err
	}
	return workflow.Proposals(rt.Ctx, e, nil)
}

// ProposalsShowCmd is "lambda-check proposals show".
type ProposalsShowCmd struct {
	ID    string `arg:"" help:"The proposal's id."`
	Patch bool   `help:"Print the patch as well."`
}

// Run shows a proposal.
func (c *ProposalsShowCmd) Run(rt *Runtime) error {
	id, err := rt.ProposalID(c.ID)
	if err != nil {
		return err
	}
	c.ID = id
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
	for _, m := range p.Moves() {
		rt.Printf("  %s on %s: %s → %s, %d commits\n", m.Submodule, m.Branch, short(m.From), short(m.To), m.Commits)
	}
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

// ProposalID is the proposal an id or a unique prefix of one names (a
// missing or ambiguous one is bad input, with the candidates).
func (rt *Runtime) ProposalID(id string) (string, error) {
	full, err := propose.Resolve(filepath.Join(rt.StateDirPath(), "proposals"), id)
	if err != nil {
		return "", exitcode.Input(err, "lambda-check proposals lists them")
	}
	return full, nil
}
