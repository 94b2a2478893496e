package cli

import (
	"fmt"
	"path/filepath"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// DiffCmd is "lambda-check diff".
type DiffCmd struct {
	Old      string `arg:"" placeholder:"OLD.json" help:"The earlier snapshot artifact."`
	New      string `arg:"" optional:"" placeholder:"NEW.json" help:"The later snapshot artifact (default: <state-dir>/snapshot.json)."`
	ExitCode bool   `help:"Exit 3 when the snapshots differ (as 'git diff --exit-code')."`
}

// Run compares two snapshots.
func (c *DiffCmd) Run(rt *Runtime) error {
	newPath := c.New
	if newPath == "" {
		newPath = filepath.Join(rt.StateDirPath(), "snapshot.json")
	}
	read := func(p string) (*workspace.Snapshot, error) {
		env, _, err := artifact.Read[workspace.Snapshot](rt.Abs(p), workspace.SnapshotSpec)
		if err != nil {
			return nil, exitcode.Input(fmt.Errorf("read snapshot: %w", err), "")
		}
		return &env.Payload, nil
	}
	o, err := read(c.Old)
	if err != nil {
		return err
	}
	n, err := read(newPath)
	if err != nil {
		return err
	}
	ds := workspace.Compare(o, n)
	if rt.Globals.JSON {
		if err := rt.PrintJSON(struct {
			Differences []workspace.Difference `json:"differences"`
		}{nonNil(ds)}); err != nil {
			return err
		}
	} else {
		renderDifferences(rt, ds)
	}
	if c.ExitCode && len(ds) > 0 {
		return &exitcode.FailError{Reason: fmt.Sprintf("%d differences", len(ds))}
	}
	return nil
}
