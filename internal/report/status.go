package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/stage/cycle"
)

// Status is the node's state in a line: what `lambda-check status` shows
// and what the metrics are made of.
type Status struct {
	Health string `json:"health"`
	// LastCycle is when the last cycle finished ("" none); AgeSeconds how
	// long ago, as of Generated.
	LastCycle  string `json:"lastCycle,omitempty"`
	AgeSeconds int64  `json:"ageSeconds,omitempty"`
	// Stale: the last cycle is older than three typical gaps between
	// cycles (its health no longer counts).
	Stale bool `json:"stale"`
	// Exit is the last cycle's exit code.
	Exit    int      `json:"exit"`
	Reasons []string `json:"reasons"`
	// Stages are the last cycle's stages and their status.
	Stages []StageStatus `json:"stages"`
	// ModulesFailing names the modules whose last verdict is not pass.
	ModulesFailing []string `json:"modulesFailing"`
	Modules        int      `json:"modules"`
	// ProposalsPending counts proposals waiting for a decision or apply.
	ProposalsPending int `json:"proposalsPending"`
	// Audit is the last cycle's audit verification: ok, fail, or "" (not run).
	Audit string `json:"audit"`
}

// StageStatus is one stage of the last cycle.
type StageStatus struct {
	Name       string `json:"name"`
	Status     string `json:"status"`
	DurationMs int64  `json:"durationMs"`
}

// pendingStates are the proposal states that wait for someone.
var pendingStates = map[string]bool{"pending": true, "approved": true}

// StatusOf is the status of a report, as of its Generated time.
func StatusOf(r *Report) Status {
	s := Status{Health: r.Health, Reasons: r.Reasons, Stages: []StageStatus{}, ModulesFailing: []string{}, Audit: r.Audit}
	if s.Reasons == nil {
		s.Reasons = []string{}
	}
	if c := r.LastCycle; c != nil {
		s.LastCycle, s.Exit = c.Finished, c.Exit
		for _, st := range c.Stages {
			s.Stages = append(s.Stages, StageStatus{Name: st.Name, Status: st.Status, DurationMs: st.DurationMs})
		}
		gen, err1 := time.Parse(time.RFC3339, r.Generated)
		fin, err2 := time.Parse(time.RFC3339Nano, c.Finished)
		if err1 == nil && err2 == nil {
			s.AgeSeconds = int64(gen.Sub(fin).Seconds())
			s.Stale = gen.Sub(fin) > StaleAfter(r.History)
		}
	}
	for _, m := range r.Modules {
		s.Modules++
		if m.Verdict != "pass" {
			s.ModulesFailing = append(s.ModulesFailing, m.Name)
		}
	}
	sort.Strings(s.ModulesFailing)
	for _, p := range r.Proposals {
		if pendingStates[p.State] {
			s.ProposalsPending++
		}
	}
	return s
}

// Line is the status in one line.
func (s Status) Line() string {
	if s.LastCycle == "" {
		return "unknown: no cycle has run (lambda-check cycle runs one)"
	}
	var b strings.Builder
	b.WriteString(s.Health)
	if s.Stale {
		b.WriteString(" (stale)")
	}
	fmt.Fprintf(&b, ": last cycle %s ago, exit %d", age(time.Duration(s.AgeSeconds)*time.Second), s.Exit)
	var bad []string
	for _, st := range s.Stages {
		if st.Status != cycle.StatusOK && st.Status != cycle.StatusSkipped {
			bad = append(bad, st.Name+" "+st.Status)
		}
	}
	if len(bad) > 0 {
		b.WriteString("; " + strings.Join(bad, ", "))
	}
	if n := len(s.ModulesFailing); n > 0 {
		names := s.ModulesFailing
		more := ""
		if n > 3 {
			names, more = names[:3], fmt.Sprintf(" and %d more", n-3)
		}
		fmt.Fprintf(&b, "; %d of %d modules failing (%s%s)", n, s.Modules, strings.Join(names, ", "), more)
	}
	if s.ProposalsPending == 1 {
		b.WriteString("; 1 proposal pending")
	} else {
		fmt.Fprintf(&b, "; %d proposals pending", s.ProposalsPending)
	}
	if s.Audit != "" {
		b.WriteString("; audit " + s.Audit)
	}
	return b.String()
}

func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// healthValue is lambda_check_health: 1 healthy, 0.5 degraded, 0
// unknown.
func healthValue(h string) string {
	switch h {
	case cycle.Healthy:
		return "1"
	case cycle.Degraded:
		return "0.5"
	}
	return "0"
}

// Prometheus writes the status in Prometheus' text exposition format (for
// node_exporter's textfile collector, or any scrape).
func Prometheus(w io.Writer, s Status) error {
	var b strings.Builder
	metric := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	metric("lambda_check_health", "gauge", "The last cycle's health: 1 healthy, 0.5 degraded, 0 unknown (or no cycle).")
	fmt.Fprintf(&b, "lambda_check_health %s\n", healthValue(s.Health))
	metric("lambda_check_health_state", "gauge", "1 for the last cycle's health, 0 for the others.")
	for _, h := range []string{cycle.Healthy, cycle.Degraded, cycle.Unknown} {
		v := 0
		if h == s.Health {
			v = 1
		}
		fmt.Fprintf(&b, "lambda_check_health_state{health=%q} %d\n", h, v)
	}
	metric("lambda_check_stale", "gauge", "1 when the last cycle is older than three typical gaps between cycles.")
	fmt.Fprintf(&b, "lambda_check_stale %d\n", boolInt(s.Stale))
	if s.LastCycle != "" {
		if t, err := time.Parse(time.RFC3339Nano, s.LastCycle); err == nil {
			metric("lambda_check_last_cycle_timestamp_seconds", "gauge", "When the last cycle finished, in Unix seconds.")
			fmt.Fprintf(&b, "lambda_check_last_cycle_timestamp_seconds %d\n", t.Unix())
		}
		metric("lambda_check_last_cycle_exit_code", "gauge", "The last cycle's exit code (0 ok, 3 a failing verdict, 1 an error).")
		fmt.Fprintf(&b, "lambda_check_last_cycle_exit_code %d\n", s.Exit)
	}
	metric("lambda_check_stage_ok", "gauge", "1 when the stage's status in the last cycle is ok (or skipped), else 0.")
	for _, st := range s.Stages {
		fmt.Fprintf(&b, "lambda_check_stage_ok{stage=%q,status=%q} %d\n", st.Name, st.Status, boolInt(st.Status == cycle.StatusOK || st.Status == cycle.StatusSkipped))
	}
	metric("lambda_check_stage_duration_seconds", "gauge", "How long the stage took in the last cycle.")
	for _, st := range s.Stages {
		fmt.Fprintf(&b, "lambda_check_stage_duration_seconds{stage=%q} %.3f\n", st.Name, float64(st.DurationMs)/1000)
	}
	metric("lambda_check_modules", "gauge", "Modules in the last verification.")
	fmt.Fprintf(&b, "lambda_check_modules %d\n", s.Modules)
	metric("lambda_check_modules_failing", "gauge", "Modules whose last verdict is not pass.")
	fmt.Fprintf(&b, "lambda_check_modules_failing %d\n", len(s.ModulesFailing))
	metric("lambda_check_proposals_pending", "gauge", "Proposals waiting for a decision or an apply.")
	fmt.Fprintf(&b, "lambda_check_proposals_pending %d\n", s.ProposalsPending)
	metric("lambda_check_audit_verified", "gauge", "1 when the last cycle verified the audit log, 0 when it failed or did not run.")
	fmt.Fprintf(&b, "lambda_check_audit_verified %d\n", boolInt(s.Audit == cycle.StatusOK))
	_, err := io.WriteString(w, b.String())
	return err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
