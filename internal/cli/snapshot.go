package cli

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/statedir"
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
	var old *workspace.Snapshot
	if c.Compare != "" {
		env, _, err := artifact.Read[workspace.Snapshot](rt.Abs(c.Compare), workspace.SnapshotSpec)
		if err != nil {
			return exitcode.Input(fmt.Errorf("read snapshot to compare: %w", err), "")
		}
		old = &env.Payload
	}
	w, err := takeSnapshot(rt, c.Out)
	if err != nil {
		return err
	}
	snap := w.snapshot
	if rt.Globals.JSON {
		if old != nil {
			return rt.PrintJSON(struct {
				Snapshot    *workspace.Snapshot    `json:"snapshot"`
				Differences []workspace.Difference `json:"differences"`
			}{snap, nonNil(workspace.Compare(old, snap))})
		}
		// Exactly the bytes written, so stdout and the file never disagree.
		_, err := rt.Env.Stdout.Write(w.bytes)
		return err
	}
	renderSnapshot(rt, snap)
	if old != nil {
		renderDifferences(rt, workspace.Compare(old, snap))
	}
	rt.Logf("wrote %s (%s)", w.path, w.digest)
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// written is a snapshot artifact as written.
type written struct {
	snapshot     *workspace.Snapshot
	path, digest string
	bytes        []byte
}

// takeSnapshot runs the stage under the state-dir lock and writes the
// artifact.
func takeSnapshot(rt *Runtime, out string) (*written, error) {
	if err := snapshot.CheckWorkspace(rt.WorkspaceDir()); err != nil {
		return nil, err
	}
	sd, unlock, err := rt.LockState()
	if err != nil {
		return nil, err
	}
	defer unlock()
	return snapshotLocked(rt, sd, out)
}

// snapshotLocked takes and writes a snapshot; the caller holds the lock.
// It is shared by every command that starts from a snapshot.
func snapshotLocked(rt *Runtime, sd *statedir.Dir, out string) (*written, error) {
	// Within a cycle, the stages share one snapshot until something the
	// cycle does (an apply) changes the workspace.
	if rt.snaps != nil && rt.snaps.w != nil && out == "" {
		return rt.snaps.w, nil
	}
	ws := rt.WorkspaceDir()
	if err := snapshot.CheckWorkspace(ws); err != nil {
		return nil, err
	}
	cfg, err := rt.Config()
	if err != nil {
		return nil, err
	}
	excl := []string{sd.Path}
	for _, x := range cfg.Snapshot.Exclude {
		excl = append(excl, filepath.Join(ws, filepath.FromSlash(x)))
	}
	par := cfg.Snapshot.Parallelism
	if par == 0 {
		par = 4 * runtime.GOMAXPROCS(0)
	}
	res, err := snapshot.Run(rt.Ctx, snapshot.Request{
		Workspace: ws, Exclude: excl, Parallelism: par, StatCache: sd.File("stat-cache"),
		UserExcludesFile: userExcludesFile(rt.Env.Getenv),
	})
	if err != nil {
		return nil, err
	}
	if out == "" {
		out = sd.File("snapshot.json")
	} else {
		out = rt.Abs(out)
	}
	b, digest, err := artifact.Write(out, &artifact.Envelope[*workspace.Snapshot]{
		Kind: workspace.SnapshotSpec.Kind, SchemaVersion: workspace.SnapshotSpec.Version,
		Producer: rt.Producer(), Payload: &res.Snapshot,
	})
	if err != nil {
		return nil, err
	}
	if err := rt.record(sd, audit.Event{Stage: "snapshot", Output: output(workspace.SnapshotSpec.Kind, out, b)}); err != nil {
		return nil, err
	}
	w := &written{snapshot: &res.Snapshot, path: out, digest: digest, bytes: b}
	if rt.snaps != nil && out == sd.File("snapshot.json") {
		rt.snaps.w = w
	}
	return w, nil
}

// snapshotCache is a cycle's shared snapshot.
type snapshotCache struct{ w *written }

// invalidate drops the shared snapshot after the workspace changed.
func (c *snapshotCache) invalidate() {
	if c != nil {
		c.w = nil
	}
}

// userExcludesFile is git's default global ignore file.
func userExcludesFile(getenv func(string) string) string {
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "git", "ignore")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "git", "ignore")
	}
	return ""
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
