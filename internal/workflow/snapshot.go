package workflow

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// Snap is a snapshot as the workflows hand it on: its value and, when it
// was written (or read from a file), the artifact.
type Snap struct {
	Snapshot *workspace.Snapshot
	Written
}

// Inputs names the snapshot as an artifact's input.
func (s *Snap) Inputs() []artifact.Input { return s.Input(workspace.SnapshotSpec.Kind) }

// TakeSnapshot takes the workspace's snapshot and writes it (to out, or
// <state-dir>/snapshot.json) with its audit event.
func TakeSnapshot(ctx context.Context, e *Env, out string) (*Snap, error) {
	if err := e.mustHold(); err != nil {
		return nil, err
	}
	res, err := runSnapshot(ctx, e, true)
	if err != nil {
		return nil, err
	}
	if out == "" {
		out = e.File("snapshot.json")
	}
	w, err := writeArtifact(e, workspace.SnapshotSpec, out, nil, &res.Snapshot, audit.Event{Stage: "snapshot"})
	if err != nil {
		return nil, err
	}
	return &Snap{Snapshot: &res.Snapshot, Written: w}, nil
}

// CurrentSnapshot takes the workspace's snapshot without writing it, for
// work that only reads (status listings, reports).
func CurrentSnapshot(ctx context.Context, e *Env) (*Snap, error) {
	res, err := runSnapshot(ctx, e, false)
	if err != nil {
		return nil, err
	}
	return &Snap{Snapshot: &res.Snapshot}, nil
}

func runSnapshot(ctx context.Context, e *Env, cached bool) (*snapshot.Result, error) {
	if err := snapshot.CheckWorkspace(e.Workspace); err != nil {
		return nil, err
	}
	req := snapshot.Request{Workspace: e.Workspace, Exclude: []string{e.StateDir},
		Parallelism: e.Config.Snapshot.Parallelism, UserExcludesFile: userExcludesFile(e.getenv)}
	for _, x := range e.Config.Snapshot.Exclude {
		req.Exclude = append(req.Exclude, filepath.Join(e.Workspace, filepath.FromSlash(x)))
	}
	if req.Parallelism == 0 {
		req.Parallelism = 4 * runtime.GOMAXPROCS(0)
	}
	if cached {
		// The stat cache is written back: only under the lock.
		req.StatCache = e.File("stat-cache")
	}
	return snapshot.Run(ctx, req)
}

// ReadSnapshot reads a snapshot artifact.
func ReadSnapshot(p string) (*Snap, error) {
	env, b, err := artifact.Read[workspace.Snapshot](p, workspace.SnapshotSpec)
	if err != nil {
		return nil, exitcode.Input(fmt.Errorf("read snapshot: %w", err), "")
	}
	return &Snap{Snapshot: &env.Payload, Written: Written{Path: p, Digest: artifact.Digest(b), Bytes: b}}, nil
}

// snapshotOr is the given snapshot, or a new one taken and written.
func snapshotOr(ctx context.Context, e *Env, s *Snap) (*Snap, error) {
	if s != nil {
		return s, nil
	}
	return TakeSnapshot(ctx, e, "")
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
