package workflow

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
	healthreport "github.com/lambda-os/lambda-check/internal/report"
	"github.com/lambda-os/lambda-check/internal/stage/cycle"
	"github.com/lambda-os/lambda-check/internal/stage/upgrades"
	"github.com/lambda-os/lambda-check/internal/stage/verify"
)

// Report is how the node has been doing, from its state directory alone
// (it changes nothing), with the last events of the audit log.
func Report(ctx context.Context, e *Env, events int) (*healthreport.Report, error) {
	if st, err := os.Stat(e.StateDir); err != nil || !st.IsDir() {
		return nil, exitcode.Input(fmt.Errorf("no state directory at %s", e.StateDir), "run 'lambda-check cycle' first, or give --state-dir")
	}
	node, err := ReadNode(ctx, e, nil)
	if err != nil {
		return nil, err
	}
	now := e.asOf()
	r := &healthreport.Report{Node: e.Workspace, Generated: now.UTC().Format(time.RFC3339), Health: cycle.Unknown,
		Reasons: []string{"no cycle has run"}, Uptime: []healthreport.Uptime{}, Timeline: []healthreport.Span{}, Modules: []healthreport.Module{},
		Proposals: []healthreport.Proposal{}, Events: []healthreport.Event{}, Failures: []healthreport.Failure{}}
	hist := node.Cycles
	r.Cycles, r.History = len(hist), hist
	if s := node.Cycle; s != nil {
		r.LastCycle, r.Health, r.Reasons = s, s.Health, s.Reasons
		if r.Reasons == nil {
			r.Reasons = []string{}
		}
		if a := s.Stage("audit"); a != nil && (a.Status == cycle.StatusOK || a.Status == cycle.StatusFail) {
			r.Audit = a.Status
		}
	}
	for i := len(hist) - 1; i >= 0 && hist[i].Health == r.Health; i-- {
		r.Since = seconds(hist[i].Finished)
	}
	stale := healthreport.StaleAfter(hist)
	for _, w := range []struct {
		name string
		d    time.Duration
	}{{"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}} {
		r.Uptime = append(r.Uptime, healthreport.UptimeOf(w.name, healthreport.Timeline(hist, now.Add(-w.d), now, stale)))
	}
	if len(hist) > 0 {
		from := now.Add(-7 * 24 * time.Hour)
		if t, err := time.Parse(time.RFC3339Nano, hist[0].Started); err == nil && t.After(from) {
			from = t
		}
		r.Timeline = healthreport.Timeline(hist, from, now, stale)
	}

	// Modules: the last verdicts, with their record from the history.
	type rec struct {
		passed, runs int
		lastPass     string
	}
	records := map[string]*rec{}
	var fails []healthreport.Failure
	for _, h := range node.VerifyHistory {
		rc := records[h.Module]
		if rc == nil {
			rc = &rec{}
			records[h.Module] = rc
		}
		rc.runs++
		if h.Verdict == verify.Pass {
			rc.passed++
			rc.lastPass = h.Time
		} else {
			fails = append(fails, healthreport.Failure{Time: h.Time, Module: h.Module, Reason: h.Reason})
		}
	}
	if len(fails) > 10 {
		fails = fails[len(fails)-10:]
	}
	slices.Reverse(fails)
	if fails != nil {
		r.Failures = fails
	}
	// Links upstream come from .gitmodules (the URLs as the workspace
	// publishes them).
	web := map[string]string{}
	if subs, err := gitrepo.ReadGitmodules(e.Workspace); err == nil {
		for _, s := range subs {
			web[s.Path] = healthreport.WebURL(s.URL)
		}
	}
	history := map[string][]string{}
	for _, h := range node.VerifyHistory {
		history[h.Module] = append(history[h.Module], h.Verdict)
	}
	if node.Verify != nil {
		for _, m := range node.Verify.Modules {
			rm := healthreport.Module{Name: m.Name, Submodule: m.Submodule, Gitlink: m.Gitlink, Verdict: m.Verdict, Reason: m.Reason,
				URL: healthreport.CommitURL(web[m.Submodule], m.Gitlink)}
			if rc := records[m.Name]; rc != nil {
				rm.Passed, rm.Runs, rm.LastPass = rc.passed, rc.runs, rc.lastPass
			}
			if h := history[m.Name]; len(h) > 0 {
				rm.History = h[max(0, len(h)-20):]
			}
			r.Modules = append(r.Modules, rm)
		}
	}
	for _, l := range node.Proposals {
		if l.Proposal == nil {
			continue
		}
		p := l.Proposal
		rp := healthreport.Proposal{ID: p.ID, Kind: p.Kind, Submodule: p.Submodule, From: p.From, To: p.To,
			Commits: p.Commits, State: node.ProposalState(l), Why: l.Why, URL: healthreport.CompareURL(web[p.Submodule], p.From, p.To)}
		switch rp.State {
		case "pending":
			rp.Command = "lambda-check governance approve " + p.ID
		case "approved":
			rp.Command = "lambda-check governance apply " + p.ID
		}
		r.Proposals = append(r.Proposals, rp)
	}
	r.Upgrades = []healthreport.Upgrade{}
	if env, _, err := artifact.Read[upgrades.Upgrades](e.File("upgrades.json"), upgrades.Spec); err == nil {
		for _, u := range env.Payload.Repos {
			if u.IsUpgrade() {
				r.Upgrades = append(r.Upgrades, healthreport.Upgrade{Submodule: u.Path, Branch: u.Branch, Pin: u.Pin, Head: u.Head, Behind: u.Behind,
					URL: healthreport.CompareURL(web[u.Path], u.Pin, u.Head)})
			}
		}
	}
	r.Stale = healthreport.StatusOf(r).Stale
	r.Events = lastEvents(e.File(AuditFile), events)
	return r, nil
}

// lastEvents are the audit log's last n events, newest first.
func lastEvents(p string, n int) []healthreport.Event {
	evs := []healthreport.Event{}
	f, err := os.Open(p)
	if err != nil {
		return evs
	}
	defer f.Close()
	_ = audit.Scan(f, func(_ int64, line []byte) error {
		ev, err := audit.Decode(line)
		if err != nil {
			return nil
		}
		evs = append(evs, healthreport.Event{Seq: ev.Seq, Time: ev.Time, Stage: ev.Stage, Result: ev.Result, Detail: ev.Detail})
		if len(evs) > 4*n {
			evs = slices.Clone(evs[len(evs)-n:])
		}
		return nil
	})
	if len(evs) > n {
		evs = evs[len(evs)-n:]
	}
	slices.Reverse(evs)
	return evs
}

// WriteReportHTML writes the report's page atomically.
func WriteReportHTML(r *healthreport.Report, p string) error {
	var buf bytes.Buffer
	if err := healthreport.HTML(&buf, r); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := artifact.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// WriteMetrics writes the report's status in Prometheus' text format,
// atomically (node_exporter's textfile collector never reads half a file).
func WriteMetrics(r *healthreport.Report, p string) error {
	var buf bytes.Buffer
	if err := healthreport.Prometheus(&buf, healthreport.StatusOf(r)); err != nil {
		return err
	}
	if err := artifact.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// seconds shortens an RFC 3339 time to whole seconds for people.
func seconds(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.UTC().Format(time.RFC3339)
}
