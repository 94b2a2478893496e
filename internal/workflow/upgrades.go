package workflow

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/stage/upgrades"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// UpgradesOptions are what an upgrades check takes beyond the environment.
type UpgradesOptions struct {
	// Snap is the snapshot whose pins are compared; nil takes a new one.
	Snap *Snap
	// Offline compares with already-fetched refs only.
	Offline bool
	// Parallelism and Timeout override the configuration when set.
	Parallelism int
	Timeout     time.Duration
	// Out is where upgrades.json goes (default: the state directory).
	Out string
}

// UpgradesResult is an upgrades check as written.
type UpgradesResult struct {
	Upgrades *upgrades.Upgrades
	Written
}

// Upgrades compares each pin with its remote's tracked branch and writes
// upgrades.json with its audit event.
func Upgrades(ctx context.Context, e *Env, o UpgradesOptions) (*UpgradesResult, error) {
	snap, err := snapshotOr(ctx, e, o.Snap)
	if err != nil {
		return nil, err
	}
	gcfg, ssh, err := e.Git()
	if err != nil {
		return nil, err
	}
	cfg := e.Config
	req := upgrades.Request{
		Snapshot: snap.Snapshot, Store: e.File("remotes"), Offline: o.Offline,
		Parallelism: cfg.Upgrades.Parallelism, Timeout: cfg.UpgradesTimeout(), Retries: cfg.Upgrades.Retries,
		InsteadOf: cfg.Upgrades.InsteadOf, Git: gcfg, SSH: ssh,
		Progress: func(done, total int) { e.progress("upgrades", done, total) },
	}
	if o.Parallelism > 0 {
		req.Parallelism = o.Parallelism
	}
	if o.Timeout > 0 {
		req.Timeout = o.Timeout
	}
	res, err := upgrades.Run(ctx, req)
	if errors.Is(err, workspace.ErrLockChanged) {
		return nil, exitcode.Input(err, "take a new snapshot (run without --snapshot)")
	}
	if err != nil {
		return nil, err
	}
	s := res.Upgrades.Summary
	w, err := writeArtifact(e, upgrades.Spec, firstOf(o.Out, e.File("upgrades.json")), snap.Inputs(), &res.Upgrades,
		audit.Event{Stage: "upgrades", Detail: fmt.Sprintf("%d behind, %d ahead, %d diverged, %d unknown", s.Behind, s.Ahead, s.Diverged, s.Unknown)})
	if err != nil {
		return nil, err
	}
	return &UpgradesResult{Upgrades: &res.Upgrades, Written: w}, nil
}

// ReadUpgrades reads an upgrades artifact (default: the state
// directory's); when it does not exist, the error says there is nothing
// for what (propose, plan) and hint how to make it.
func ReadUpgrades(e *Env, p, what, hint string) (*UpgradesResult, error) {
	p = firstOf(p, e.File("upgrades.json"))
	env, b, err := artifact.Read[upgrades.Upgrades](p, upgrades.Spec)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, exitcode.Input(fmt.Errorf("no %s: %s does not exist", what, p), hint)
	}
	if err != nil {
		return nil, exitcode.Input(fmt.Errorf("read upgrades: %w", err), "")
	}
	return &UpgradesResult{Upgrades: &env.Payload, Written: Written{Path: p, Digest: artifact.Digest(b), Bytes: b}}, nil
}

// UpgradesVerdict fails the stage when remotes could not be checked: one
// reason per cause, with its fix.
func UpgradesVerdict(u *upgrades.Upgrades) error {
	if len(u.Problems) == 0 {
		return nil
	}
	n := 0
	var causes []string
	for _, p := range u.Problems {
		n += len(p.Repos)
		c := fmt.Sprintf("%d: %s", len(p.Repos), p.Cause)
		if p.Hint != "" {
			c += " (hint: " + p.Hint + ")"
		}
		causes = append(causes, c)
	}
	if len(causes) > 3 {
		causes = append(causes[:3], fmt.Sprintf("%d more causes", len(causes)-3))
	}
	return &exitcode.FailError{Reason: fmt.Sprintf("upgrades: %d of %d repositories not checked: %s", n, u.Summary.Repos, strings.Join(causes, "; "))}
}
