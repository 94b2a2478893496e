// Package report sums up how a node has been doing, from its state
// directory's artifacts and histories: current health, health over time
// (uptime measured in time, not in cycles), modules, proposals and recent
// events; and renders it for a terminal, as JSON, or as one
// self-contained HTML page.
package report

import (
	"slices"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/stage/cycle"
)

// Span is a stretch of time in one health.
type Span struct {
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Health string    `json:"health"` // healthy, degraded, unknown, or "none": no cycle ran
}

// Uptime is the share of a window the node was healthy, by time.
type Uptime struct {
	Window   string  `json:"window"`
	Healthy  float64 `json:"healthy"` // 0..1 of the observed time
	Degraded float64 `json:"degraded"`
	Unknown  float64 `json:"unknown"`
	// NoData is the share of the window no cycle covered.
	NoData float64 `json:"noData"`
	// Observed is how much of the window had cycles.
	Observed string `json:"observed"`
}

// Module is one module's current state.
type Module struct {
	Name      string `json:"name"`
	Submodule string `json:"submodule,omitempty"`
	Gitlink   string `json:"gitlink,omitempty"`
	Verdict   string `json:"verdict"`
	Reason    string `json:"reason,omitempty"`
	// Passed/Runs count its verdicts in the verify history.
	Passed int `json:"passed"`
	Runs   int `json:"runs"`
	// LastPass is when it last passed ("" never).
	LastPass string `json:"lastPass,omitempty"`
	// History is its last verdicts, oldest first (at most 20).
	History []string `json:"history,omitempty"`
	// URL is the pinned commit's page upstream, when the remote is a
	// known forge.
	URL string `json:"url,omitempty"`
}

// Upgrade is one repository the remote is ahead of.
type Upgrade struct {
	Submodule string `json:"submodule"`
	Branch    string `json:"branch"`
	Pin       string `json:"pin"`
	Head      string `json:"head"`
	Behind    int    `json:"behind"`
	// URL is the compare view pin...head upstream, when known.
	URL string `json:"url,omitempty"`
}

// Proposal is one proposal and its state.
type Proposal struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Submodule string `json:"submodule"`
	From      string `json:"from"`
	To        string `json:"to"`
	Commits   int    `json:"commits"`
	State     string `json:"state"`
	Why       string `json:"why,omitempty"`
	// Command is what an operator runs next: approve a pending one,
	// apply an approved one.
	Command string `json:"command,omitempty"`
	// URL is the compare view from...to upstream, when known.
	URL string `json:"url,omitempty"`
}

// Event is one audit event.
type Event struct {
	Seq    int64  `json:"seq"`
	Time   string `json:"time"`
	Stage  string `json:"stage"`
	Result string `json:"result"`
	Detail string `json:"detail,omitempty"`
}

// Failure is a module's failed verification.
type Failure struct {
	Time   string `json:"time"`
	Module string `json:"module"`
	Reason string `json:"reason"`
}

// Report is what the report shows.
type Report struct {
	Node      string `json:"node"`
	Generated string `json:"generated"`
	// Health is the last cycle's; Since is when that health began.
	Health    string         `json:"health"`
	Since     string         `json:"since,omitempty"`
	Reasons   []string       `json:"reasons"`
	LastCycle *cycle.Summary `json:"lastCycle,omitempty"`
	Cycles    int            `json:"cycles"`
	Uptime    []Uptime       `json:"uptime"`
	Timeline  []Span         `json:"timeline"`
	Modules   []Module       `json:"modules"`
	Proposals []Proposal     `json:"proposals"`
	Events    []Event        `json:"events"`
	Failures  []Failure      `json:"failures"`
	Audit     string         `json:"audit"` // the last cycle's audit verification: ok, fail, or ""
	// Upgrades are the repositories the last upgrades run found behind.
	Upgrades []Upgrade `json:"upgrades"`
	// Stale: the last cycle is older than three typical gaps between
	// cycles, so its health no longer counts.
	Stale   bool                 `json:"stale"`
	History []cycle.HistoryEntry `json:"-"`
}

// WebURL is a forge's web address for a remote URL (git@host:o/r.git,
// ssh://git@host/o/r, https://host/o/r.git), "" for local or unknown
// remotes.
func WebURL(remote string) string {
	u := strings.TrimSuffix(strings.TrimSuffix(remote, "/"), ".git")
	switch {
	case strings.HasPrefix(u, "https://"):
	case strings.HasPrefix(u, "ssh://"):
		rest := strings.TrimPrefix(u, "ssh://")
		if i := strings.IndexByte(rest, '@'); i >= 0 {
			rest = rest[i+1:]
		}
		host, path, ok := strings.Cut(rest, "/")
		if !ok {
			return ""
		}
		host, _, _ = strings.Cut(host, ":")
		u = "https://" + host + "/" + path
	case strings.Contains(u, "@") && strings.Contains(u, ":") && !strings.Contains(u, "://"):
		_, rest, _ := strings.Cut(u, "@")
		host, path, _ := strings.Cut(rest, ":")
		u = "https://" + host + "/" + path
	default:
		return ""
	}
	host := strings.TrimPrefix(u, "https://")
	host, _, _ = strings.Cut(host, "/")
	for _, forge := range []string{"github.com", "gitlab.com", "codeberg.org"} {
		if host == forge {
			return u
		}
	}
	return ""
}

// CommitURL and CompareURL are a forge's pages for a commit and a range.
func CommitURL(web, commit string) string {
	if web == "" || commit == "" {
		return ""
	}
	return web + "/commit/" + commit
}

// CompareURL is the forge's view of the commits from..to.
func CompareURL(web, from, to string) string {
	if web == "" || from == "" || to == "" {
		return ""
	}
	return web + "/compare/" + from + "..." + to
}

// Timeline turns the cycle history into spans over [from, now]: a cycle's
// health holds from its end until the next cycle ends, but no longer than
// stale; past that the time counts as "none" (no cycle ran).
func Timeline(h []cycle.HistoryEntry, from, now time.Time, stale time.Duration) []Span {
	type point struct {
		t      time.Time
		health string
	}
	var pts []point
	for _, e := range h {
		t, err := time.Parse(time.RFC3339Nano, e.Finished)
		if err != nil {
			continue
		}
		pts = append(pts, point{t, e.Health})
	}
	slices.SortStableFunc(pts, func(a, b point) int { return a.t.Compare(b.t) })
	var spans []Span
	add := func(a, b time.Time, health string) {
		if a.Before(from) {
			a = from
		}
		if b.After(now) {
			b = now
		}
		if !b.After(a) {
			return
		}
		if n := len(spans); n > 0 && spans[n-1].Health == health && spans[n-1].To.Equal(a) {
			spans[n-1].To = b
			return
		}
		spans = append(spans, Span{From: a, To: b, Health: health})
	}
	if len(pts) > 0 {
		add(from, pts[0].t, "none")
	}
	for i, p := range pts {
		end := now
		if i+1 < len(pts) {
			end = pts[i+1].t
		}
		if held := p.t.Add(stale); end.After(held) {
			add(p.t, held, p.health)
			add(held, end, "none")
		} else {
			add(p.t, end, p.health)
		}
	}
	if len(pts) == 0 {
		add(from, now, "none")
	}
	return spans
}

// UptimeOf sums the spans of a window.
func UptimeOf(window string, spans []Span) Uptime {
	var total, healthy, degraded, unknown, none time.Duration
	for _, s := range spans {
		d := s.To.Sub(s.From)
		total += d
		switch s.Health {
		case cycle.Healthy:
			healthy += d
		case cycle.Degraded:
			degraded += d
		case "none":
			none += d
		default:
			unknown += d
		}
	}
	u := Uptime{Window: window}
	if obs := total - none; obs > 0 {
		u.Healthy = float64(healthy) / float64(obs)
		u.Degraded = float64(degraded) / float64(obs)
		u.Unknown = float64(unknown) / float64(obs)
		u.Observed = obs.Round(time.Second).String()
	} else {
		u.Observed = "0s"
	}
	if total > 0 {
		u.NoData = float64(none) / float64(total)
	}
	return u
}

// StaleAfter guesses how long a cycle's health may be taken to hold: three
// times the median gap between cycles, at least a minute.
func StaleAfter(h []cycle.HistoryEntry) time.Duration {
	var gaps []time.Duration
	var prev time.Time
	for _, e := range h {
		t, err := time.Parse(time.RFC3339Nano, e.Finished)
		if err != nil {
			continue
		}
		if !prev.IsZero() && t.After(prev) {
			gaps = append(gaps, t.Sub(prev))
		}
		prev = t
	}
	if len(gaps) == 0 {
		return time.Hour
	}
	slices.Sort(gaps)
	return max(3*gaps[len(gaps)/2], time.Minute)
}
