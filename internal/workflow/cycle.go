package workflow

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/config"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/stage/cycle"
	"github.com/lambda-os/lambda-check/internal/stage/governance"
	"github.com/lambda-os/lambda-check/internal/stage/policy"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/stage/verify"
)

// CycleOptions are a cycle's flags; the configuration's cycle section
// adds to them.
type CycleOptions struct {
	// Offline: upgrades from already-fetched refs only.
	Offline bool
	// Skip leaves stages out.
	Skip []string
	// Progress, when set, is told when each stage starts and ends.
	Progress func(r *cycle.StageResult, finished bool)
}

// round is one cycle: the values its steps hand on to each other.
type round struct {
	e       *Env
	offline bool
	skip    []string
	// snap is the workspace as the stages see it; taken again after
	// anything the round applies.
	snap     *Snap
	policy   *policy.Config
	upgrades *UpgradesResult
	plan     *PlanResult
	// done are the stages finished so far (notify reports on them).
	done []cycle.StageResult
}

// Cycle runs one health-and-upgrade round, every stage in order; the lock
// is held. It writes cycle.json, appends to the health history and
// records the round.
func Cycle(ctx context.Context, e *Env, o CycleOptions) (*cycle.Summary, error) {
	cfg := e.Config
	for _, n := range o.Skip {
		if n == "snapshot" || n == "audit" || !slices.Contains(config.CycleStages, n) {
			return nil, &exitcode.UsageError{Err: fmt.Errorf("--skip %q: not a stage the cycle can leave out (verify, heal, policy, upgrades, plan, propose, governance, notify)", n)}
		}
	}
	if err := snapshot.CheckWorkspace(e.Workspace); err != nil {
		return nil, err
	}
	if err := e.mustHold(); err != nil {
		return nil, err
	}
	r := &round{e: e, offline: o.Offline || cfg.Cycle.Offline, skip: append(slices.Clone(cfg.Cycle.Skip), o.Skip...)}
	steps := []cycle.Step{
		r.step("snapshot", true, nil, r.takeSnapshot),
		r.step("verify", true, []string{"snapshot"}, r.verify),
		r.step("heal", true, []string{"verify"}, r.heal),
		r.step("policy", true, []string{"snapshot"}, r.checkPolicy),
		r.step("upgrades", false, []string{"snapshot"}, r.findUpgrades),
		r.step("plan", false, []string{"upgrades"}, r.makePlan),
		r.step("propose", false, []string{"plan"}, r.propose),
		r.step("governance", false, []string{"snapshot"}, r.governance),
		r.step("audit", true, nil, r.verifyAudit),
		r.step("notify", false, nil, r.notify),
	}
	sum, err := cycle.Run(ctx, cycle.Request{Now: e.Now, Steps: steps, Progress: func(s *cycle.StageResult, finished bool) {
		if finished {
			r.done = append(r.done, *s)
		}
		if o.Progress != nil {
			o.Progress(s, finished)
		}
	}})
	if err != nil {
		return nil, err
	}
	ev := audit.Event{Stage: "cycle", Detail: fmt.Sprintf("%s in %s", sum.Health, time.Duration(sum.DurationMs)*time.Millisecond)}
	switch {
	case sum.Exit == 1 || sum.Exit == 130:
		ev.Result = audit.ResultError
	case sum.Health != cycle.Healthy:
		ev.Result = audit.ResultFail
	}
	// The history line first: a cycle.json the log vouches for always has
	// its line in the history.
	if err := cycle.AppendHistory(e.File(CyclesFile), sum); err != nil {
		return nil, fmt.Errorf("append to %s: %w", CyclesFile, err)
	}
	if _, err := writeArtifact(e, cycle.Spec, e.File("cycle.json"), nil, sum, ev); err != nil {
		return nil, err
	}
	// The log anchors itself: a checkpoint of its head, this round's
	// events included.
	if p := cfg.Path(cfg.Audit.CheckpointKey); p != "" {
		if err := checkpointWith(e, p); err != nil {
			e.Logf("warning: audit.checkpointKey: %v", err)
		}
	}
	// The round is done and recorded; a report or metrics file that cannot
	// be written is said, not fatal.
	html, metrics := cfg.Path(cfg.Cycle.ReportHTML), cfg.Path(cfg.Cycle.MetricsFile)
	if html != "" || metrics != "" {
		rep, err := Report(ctx, e, 25)
		if err != nil {
			e.Logf("warning: the cycle's report: %v", err)
			return sum, nil
		}
		if html != "" {
			if err := WriteReportHTML(rep, html); err != nil {
				e.Logf("warning: cycle.reportHtml: %v", err)
			}
		}
		if metrics != "" {
			if err := WriteMetrics(rep, metrics); err != nil {
				e.Logf("warning: cycle.metricsFile: %v", err)
			}
		}
	}
	return sum, nil
}

// CycleVerdict is the error a cycle's summary makes.
func CycleVerdict(sum *cycle.Summary) error {
	switch sum.Exit {
	case 0:
		return nil
	case 130:
		return context.Canceled
	case 1:
		var broken []string
		for _, s := range sum.Stages {
			if s.Status == cycle.StatusError {
				broken = append(broken, s.Name)
			}
		}
		return fmt.Errorf("cycle: %s hit an error (cycle.json has it)", strings.Join(broken, ", "))
	}
	return &exitcode.FailError{Reason: fmt.Sprintf("cycle: health %s: %s", sum.Health, strings.Join(sum.Reasons, "; "))}
}

func (r *round) step(name string, health bool, needs []string, run func(context.Context) cycle.Outcome) cycle.Step {
	return cycle.Step{Name: name, Health: health, Needs: needs, Run: func(ctx context.Context) cycle.Outcome {
		if slices.Contains(r.skip, name) {
			return cycle.Outcome{Status: cycle.StatusSkipped, Detail: "left out by cycle.skip / --skip"}
		}
		return run(ctx)
	}}
}

// judged turns a stage's verdict (nil, a fail, or an error) into its
// outcome; detail and counts describe the result of a stage that ran.
func judged(verdict error, detail string, counts map[string]int) cycle.Outcome {
	switch exitcode.Of(verdict) {
	case exitcode.OK:
		return cycle.Outcome{Status: cycle.StatusOK, Detail: detail, Counts: counts}
	case exitcode.Fail:
		if detail == "" {
			detail = verdict.Error()
		}
		return cycle.Outcome{Status: cycle.StatusFail, Detail: detail, Counts: counts}
	}
	return cycle.Outcome{Err: withHint(verdict)}
}

// broke is the outcome of a stage that could not finish.
func broke(err error) cycle.Outcome { return judged(err, "", nil) }

func withHint(err error) error {
	if h := exitcode.Hint(err); h != "" {
		return fmt.Errorf("%w (hint: %s)", err, h)
	}
	return err
}

// snapshotAgain takes the workspace's snapshot after the round changed it.
func (r *round) snapshotAgain(ctx context.Context) error {
	s, err := TakeSnapshot(ctx, r.e, "")
	if err != nil {
		return fmt.Errorf("snapshot after the apply: %w", err)
	}
	r.snap = s
	return nil
}

// policyConfig is the workspace's policy configuration, read once.
func (r *round) policyConfig() (*policy.Config, error) {
	if r.policy == nil {
		c, err := LoadPolicyConfig(r.e.Workspace, "")
		if err != nil {
			return nil, err
		}
		r.policy = c
	}
	return r.policy, nil
}

func (r *round) takeSnapshot(ctx context.Context) cycle.Outcome {
	s, err := TakeSnapshot(ctx, r.e, "")
	if err != nil {
		return broke(err)
	}
	r.snap = s
	counts := map[string]int{"submodules": len(s.Snapshot.Submodules)}
	for _, m := range s.Snapshot.Submodules {
		if m.State != "clean" {
			counts["notClean"]++
		}
	}
	return judged(nil, fmt.Sprintf("%d submodules, %d not clean", counts["submodules"], counts["notClean"]), counts)
}

func (r *round) verify(ctx context.Context) cycle.Outcome {
	dir := ModulesDir(r.e)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return cycle.Outcome{Status: cycle.StatusSkipped, Detail: "no modules to verify: " + dir + " does not exist (verify.modulesDir)"}
	}
	res, err := Verify(ctx, r.e, VerifyOptions{Snap: r.snap})
	if err != nil {
		return broke(err)
	}
	s := res.Report.Summary
	return judged(VerifyVerdict(res.Report), fmt.Sprintf("%s: %d of %d modules pass", s.Verdict, s.Pass, s.Modules)+failingModules(res.Report.Modules),
		map[string]int{"modules": s.Modules, "pass": s.Pass, "fail": s.Fail})
}

func (r *round) heal(ctx context.Context) cycle.Outcome {
	pcfg, err := r.policyConfig()
	if err != nil {
		return broke(err)
	}
	res, err := Heal(ctx, r.e, HealOptions{Snap: r.snap, Policy: pcfg})
	if err != nil {
		return broke(err)
	}
	if res.Moved {
		if err := r.snapshotAgain(ctx); err != nil {
			return broke(err)
		}
	}
	n := len(res.Report.Regressions)
	return judged(HealVerdict(res.Report), fmt.Sprintf("%s: %d regressions", res.Report.Verdict, n), map[string]int{"regressions": n})
}

func (r *round) checkPolicy(ctx context.Context) cycle.Outcome {
	pcfg, err := r.policyConfig()
	if err != nil {
		return broke(err)
	}
	res, err := Policy(ctx, r.e, PolicyOptions{Snap: r.snap, Fresh: true, Config: pcfg})
	if err != nil {
		return broke(err)
	}
	s := res.Report.Summary
	return judged(PolicyVerdict(res.Report, false), fmt.Sprintf("%s: %d deny, %d warn", s.Verdict, s.Deny, s.Warn)+denyNames(res.Report.Findings),
		map[string]int{"deny": s.Deny, "warn": s.Warn})
}

// namedFindings is how many deny findings (or failing modules) a stage's
// detail names; the rest are counted.
const namedFindings = 3

// denyNames names the deny findings where health is shown (the cycle's
// output, the report, every notification): rule, subject and hint.
func denyNames(fs []policy.Finding) string {
	var names []string
	n := 0
	for _, f := range fs {
		if f.Severity != policy.Deny {
			continue
		}
		n++
		if len(names) < namedFindings {
			s := f.Rule + " " + f.Subject.Name
			if f.Hint != "" {
				s += ": " + firstLine(f.Hint)
			}
			names = append(names, s)
		}
	}
	if n == 0 {
		return ""
	}
	out := " — " + strings.Join(names, "; ")
	if n > len(names) {
		out += fmt.Sprintf("; and %d more", n-len(names))
	}
	return out
}

// failingModules names the modules that failed, with their reasons.
func failingModules(ms []verify.Module) string {
	var names []string
	n := 0
	for _, m := range ms {
		if m.Verdict == verify.Pass {
			continue
		}
		n++
		if len(names) < namedFindings {
			names = append(names, m.Name+" "+m.Reason)
		}
	}
	if n == 0 {
		return ""
	}
	out := " — " + strings.Join(names, "; ")
	if n > len(names) {
		out += fmt.Sprintf("; and %d more", n-len(names))
	}
	return out
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func (r *round) findUpgrades(ctx context.Context) cycle.Outcome {
	res, err := Upgrades(ctx, r.e, UpgradesOptions{Snap: r.snap, Offline: r.offline})
	if err != nil {
		return broke(err)
	}
	r.upgrades = res
	s := res.Upgrades.Summary
	return judged(UpgradesVerdict(res.Upgrades), fmt.Sprintf("%d behind, %d ahead, %d diverged, %d unknown", s.Behind, s.Ahead, s.Diverged, s.Unknown),
		map[string]int{"behind": s.Behind, "ahead": s.Ahead, "diverged": s.Diverged, "unknown": s.Unknown})
}

func (r *round) makePlan(ctx context.Context) cycle.Outcome {
	res, err := Plan(ctx, r.e, PlanOptions{Upgrades: r.upgrades})
	if err != nil {
		return broke(err)
	}
	r.plan = res
	p := res.Plan
	return judged(nil, fmt.Sprintf("%d changes in %d levels", len(p.Changes), len(p.Levels)),
		map[string]int{"changes": len(p.Changes), "levels": len(p.Levels)})
}

func (r *round) propose(ctx context.Context) cycle.Outcome {
	pcfg, err := r.policyConfig()
	if err != nil {
		return broke(err)
	}
	res, err := Propose(ctx, r.e, ProposeOptions{Snap: r.snap, Upgrades: r.upgrades, Plan: r.plan.Plan, Policy: pcfg,
		WorkspaceURL: r.e.Config.Cycle.WorkspaceURL})
	if err != nil {
		return broke(err)
	}
	pruned := 0
	if !r.e.Config.Cycle.KeepStale {
		ids, err := Prune(ctx, r.e, r.snap, false)
		if err != nil {
			return cycle.Outcome{Err: fmt.Errorf("prune: %w", err)}
		}
		pruned = len(ids)
	}
	ls, err := Proposals(ctx, r.e, r.snap)
	if err != nil {
		return judged(ProposeVerdict(res.Outcomes), "", nil)
	}
	counts := map[string]int{"proposals": len(ls)}
	for _, l := range ls {
		counts[l.Status]++
	}
	detail := fmt.Sprintf("%d proposals, %d pending", len(ls), counts["pending"])
	if pruned > 0 {
		counts["pruned"] = pruned
		detail += fmt.Sprintf(" (%d stale or superseded pruned)", pruned)
	}
	return judged(ProposeVerdict(res.Outcomes), detail, counts)
}

// governance lets the program backend decide pending proposals and, with
// governance.autoApply, applies the approved ones in plan order, taking
// the snapshot again after each.
func (r *round) governance(ctx context.Context) cycle.Outcome {
	e := r.e
	if e.Config.KeysPath() == "" {
		return cycle.Outcome{Status: cycle.StatusSkipped, Detail: "no key registry (\"keys\" in the config): proposals wait for 'governance approve'"}
	}
	if e.Config.Governance.Backend == governance.Program {
		// A decider that does not decide leaves its proposals pending: the
		// round goes on with the others.
		if _, err := Decide(ctx, e, r.snap, nil); err != nil && exitcode.Of(err) != exitcode.Fail {
			return broke(err)
		}
	}
	genv, err := Governance(ctx, e, r.snap)
	if err != nil {
		return broke(err)
	}
	states, err := governance.Evaluate(genv)
	if err != nil {
		return broke(err)
	}
	counts := map[string]int{}
	for _, s := range states {
		counts[s.State]++
	}
	detail := fmt.Sprintf("%d proposals: %d pending, %d approved, %d applied", len(states), counts["pending"], counts["approved"], counts["applied"])
	if !e.Config.Governance.AutoApply {
		return judged(nil, detail, counts)
	}
	// Leaves first: the plan level each proposal was made at (-1, no
	// flake input, last).
	level := map[string]int{}
	if ls, err := Proposals(ctx, e, r.snap); err == nil {
		for _, l := range ls {
			if l.Proposal != nil {
				level[l.Proposal.ID] = l.Proposal.Level
			}
		}
	}
	rank := func(id string) int {
		if lv, ok := level[id]; ok && lv >= 0 {
			return lv
		}
		return 1 << 30
	}
	sort.SliceStable(states, func(i, j int) bool { return rank(states[i].ID) < rank(states[j].ID) })
	var failed []string
	applied := 0
	for _, s := range states {
		if s.State != governance.StateApproved {
			continue
		}
		// Each apply moves the base; the next proposal is checked against
		// the workspace as it is then.
		genv, err := Governance(ctx, e, r.snap)
		if err == nil {
			_, err = Apply(ctx, e, genv, s.ID, false)
			if aerr := r.snapshotAgain(ctx); aerr != nil {
				return broke(aerr)
			}
		}
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", s.ID, withHint(err)))
			continue
		}
		applied++
	}
	counts["appliedNow"] = applied
	detail += fmt.Sprintf("; applied now: %d", applied)
	if len(failed) > 0 {
		return cycle.Outcome{Status: cycle.StatusFail, Detail: detail + "; not applied: " + strings.Join(failed, "; "), Counts: counts}
	}
	return judged(nil, detail, counts)
}

func (r *round) verifyAudit(ctx context.Context) cycle.Outcome {
	res, err := AuditVerify(ctx, r.e, "", "")
	if err != nil {
		return broke(err)
	}
	if v := AuditVerdict(res.Report); v != nil {
		return judged(v, v.Error(), nil)
	}
	return judged(nil, "the chain verifies", nil)
}

func (r *round) notify(ctx context.Context) cycle.Outcome {
	if len(r.e.Config.Notify.Channels) == 0 {
		return cycle.Outcome{Status: cycle.StatusSkipped, Detail: "no channels configured (notify.channels)"}
	}
	rec, err := Notify(ctx, r.e, NotifyOptions{Stages: r.done, Snap: r.snap})
	if err != nil {
		if errors.Is(err, ErrNoNotify) {
			return cycle.Outcome{Status: cycle.StatusSkipped, Detail: err.Error()}
		}
		return broke(err)
	}
	counts := map[string]int{}
	for _, d := range rec.Deliveries {
		counts[d.Status]++
	}
	detail := fmt.Sprintf("%d sent, %d quiet, %d failed", counts["sent"], counts["quiet"], counts["failed"])
	if counts["failed"] > 0 {
		for _, d := range rec.Deliveries {
			if d.Status == "failed" {
				detail += fmt.Sprintf("; %s: %s", d.Channel, d.Error)
			}
		}
		return cycle.Outcome{Status: cycle.StatusFail, Detail: detail, Counts: counts}
	}
	return judged(nil, detail, counts)
}

// checkpointWith signs a checkpoint of the log's head with the key file p;
// a failure is recorded.
func checkpointWith(e *Env, p string) error {
	k, err := sign.ReadPrivateKey(p)
	if err == nil {
		_, err = Checkpoint(e, k)
	}
	if err != nil {
		if rerr := e.Record(audit.Event{Stage: "checkpoint", Result: audit.ResultFail, Detail: "the cycle's checkpoint: " + err.Error()}); rerr != nil {
			return rerr
		}
	}
	return err
}
