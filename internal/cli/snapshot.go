package cli

import (
	"fmt"
	"strings"

	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/workflow"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// SnapshotCmd is "lambda-check snapshot".
type SnapshotCmd struct {
	Out     string `placeholder:"FILE" help:"Write the artifact here instead of <state-dir>/snapshot.json."`
	Compare string `placeholder:"OLD.json" help:"Also tell what changed since this earlier snapshot artifact."`
}

// Help is shown by "lambda-check snapshot --help".
func (c *SnapshotCmd) Help() string {
	return `Records the superproject's HEAD, branch and changes; for every submodule
(nested ones too) its name, path, url and branch from .gitmodules, the gitlink
in the index, the checked-out commit, its state (clean, dirty, uninitialized,
checkout-differs, missing) and its staged, modified and untracked files (with
sha256); and the digests of flake.nix and flake.lock. Git is read in-process;
any git error fails the command and writes nothing.`
}

// Run takes the snapshot.
func (c *SnapshotCmd) Run(rt *Runtime) error {
	var old *workflow.Snap
	if c.Compare != "" {
		var err error
		if old, err = workflow.ReadSnapshot(rt.Abs(c.Compare)); err != nil {
			return err
		}
	}
	if err := snapshot.CheckWorkspace(rt.WorkspaceDir()); err != nil {
		return err
	}
	e, release, err := rt.Lock()
	if err != nil {
		return err
	}
	defer release()
	out, err := outFile(rt, c.Out)
	if err != nil {
		return err
	}
	w, err := workflow.TakeSnapshot(rt.Ctx, e, out)
	if err != nil {
		return err
	}
	if rt.Globals.JSON {
		if old != nil {
			return rt.PrintJSON(struct {
				Snapshot    *workspace.Snapshot    `json:"snapshot"`
				Differences []workspace.Difference `json:"differences"`
			}{w.Snapshot, nonNil(workspace.Compare(old.Snapshot, w.Snapshot))})
		}
		// Exactly the bytes written, so stdout and the file never disagree.
		return rt.Print(w.Bytes)
	}
	renderSnapshot(rt, w.Snapshot)
	if old != nil {
		renderDifferences(rt, workspace.Compare(old.Snapshot, w.Snapshot))
	}
	rt.Logf("wrote %s (%s)", w.Path, w.Digest)
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	if h == "" {
		return "-"
	}
	return h
}

func renderSnapshot(rt *Runtime, s *workspace.Snapshot) {
	sp := s.Superproject
	where := "detached"
	if sp.Branch != "" {
		where = "on " + sp.Branch
	}
	rt.Printf("workspace %s\n", s.Root)
	rt.Printf("  HEAD %s %s; %s\n", short(sp.Head), where, changeSummary(sp.Changes))
	for _, f := range []workspace.FileDigest{s.FlakeNix, s.FlakeLock} {
		d := "absent"
		if f.Digest != "" {
			d = f.Digest[:19] + "…"
		}
		rt.Printf("  %-10s %s\n", f.Path, d)
	}
	sum := s.Summary
	rt.Printf("  %d submodules: %d clean, %d dirty, %d checkout-differs, %d uninitialized, %d missing\n",
		sum.Submodules, sum.Clean, sum.Dirty, sum.CheckoutDiffers, sum.Uninitialized, sum.Missing)
	for _, m := range s.Submodules {
		if m.State == workspace.StateClean {
			continue
		}
		detail := changeSummary(m.Changes)
		switch m.State {
		case workspace.StateCheckoutDiffers:
			detail = fmt.Sprintf("at %s, gitlink %s; %s", short(m.Head), short(m.Gitlink), detail)
		case workspace.StateMissing, workspace.StateUninitialized:
			detail = m.Reason
		}
		rt.Printf("  %-16s %s: %s\n", m.State, m.Path, detail)
	}
}

func changeSummary(c workspace.Changes) string {
	var parts []string
	if n := len(c.Staged); n > 0 {
		parts = append(parts, fmt.Sprintf("%d staged", n))
	}
	if n := len(c.Unstaged); n > 0 {
		parts = append(parts, fmt.Sprintf("%d modified", n))
	}
	if n := len(c.Untracked); n > 0 {
		parts = append(parts, fmt.Sprintf("%d untracked", n))
	}
	if len(parts) == 0 {
		return "no changes"
	}
	return strings.Join(parts, ", ")
}

func renderDifferences(rt *Runtime, ds []workspace.Difference) {
	if len(ds) == 0 {
		rt.Printf("no differences\n")
		return
	}
	rt.Printf("%d differences:\n", len(ds))
	for _, d := range ds {
		rt.Printf("  %s\n", d)
	}
}
