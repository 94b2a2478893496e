package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	healthreport "github.com/lambda-os/lambda-check/internal/report"
	"github.com/lambda-os/lambda-check/internal/stage/cycle"
	"github.com/lambda-os/lambda-check/internal/stage/verify"
	"github.com/lambda-os/lambda-check/internal/statedir"
)

// ReportCmd is "lambda-check report".
type ReportCmd struct {
	HTML   string `name:"html" placeholder:"OUT" help:"Also write a self-contained HTML page here (no external assets)."`
	Events int    `default:"25" help:"How many recent audit events to show."`
}

// Help is shown by "lambda-check report --help".
func (c *ReportCmd) Help() string {
	return `Shows how the node has been doing, from the state directory alone (it
changes nothing): the current health and since when, uptime over the last
24 hours, 7 and 30 days measured in time (a cycle's health holds until the
next cycle, and no longer than three typical cycle gaps: beyond that the
time counts as "no cycle ran", never as healthy), each module's verdict and
pass record, the proposals and their governance state, the last
verification failures and the recent audit events. --json for machines;
--html OUT writes one static page with a timeline chart (inline SVG).`
}

// Run reports.
func (c *ReportCmd) Run(rt *Runtime) error {
	now, err := rt.Clock()
	if err != nil {
		return err
	}
	r, err := buildReport(rt, now, c.Events)
	if err != nil {
		return err
	}
	if c.HTML != "" {
		if err := writeHTML(r, rt.Abs(c.HTML)); err != nil {
			return err
		}
		rt.Logf("wrote %s", rt.Abs(c.HTML))
	}
	if rt.Globals.JSON {
		return rt.PrintJSON(r)
	}
	healthreport.Text(rt.Env.Stdout, r)
	return nil
}

// writeHTML writes the report's page atomically.
func writeHTML(r *healthreport.Report, p string) error {
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

// writeReportHTML builds the report now and writes its page to p.
func writeReportHTML(rt *Runtime, p string) error {
	now, err := rt.Clock()
	if err != nil {
		return err
	}
	r, err := buildReport(rt, now, 25)
	if err != nil {
		return err
	}
	return writeHTML(r, p)
}

func buildReport(rt *Runtime, now time.Time, events int) (*healthreport.Report, error) {
	dir := rt.StateDirPath()
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, exitcode.Input(fmt.Errorf("no state directory at %s", dir), "run 'lambda-check cycle' first, or give --state-dir")
	}
	file := func(n string) string { return dir + "/" + n }
	r := &healthreport.Report{Node: rt.WorkspaceDir(), Generated: now.UTC().Format(time.RFC3339), Health: cycle.Unknown,
		Reasons: []string{"no cycle has run"}, Uptime: []healthreport.Uptime{}, Timeline: []healthreport.Span{}, Modules: []healthreport.Module{},
		Proposals: []healthreport.Proposal{}, Events: []healthreport.Event{}, Failures: []healthreport.Failure{}}
	hist, _, err := cycle.ReadHistory(file(historyOfCycles))
	if err != nil {
		return nil, exitcode.Input(fmt.Errorf("read %s: %w", historyOfCycles, err), "")
	}
	r.Cycles, r.History = len(hist), hist
	env, _, err := artifact.Read[cycle.Summary](file("cycle.json"), cycle.Spec)
	switch {
	case err == nil:
		s := env.Payload
		r.LastCycle, r.Health, r.Reasons = &s, s.Health, nonNil(s.Reasons)
		if a := s.Stage("audit"); a != nil && (a.Status == cycle.StatusOK || a.Status == cycle.StatusFail) {
			r.Audit = a.Status
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, exitcode.Input(fmt.Errorf("read cycle.json: %w", err), "")
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
	if f, err := os.Open(file(historyFile)); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var e HistoryEntry
			if json.Unmarshal(sc.Bytes(), &e) != nil || e.Module == "" {
				continue
			}
			rc := records[e.Module]
			if rc == nil {
				rc = &rec{}
				records[e.Module] = rc
			}
			rc.runs++
			if e.Verdict == verify.Pass {
				rc.passed++
				rc.lastPass = e.Time
			} else {
				fails = append(fails, healthreport.Failure{Time: e.Time, Module: e.Module, Reason: e.Reason})
			}
		}
		f.Close()
	}
	if len(fails) > 10 {
		fails = fails[len(fails)-10:]
	}
	slices.Reverse(fails)
	r.Failures = nonNil(fails)
	if venv, _, err := artifact.Read[verify.Report](file("verify.json"), verify.Spec); err == nil {
		for _, m := range venv.Payload.Modules {
			rm := healthreport.Module{Name: m.Name, Submodule: m.Submodule, Gitlink: m.Gitlink, Verdict: m.Verdict, Reason: m.Reason}
			if rc := records[m.Name]; rc != nil {
				rm.Passed, rm.Runs, rm.LastPass = rc.passed, rc.runs, rc.lastPass
			}
			r.Modules = append(r.Modules, rm)
		}
	}

	// Proposals, with their governance state where there is a registry.
	if ls, err := listProposals(rt); err == nil {
		gov := map[string]string{}
		if cfg, err := rt.Config(); err == nil && cfg.KeysPath() != "" {
			if sd, err := statedir.Open(dir); err == nil {
				if genv, err := govEnv(rt, sd, false); err == nil {
					gov, _ = governanceStates(genv)
				}
			}
		}
		for _, l := range ls {
			if l.Proposal == nil {
				continue
			}
			p := l.Proposal
			st := l.Status
			if g := gov[p.ID]; g != "" {
				st = g
			}
			r.Proposals = append(r.Proposals, healthreport.Proposal{ID: p.ID, Kind: p.Kind, Submodule: p.Submodule, From: p.From, To: p.To,
				Commits: p.Commits, State: st, Why: l.Why})
		}
	}

	// The audit log's last events.
	if f, err := os.Open(file(auditFile)); err == nil {
		var evs []healthreport.Event
		_ = audit.Scan(f, func(_ int64, line []byte) error {
			e, err := audit.Decode(line)
			if err != nil {
				return nil
			}
			evs = append(evs, healthreport.Event{Seq: e.Seq, Time: e.Time, Stage: e.Stage, Result: e.Result, Detail: e.Detail})
			if len(evs) > 4*events {
				evs = slices.Clone(evs[len(evs)-events:])
			}
			return nil
		})
		f.Close()
		if len(evs) > events {
			evs = evs[len(evs)-events:]
		}
		slices.Reverse(evs)
		r.Events = nonNil(evs)
	}
	return r, nil
}

// seconds shortens an RFC 3339 time to whole seconds for people.
func seconds(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.UTC().Format(time.RFC3339)
}
