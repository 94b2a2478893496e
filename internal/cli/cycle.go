package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/config"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/stage/cycle"
	"github.com/lambda-os/lambda-check/internal/stage/governance"
	"github.com/lambda-os/lambda-check/internal/stage/heal"
	"github.com/lambda-os/lambda-check/internal/stage/plan"
	"github.com/lambda-os/lambda-check/internal/stage/policy"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/stage/upgrades"
	"github.com/lambda-os/lambda-check/internal/stage/verify"
	"github.com/lambda-os/lambda-check/internal/statedir"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// historyOfCycles is the health history the report reads.
const historyOfCycles = "cycles.jsonl"

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
	return cycleError(sum)
}

func cycleError(sum *cycle.Summary) error {
	switch sum.Exit {
	case 0:
		return nil
	case 130:
		return context.Canceled
	case 1:
		var broken []string
		for _, r := range sum.Stages {
			if r.Status == cycle.StatusError {
				broken = append(broken, r.Name)
			}
		}
		return fmt.Errorf("cycle: %s hit an error (cycle.json has it)", strings.Join(broken, ", "))
	}
	return &exitcode.FailError{Reason: fmt.Sprintf("cycle: health %s: %s", sum.Health, strings.Join(sum.Reasons, "; "))}
}

// runCycle takes the lock, runs the stages, and writes cycle.json, the
// history line and the audit event.
func runCycle(rt *Runtime, c *CycleCmd) (*cycle.Summary, error) {
	cfg, err := rt.Config()
	if err != nil {
		return nil, err
	}
	if err := snapshot.CheckWorkspace(rt.WorkspaceDir()); err != nil {
		return nil, err
	}
	skip := append(slices.Clone(cfg.Cycle.Skip), c.Skip...)
	for _, n := range c.Skip {
		if n == "snapshot" || n == "audit" || !slices.Contains(config.CycleStages, n) {
			return nil, errUsage("--skip %q: not a stage the cycle can leave out (verify, heal, policy, upgrades, plan, propose, governance, notify)", n)
		}
	}
	sd, unlock, err := rt.LockState()
	if err != nil {
		return nil, err
	}
	defer unlock()
	now := func() time.Time {
		t, err := rt.Clock()
		if err != nil {
			return time.Now().UTC()
		}
		return t
	}
	var done []cycle.StageResult
	// One snapshot for the whole round, taken again after an apply.
	rt.snaps = &snapshotCache{}
	defer func() { rt.snaps = nil }()
	req := cycle.Request{Now: now, Steps: cycleSteps(rt, sd, cfg, c.Offline || cfg.Cycle.Offline, skip, &done)}
	req.Progress = func(r *cycle.StageResult, finished bool) {
		if finished {
			done = append(done, *r)
		}
		if !rt.Env.IsTerminal || rt.Globals.JSON {
			return
		}
		if !finished {
			fmt.Fprintf(rt.Env.Stderr, "lambda-check: cycle: %-10s …", r.Name)
			return
		}
		fmt.Fprintf(rt.Env.Stderr, "\rlambda-check: cycle: %-10s %s (%s)\n", r.Name, r.Status, time.Duration(r.DurationMs)*time.Millisecond)
	}
	sum, err := cycle.Run(rt.Ctx, req)
	if err != nil {
		return nil, err
	}
	b, _, err := artifact.Write(sd.File("cycle.json"), &artifact.Envelope[*cycle.Summary]{
		Kind: cycle.Spec.Kind, SchemaVersion: cycle.Spec.Version, Producer: rt.Producer(), Payload: sum,
	})
	if err != nil {
		return nil, err
	}
	if err := cycle.AppendHistory(sd.File(historyOfCycles), sum); err != nil {
		return nil, fmt.Errorf("append to %s: %w", historyOfCycles, err)
	}
	result := audit.ResultOK
	switch {
	case sum.Exit == 1 || sum.Exit == 130:
		result = audit.ResultError
	case sum.Health != cycle.Healthy:
		result = audit.ResultFail
	}
	if err := rt.record(sd, audit.Event{Stage: "cycle", Output: output(cycle.Spec.Kind, sd.File("cycle.json"), b), Result: result,
		Detail: fmt.Sprintf("%s in %s", sum.Health, time.Duration(sum.DurationMs)*time.Millisecond)}); err != nil {
		return nil, err
	}
	if p := cfg.Path(cfg.Cycle.ReportHTML); p != "" {
		if err := writeReportHTML(rt, p); err != nil {
			// The round is done and recorded; a report that cannot be
			// written is said, not fatal.
			rt.Logf("warning: cycle.reportHtml: %v", err)
		}
	}
	return sum, nil
}

// stageRun runs a command as a stage of the cycle: in a runtime that uses
// the cycle's lock, with its stdout discarded (the artifact is the result)
// and its stderr kept for the record when it breaks.
func stageRun(rt *Runtime, sd *statedir.Dir, run func(*Runtime) error) cycle.Outcome {
	g := *rt.Globals
	g.JSON = false
	var errBuf bytes.Buffer
	env := rt.Env
	env.Stdout, env.Stderr, env.IsTerminal = io.Discard, &errBuf, false
	child := &Runtime{Ctx: rt.Ctx, Env: env, Globals: &g, cfg: rt.cfg, held: sd, snaps: rt.snaps}
	err := run(child)
	switch exitcode.Of(err) {
	case exitcode.OK:
		return cycle.Outcome{Status: cycle.StatusOK}
	case exitcode.Fail:
		return cycle.Outcome{Status: cycle.StatusFail, Detail: err.Error()}
	}
	if h := exitcode.Hint(err); h != "" {
		err = fmt.Errorf("%w (hint: %s)", err, h)
	}
	return cycle.Outcome{Err: err}
}

func cycleSteps(rt *Runtime, sd *statedir.Dir, cfg *config.Config, offline bool, skip []string, done *[]cycle.StageResult) []cycle.Step {
	skipped := func(name string) bool { return slices.Contains(skip, name) }
	step := func(name string, health bool, needs []string, f func(context.Context) cycle.Outcome) cycle.Step {
		return cycle.Step{Name: name, Health: health, Needs: needs, Run: func(ctx context.Context) cycle.Outcome {
			if skipped(name) {
				return cycle.Outcome{Status: cycle.StatusSkipped, Detail: "left out by cycle.skip / --skip"}
			}
			return f(ctx)
		}}
	}
	ws := rt.WorkspaceDir()
	return []cycle.Step{
		step("snapshot", true, nil, func(context.Context) cycle.Outcome {
			o := stageRun(rt, sd, (&SnapshotCmd{}).Run)
			if o.Err == nil {
				o.Detail, o.Counts = snapshotDetail(sd)
			}
			return o
		}),
		step("verify", true, []string{"snapshot"}, func(context.Context) cycle.Outcome {
			dir := firstOf(cfg.Path(cfg.Verify.ModulesDir), filepath.Join(ws, "result", "modules"))
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				return cycle.Outcome{Status: cycle.StatusSkipped, Detail: "no modules to verify: " + dir + " does not exist (verify.modulesDir)"}
			}
			o := stageRun(rt, sd, (&VerifyCmd{}).Run)
			if o.Err == nil {
				if env, _, err := artifact.Read[verify.Report](sd.File("verify.json"), verify.Spec); err == nil {
					s := env.Payload.Summary
					o.Detail = fmt.Sprintf("%s: %d of %d modules pass", s.Verdict, s.Pass, s.Modules)
					o.Counts = map[string]int{"modules": s.Modules, "pass": s.Pass, "fail": s.Fail}
				}
			}
			return o
		}),
		step("heal", true, []string{"verify"}, func(context.Context) cycle.Outcome {
			o := stageRun(rt, sd, (&HealCmd{}).Run)
			if o.Err == nil {
				if env, _, err := artifact.Read[heal.Report](sd.File("heal.json"), heal.Spec); err == nil {
					o.Detail = fmt.Sprintf("%s: %d regressions", env.Payload.Verdict, len(env.Payload.Regressions))
					o.Counts = map[string]int{"regressions": len(env.Payload.Regressions)}
				}
			}
			return o
		}),
		step("policy", true, []string{"snapshot"}, func(context.Context) cycle.Outcome {
			o := stageRun(rt, sd, (&PolicyCmd{FailOn: "deny"}).Run)
			if o.Err == nil {
				if env, _, err := artifact.Read[policy.Report](sd.File("policy.json"), policy.Spec); err == nil {
					s := env.Payload.Summary
					o.Detail = fmt.Sprintf("%s: %d deny, %d warn", s.Verdict, s.Deny, s.Warn)
					o.Counts = map[string]int{"deny": s.Deny, "warn": s.Warn}
				}
			}
			return o
		}),
		step("upgrades", false, []string{"snapshot"}, func(context.Context) cycle.Outcome {
			o := stageRun(rt, sd, (&UpgradesCmd{Offline: offline}).Run)
			if o.Err == nil {
				if env, _, err := artifact.Read[upgrades.Upgrades](sd.File("upgrades.json"), upgrades.Spec); err == nil {
					s := env.Payload.Summary
					o.Detail = fmt.Sprintf("%d behind, %d ahead, %d diverged, %d unknown", s.Behind, s.Ahead, s.Diverged, s.Unknown)
					o.Counts = map[string]int{"behind": s.Behind, "ahead": s.Ahead, "diverged": s.Diverged, "unknown": s.Unknown}
				}
			}
			return o
		}),
		step("plan", false, []string{"upgrades"}, func(context.Context) cycle.Outcome {
			o := stageRun(rt, sd, (&PlanCmd{}).Run)
			if o.Err == nil {
				if env, _, err := artifact.Read[plan.Plan](sd.File("plan.json"), plan.Spec); err == nil {
					o.Detail = fmt.Sprintf("%d changes in %d levels", len(env.Payload.Changes), len(env.Payload.Levels))
					o.Counts = map[string]int{"changes": len(env.Payload.Changes), "levels": len(env.Payload.Levels)}
				}
			}
			return o
		}),
		step("propose", false, []string{"plan"}, func(context.Context) cycle.Outcome {
			o := stageRun(rt, sd, (&ProposeCmd{WorkspaceURL: cfg.Cycle.WorkspaceURL}).Run)
			pruned := 0
			if o.Err == nil && !cfg.Cycle.KeepStale {
				ids, err := pruneLocked(rt, sd, false)
				if err != nil {
					return cycle.Outcome{Err: fmt.Errorf("prune: %w", err)}
				}
				pruned = len(ids)
			}
			if o.Err == nil {
				if ls, err := listProposals(rt); err == nil {
					o.Counts = map[string]int{"proposals": len(ls)}
					for _, l := range ls {
						o.Counts[l.Status]++
					}
					o.Detail = fmt.Sprintf("%d proposals, %d pending", len(ls), o.Counts["pending"])
					if pruned > 0 {
						o.Counts["pruned"] = pruned
						o.Detail += fmt.Sprintf(" (%d stale or superseded pruned)", pruned)
					}
				}
			}
			return o
		}),
		step("governance", false, []string{"snapshot"}, func(context.Context) cycle.Outcome {
			return cycleGovernance(rt, sd, cfg)
		}),
		step("audit", true, nil, func(context.Context) cycle.Outcome {
			o := stageRun(rt, sd, (&AuditVerifyCmd{}).Run)
			if o.Status == cycle.StatusOK {
				o.Detail = "the chain verifies"
			}
			return o
		}),
		step("notify", false, nil, func(ctx context.Context) cycle.Outcome {
			if len(cfg.Notify.Channels) == 0 {
				return cycle.Outcome{Status: cycle.StatusSkipped, Detail: "no channels configured (notify.channels)"}
			}
			return cycleNotify(ctx, rt, sd, cfg, *done)
		}),
	}
}

func snapshotDetail(sd *statedir.Dir) (string, map[string]int) {
	env, _, err := artifact.Read[workspace.Snapshot](sd.File("snapshot.json"), workspace.SnapshotSpec)
	if err != nil {
		return "", nil
	}
	s := env.Payload
	counts := map[string]int{"submodules": len(s.Submodules)}
	for _, m := range s.Submodules {
		if m.State != "clean" {
			counts["notClean"]++
		}
	}
	return fmt.Sprintf("%d submodules, %d not clean", counts["submodules"], counts["notClean"]), counts
}

// cycleGovernance lets the program backend decide pending proposals and,
// with governance.autoApply, applies the approved ones in plan order.
func cycleGovernance(rt *Runtime, sd *statedir.Dir, cfg *config.Config) cycle.Outcome {
	if cfg.KeysPath() == "" {
		return cycle.Outcome{Status: cycle.StatusSkipped, Detail: "no key registry (\"keys\" in the config): proposals wait for 'governance approve'"}
	}
	if cfg.Governance.Backend == governance.Program {
		o := stageRun(rt, sd, (&GovDecideCmd{}).Run)
		if o.Err != nil {
			return o
		}
	}
	env, err := govEnv(rt, sd, true)
	if err != nil {
		return cycle.Outcome{Err: err}
	}
	states, err := governance.Evaluate(env)
	if err != nil {
		return cycle.Outcome{Err: err}
	}
	counts := map[string]int{}
	for _, s := range states {
		counts[s.State]++
	}
	detail := fmt.Sprintf("%d proposals: %d pending, %d approved, %d applied", len(states), counts["pending"], counts["approved"], counts["applied"])
	if !cfg.Governance.AutoApply {
		return cycle.Outcome{Status: cycle.StatusOK, Detail: detail, Counts: counts}
	}
	var failed []string
	applied := 0
	for _, s := range states {
		if s.State != governance.StateApproved {
			continue
		}
		// Each apply moves the base; the next proposal is checked against it.
		o := stageRun(rt, sd, func(child *Runtime) error {
			env, err := govEnv(child, sd, true)
			if err != nil {
				return err
			}
			return applyLocked(child, sd, env, s.ID, false)
		})
		if o.Err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", s.ID, o.Err))
			continue
		}
		applied++
	}
	counts["appliedNow"] = applied
	detail += fmt.Sprintf("; applied now: %d", applied)
	if len(failed) > 0 {
		return cycle.Outcome{Status: cycle.StatusFail, Detail: detail + "; not applied: " + strings.Join(failed, "; "), Counts: counts}
	}
	return cycle.Outcome{Status: cycle.StatusOK, Detail: detail, Counts: counts}
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
