package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/stage/cycle"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/workflow"
)

// CycleCmd is "lambda-check cycle".
type CycleCmd struct {
	Offline bool     `help:"Upgrades from already-fetched refs only (cycle.offline in the config)."`
	Skip    []string `placeholder:"STAGE" help:"Leave a stage out (repeatable; cycle.skip in the config)."`
}

// Help is shown by "lambda-check cycle --help".
func (c *CycleCmd) Help() string {
	return `Runs one health-and-upgrade round under the state directory's lock:
snapshot → verify → heal → policy → upgrades → plan → propose → governance
(the program backend decides; governance.autoApply applies what is approved)
→ audit verify → notify. A stage that fails with a verdict or hits an error is
recorded and the round goes on with the stages that do not need it. The
stages share one snapshot; after proposing, stale and superseded proposals
nobody decided on are pruned (cycle.keepStale keeps them). Writes cycle.json
(each stage's status, duration, numbers; the node's health: healthy,
degraded or unknown, with the reasons), appends to cycles.jsonl, the history
'report' reads, and with cycle.reportHtml rewrites the HTML report. A second cycle on the same state directory waits
up to --lock-timeout, then exits with a clear message; it never interleaves.

Exit: 0 healthy; 3 degraded or unknown (a stage that judges the node failed,
or could not judge: nothing verified is never healthy); 1 a stage hit an
error (see cycle.json); 130 interrupted.`
}

// Run runs one cycle.
func (c *CycleCmd) Run(rt *Runtime) error {
	sum, err := runCycle(rt, c)
	if err != nil {
		return err
	}
	if rt.Globals.JSON {
		if err := rt.PrintJSON(sum); err != nil {
			return err
		}
	} else {
		renderCycle(rt, sum)
	}
	return workflow.CycleVerdict(sum)
}

// runCycle runs one cycle under the lock, with a line per stage on a
// terminal.
func runCycle(rt *Runtime, c *CycleCmd) (*cycle.Summary, error) {
	if err := snapshot.CheckWorkspace(rt.WorkspaceDir()); err != nil {
		return nil, err
	}
	e, release, err := rt.Lock()
	if err != nil {
		return nil, err
	}
	defer release()
	// A stage's own progress would garble the cycle's lines.
	e.Progress = nil
	o := workflow.CycleOptions{Offline: c.Offline, Skip: c.Skip}
	if rt.Env.IsTerminal && !rt.Globals.JSON {
		o.Progress = func(r *cycle.StageResult, finished bool) {
			if !finished {
				fmt.Fprintf(rt.Env.Stderr, "lambda-check: cycle: %-10s …", r.Name)
				return
			}
			fmt.Fprintf(rt.Env.Stderr, "\rlambda-check: cycle: %-10s %s (%s)\n", r.Name, r.Status, time.Duration(r.DurationMs)*time.Millisecond)
		}
	}
	return workflow.Cycle(rt.Ctx, e, o)
}

func renderCycle(rt *Runtime, s *cycle.Summary) {
	for _, r := range s.Stages {
		what := r.Detail
		if r.Error != "" {
			what = r.Error
		}
		rt.Printf("%-10s %-9s %7s  %s\n", r.Name, r.Status, (time.Duration(r.DurationMs) * time.Millisecond).String(), what)
	}
	rt.Printf("health: %s", s.Health)
	if len(s.Reasons) > 0 {
		rt.Printf(" (%s)", strings.Join(s.Reasons, "; "))
	}
	rt.Printf("\n")
}
