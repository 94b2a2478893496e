// Package cycle runs the stages of one health-and-upgrade round in order
// and sums them up: which ran, which failed with a verdict, which hit an
// error, which were skipped because a stage they need produced nothing,
// and what that says about the node's health. The stages themselves are
// given as steps; the cycle knows only their names, what each needs and
// whether its verdict is part of the node's health.
package cycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/statedir"
)

// Spec is the cycle summary artifact's kind and version.
var Spec = artifact.Spec{Kind: "lambda-check/cycle", Version: 1}

// Stage statuses.
const (
	// StatusOK: the stage ran and its verdict, if any, is pass.
	StatusOK = "ok"
	// StatusFail: the stage ran, wrote its artifact, and its verdict is fail.
	StatusFail = "fail"
	// StatusError: the stage could not finish; it has no verdict.
	StatusError = "error"
	// StatusSkipped: the stage did not run (a stage it needs produced
	// nothing, or it is not configured); Detail says why.
	StatusSkipped = "skipped"
	// StatusCancelled: the cycle was interrupted before or during it.
	StatusCancelled = "cancelled"
)

// Health of the node as one cycle saw it.
const (
	// Healthy: every stage that judges the node ran and passed.
	Healthy = "healthy"
	// Degraded: at least one of them ran and failed.
	Degraded = "degraded"
	// Unknown: none failed, but at least one could not judge (error,
	// skipped, cancelled). Nothing checked is never healthy.
	Unknown = "unknown"
)

// Step is one stage of the cycle.
type Step struct {
	Name string
	// Needs names earlier steps whose artifact this one reads: it runs
	// only when each of them ended ok or fail.
	Needs []string
	// Health marks a stage whose verdict is part of the node's health.
	Health bool
	// Run runs the stage.
	Run func(ctx context.Context) Outcome
}

// Outcome is what a step reports.
type Outcome struct {
	// Status is StatusOK, StatusFail or StatusSkipped; with Err set it is
	// taken as StatusError (or StatusCancelled when Err is a context error).
	Status string
	// Detail is one line for people: the verdict's summary or why skipped.
	Detail string
	// Counts are the stage's numbers (modules, findings, upgrades, ...).
	Counts map[string]int
	Err    error
}

// StageResult is one stage's line in the summary.
type StageResult struct {
	Name       string         `json:"name"`
	Status     string         `json:"status"`
	Health     bool           `json:"health,omitempty"`
	Detail     string         `json:"detail,omitempty"`
	Error      string         `json:"error,omitempty"`
	Counts     map[string]int `json:"counts,omitempty"`
	Started    string         `json:"started"`
	DurationMs int64          `json:"durationMs"`
}

// Summary is cycle.json's payload.
type Summary struct {
	Started    string        `json:"started"`
	Finished   string        `json:"finished"`
	DurationMs int64         `json:"durationMs"`
	Health     string        `json:"health"`
	Reasons    []string      `json:"reasons"`
	Stages     []StageResult `json:"stages"`
	// Exit is the cycle's exit code: 1 when a stage hit an error, 130 when
	// cancelled, else 0 when healthy and 3 when not.
	Exit int `json:"exit"`
}

// Stage returns the named stage's result, or nil.
func (s *Summary) Stage(name string) *StageResult {
	for i := range s.Stages {
		if s.Stages[i].Name == name {
			return &s.Stages[i]
		}
	}
	return nil
}

// Request is a cycle to run.
type Request struct {
	Steps []Step
	// Now is the clock the summary's times come from (durations are
	// measured on the monotonic clock).
	Now func() time.Time
	// Progress, when set, is told when each stage starts and ends.
	Progress func(r *StageResult, done bool)
}

// Run runs the steps in order. It never stops early: a failed or broken
// stage is recorded and the steps that do not need it run; after a
// cancellation the remaining steps are marked cancelled.
func Run(ctx context.Context, req Request) (*Summary, error) {
	now := req.Now
	if now == nil {
		now = time.Now
	}
	seen := map[string]bool{}
	for _, s := range req.Steps {
		if s.Name == "" || seen[s.Name] {
			return nil, fmt.Errorf("cycle: step name %q is empty or repeated", s.Name)
		}
		for _, n := range s.Needs {
			if !seen[n] {
				return nil, fmt.Errorf("cycle: step %q needs %q, which does not run before it", s.Name, n)
			}
		}
		seen[s.Name] = true
	}
	start, mono := now(), time.Now()
	sum := &Summary{Started: stamp(start), Stages: make([]StageResult, 0, len(req.Steps))}
	status := map[string]string{}
	for _, s := range req.Steps {
		r := StageResult{Name: s.Name, Health: s.Health, Started: stamp(now())}
		if req.Progress != nil {
			req.Progress(&r, false)
		}
		t0 := time.Now()
		switch missing := unmet(s.Needs, status); {
		case ctx.Err() != nil:
			r.Status, r.Detail = StatusCancelled, "the cycle was interrupted"
		case missing != "":
			r.Status, r.Detail = StatusSkipped, fmt.Sprintf("needs %s, which %s", missing, verb(status[missing]))
		default:
			o := s.Run(ctx)
			r.Status, r.Detail, r.Counts = o.Status, o.Detail, o.Counts
			switch {
			case o.Err != nil && (errors.Is(o.Err, context.Canceled) || ctx.Err() != nil):
				r.Status, r.Error = StatusCancelled, o.Err.Error()
			case o.Err != nil:
				r.Status, r.Error = StatusError, o.Err.Error()
			case r.Status == "":
				r.Status = StatusOK
			}
		}
		r.DurationMs = time.Since(t0).Milliseconds()
		status[s.Name] = r.Status
		sum.Stages = append(sum.Stages, r)
		if req.Progress != nil {
			req.Progress(&sum.Stages[len(sum.Stages)-1], true)
		}
	}
	sum.Finished = stamp(start.Add(time.Since(mono)))
	sum.DurationMs = time.Since(mono).Milliseconds()
	sum.Health, sum.Reasons = Judge(sum.Stages)
	sum.Exit = exit(sum)
	return sum, nil
}

func unmet(needs []string, status map[string]string) string {
	for _, n := range needs {
		if st := status[n]; st != StatusOK && st != StatusFail {
			return n
		}
	}
	return ""
}

func verb(status string) string {
	switch status {
	case StatusError:
		return "hit an error"
	case StatusCancelled:
		return "was cancelled"
	default:
		return "was " + status
	}
}

// Judge derives the node's health from the stages that judge it: degraded
// when one failed, else unknown when one has no verdict, else healthy.
// The reasons name the stages.
func Judge(stages []StageResult) (string, []string) {
	var failed, unknown []string
	judged := 0
	for _, r := range stages {
		if !r.Health {
			continue
		}
		why := r.Detail
		if r.Error != "" {
			why = r.Error
		}
		switch r.Status {
		case StatusOK:
			judged++
		case StatusFail:
			failed = append(failed, fmt.Sprintf("%s: %s", r.Name, why))
		default:
			unknown = append(unknown, fmt.Sprintf("%s %s: %s", r.Name, r.Status, why))
		}
	}
	switch {
	case len(failed) > 0:
		return Degraded, append(failed, unknown...)
	case len(unknown) > 0:
		return Unknown, unknown
	case judged == 0:
		return Unknown, []string{"no stage judged the node"}
	}
	return Healthy, []string{}
}

func exit(s *Summary) int {
	if slices.ContainsFunc(s.Stages, func(r StageResult) bool { return r.Status == StatusCancelled }) {
		return 130
	}
	if slices.ContainsFunc(s.Stages, func(r StageResult) bool { return r.Status == StatusError }) {
		return 1
	}
	if s.Health == Healthy {
		return 0
	}
	return 3
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// HistoryEntry is one cycle in the health history (cycles.jsonl), what
// the report computes uptime and the timeline from.
type HistoryEntry struct {
	Started  string            `json:"started"`
	Finished string            `json:"finished"`
	Health   string            `json:"health"`
	Exit     int               `json:"exit"`
	Reasons  []string          `json:"reasons"`
	Stages   map[string]string `json:"stages"`
}

// Entry is the summary's line in the history.
func (s *Summary) Entry() HistoryEntry {
	e := HistoryEntry{Started: s.Started, Finished: s.Finished, Health: s.Health, Exit: s.Exit,
		Reasons: s.Reasons, Stages: map[string]string{}}
	for _, r := range s.Stages {
		e.Stages[r.Name] = r.Status
	}
	return e
}

// AppendHistory adds the summary to the history journal (the caller
// holds the state lock).
func AppendHistory(path string, s *Summary) error {
	return statedir.Journal{Path: path}.Append(s.Entry())
}

// ReadHistory reads the history, oldest first; lines that do not decode
// (torn by a crash) are skipped and counted.
func ReadHistory(path string) ([]HistoryEntry, int, error) {
	return statedir.ReadJournal(statedir.Journal{Path: path}, func(e *HistoryEntry) bool { return e.Started != "" && e.Health != "" })
}
