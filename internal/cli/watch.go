package cli

import (
	"context"
	"errors"
	"time"

	"github.com/lambda-os/lambda-check/internal/workflow"
)

// WatchCmd is "lambda-check watch".
type WatchCmd struct {
	Interval time.Duration `default:"5m" help:"Time from the start of one cycle to the start of the next."`
	Count    int           `placeholder:"N" help:"Stop after N cycles (default: run until interrupted)."`
	CycleCmd `embed:""`
}

// Help is shown by "lambda-check watch --help".
func (c *WatchCmd) Help() string {
	return `Runs 'lambda-check cycle' every --interval in the foreground, for hosts
without systemd (where the NixOS module's timer does this). A cycle that
fails or breaks is reported and the next one still runs; a cycle still
running when the next is due delays it (cycles never overlap). SIGINT or
SIGTERM stops cleanly: between cycles at once, during one by interrupting
the running stage (its artifacts stay whole; the cycle is recorded as
cancelled). Exits with the last cycle's code.`
}

// Run loops.
func (c *WatchCmd) Run(rt *Runtime) error {
	if c.Interval < time.Second {
		return errUsage("--interval must be at least 1s, got %s", c.Interval)
	}
	var last error
	for n := 1; c.Count == 0 || n <= c.Count; n++ {
		start := time.Now()
		sum, err := runCycle(rt, &c.CycleCmd)
		switch {
		case err != nil && errors.Is(err, context.Canceled):
			return err
		case err != nil:
			// A cycle that could not even start (locked, bad config): say
			// so and try again next time.
			rt.Logf("cycle %d: %v", n, err)
			last = err
		default:
			last = workflow.CycleVerdict(sum)
			rt.Logf("cycle %d: %s in %s (exit %d)", n, sum.Health, time.Duration(sum.DurationMs)*time.Millisecond, sum.Exit)
			if sum.Exit == 130 {
				return context.Canceled
			}
		}
		if c.Count != 0 && n == c.Count {
			break
		}
		select {
		case <-rt.Ctx.Done():
			rt.Logf("stopped")
			return nil
		case <-time.After(time.Until(start.Add(c.Interval))):
		}
	}
	return last
}
