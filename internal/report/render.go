package report

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"sync"
	"time"
)

// Text writes the report for a terminal.
func Text(w io.Writer, r *Report) {
	fmt.Fprintf(w, "node %s: %s", r.Node, strings.ToUpper(r.Health))
	if r.Since != "" {
		fmt.Fprintf(w, " since %s", r.Since)
	}
	fmt.Fprintln(w)
	for _, why := range r.Reasons {
		fmt.Fprintf(w, "  why: %s\n", why)
	}
	if r.LastCycle != nil {
		fmt.Fprintf(w, "last cycle: %s, %s, exit %d (%d cycles recorded)\n", seconds(r.LastCycle.Finished), time.Duration(r.LastCycle.DurationMs)*time.Millisecond, r.LastCycle.Exit, r.Cycles)
	} else {
		fmt.Fprintln(w, "no cycle has run yet: 'lambda-check cycle' runs one")
	}
	fmt.Fprintln(w, "\nuptime (by time, over the observed part of each window):")
	for _, u := range r.Uptime {
		fmt.Fprintf(w, "  %-5s healthy %5.1f%%  degraded %5.1f%%  unknown %5.1f%%  (observed %s; no cycles %.0f%% of the window)\n",
			u.Window, 100*u.Healthy, 100*u.Degraded, 100*u.Unknown, u.Observed, 100*u.NoData)
	}
	fmt.Fprintf(w, "\nmodules (%d):\n", len(r.Modules))
	for _, m := range r.Modules {
		fmt.Fprintf(w, "  %-4s %-28s %-24s passed %d/%d", m.Verdict, m.Name, m.Submodule, m.Passed, m.Runs)
		if m.Reason != "" && m.Verdict != "pass" {
			fmt.Fprintf(w, "  %s", m.Reason)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nproposals (%d):\n", len(r.Proposals))
	for _, p := range r.Proposals {
		fmt.Fprintf(w, "  %-10s %-8s %s  %s %s → %s (%d commits)\n", p.State, p.Kind, p.ID, p.Submodule, short(p.From), short(p.To), p.Commits)
	}
	if len(r.Failures) > 0 {
		fmt.Fprintln(w, "\nlast verification failures:")
		for _, f := range r.Failures {
			fmt.Fprintf(w, "  %s  %s: %s\n", f.Time, f.Module, f.Reason)
		}
	}
	fmt.Fprintln(w, "\nrecent events:")
	for _, e := range r.Events {
		fmt.Fprintf(w, "  %5d %s %-10s %-5s %s\n", e.Seq, e.Time, e.Stage, e.Result, e.Detail)
	}
}

func seconds(s string) string {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC().Format(time.RFC3339)
	}
	return s
}

func short(h string) string {
	if len(h) > 10 {
		return h[:10]
	}
	return h
}

//go:embed report.html.tmpl
var files embed.FS

// page is parsed on first use, not by every command at start.
var page = sync.OnceValue(func() *template.Template { return pageTemplate() })

func pageTemplate() *template.Template {
	return template.Must(template.New("report.html.tmpl").Funcs(template.FuncMap{
		"pct":   func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
		"short": short,
		"ms":    func(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() },
		"upper": strings.ToUpper,
		"secs":  seconds,
	}).ParseFS(files, "report.html.tmpl"))
}

// bar is one span of the timeline chart, in the SVG's coordinates.
type bar struct {
	X, W   float64
	Health string
	Title  string
}

// HTML writes the report as one self-contained page: inline CSS and SVG,
// no scripts, no external assets.
func HTML(w io.Writer, r *Report) error {
	const width = 1000.0
	var bars []bar
	var from, to time.Time
	if len(r.Timeline) > 0 {
		from, to = r.Timeline[0].From, r.Timeline[len(r.Timeline)-1].To
	}
	if total := to.Sub(from); total > 0 {
		for _, s := range r.Timeline {
			x := width * float64(s.From.Sub(from)) / float64(total)
			wd := width * float64(s.To.Sub(s.From)) / float64(total)
			bars = append(bars, bar{X: x, W: max(wd, 0.5), Health: s.Health,
				Title: fmt.Sprintf("%s: %s → %s", s.Health, s.From.Format(time.RFC3339), s.To.Format(time.RFC3339))})
		}
	}
	var buf bytes.Buffer
	err := page().Execute(&buf, struct {
		*Report
		Bars     []bar
		From, To string
	}{r, bars, from.Format("2006-01-02 15:04 MST"), to.Format("2006-01-02 15:04 MST")})
	if err != nil {
		return err
	}
	_, err = w.Write(buf.Bytes())
	return err
}
