// Package notify tells people when the node's state changes: health
// transitions, new module failures and regressions, rollbacks, new,
// approved and applied proposals, and audit failures; plus, when
// configured, a periodic digest. What each channel was last told is kept,
// so a change is announced once per channel and a channel that could not
// be reached is told again next time, while an unchanged node is quiet.
package notify

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
)

// Spec is the delivery record's kind and version (notify.json).
var Spec = artifact.Spec{Kind: "lambda-check/notify", Version: 1}

// State is what notifications are about, as one cycle saw it.
type State struct {
	Health  string   `json:"health"`
	Reasons []string `json:"reasons"`
	// Failing maps each module that failed verification to its reason.
	Failing map[string]string `json:"failing"`
	// Regressions are modules heal found regressed, with their rollback
	// proposal's id ("" when none could be made).
	Regressions map[string]string `json:"regressions"`
	// Proposals maps each proposal's id to its governance state and
	// Subjects to what it changes ("repos/x: 1a2b3c → 4d5e6f").
	Proposals map[string]string `json:"proposals"`
	Subjects  map[string]string `json:"subjects"`
	// Audit is "ok", "fail" or "" when the log was not verified.
	Audit       string `json:"audit"`
	AuditDetail string `json:"auditDetail,omitempty"`
	// AuditSeq and AuditHead are the log's last event when this state was
	// taken: the next notify alarms when the log has fewer events, or no
	// longer holds that event (restored from an older copy, rewritten).
	AuditSeq  int64  `json:"auditSeq,omitempty"`
	AuditHead string `json:"auditHead,omitempty"`
	// AuditHas says whether the log holds the event seq with digest (set
	// by the caller; not kept).
	AuditHas func(seq int64, digest string) bool `json:"-"`
}

// Severity of a change or a message.
const (
	Info     = "info"
	Warning  = "warning"
	Critical = "critical"
)

// Change is one thing worth telling.
type Change struct {
	Kind     string `json:"kind"`
	Subject  string `json:"subject"`
	Text     string `json:"text"`
	Severity string `json:"severity"`
}

// Diff lists what changed from prev (nil: never told) to cur, most
// severe first, then by kind and subject.
func Diff(prev *State, cur *State) []Change {
	var out []Change
	add := func(kind, subject, sev, format string, a ...any) {
		out = append(out, Change{Kind: kind, Subject: subject, Severity: sev, Text: fmt.Sprintf(format, a...)})
	}
	if prev == nil {
		add("watching", "node", healthSeverity(cur.Health), "now watching this node; health is %s", cur.Health)
		prev = &State{}
	} else if prev.Health != cur.Health {
		add("health", "node", healthSeverity(cur.Health), "health %s → %s", prev.Health, cur.Health)
	}
	for _, m := range sortedKeys(cur.Failing) {
		if _, was := prev.Failing[m]; !was {
			add("module-failing", m, Critical, "module %s fails verification: %s", m, cur.Failing[m])
		}
	}
	for _, m := range sortedKeys(prev.Failing) {
		if _, is := cur.Failing[m]; !is {
			add("module-recovered", m, Info, "module %s passes verification again", m)
		}
	}
	for _, m := range sortedKeys(cur.Regressions) {
		if old, was := prev.Regressions[m]; !was || old != cur.Regressions[m] {
			if id := cur.Regressions[m]; id != "" {
				add("rollback", m, Critical, "module %s regressed; rollback proposal %s", m, id)
			} else {
				add("regression", m, Critical, "module %s regressed; no rollback could be proposed", m)
			}
		}
	}
	for _, id := range sortedKeys(cur.Proposals) {
		st, old := cur.Proposals[id], prev.Proposals[id]
		if st == old {
			continue
		}
		subj := id
		if s := cur.Subjects[id]; s != "" {
			subj = id + " (" + s + ")"
		}
		switch {
		case old == "" && st == "pending":
			add("proposal-new", id, Info, "new proposal %s, waiting for a decision", subj)
		case st == "approved":
			add("proposal-approved", id, Info, "proposal %s approved", subj)
		case st == "applied":
			add("proposal-applied", id, Warning, "proposal %s applied to the workspace", subj)
		case st == "rejected":
			add("proposal-rejected", id, Info, "proposal %s rejected", subj)
		case old == "":
			add("proposal-new", id, Info, "new proposal %s (%s)", subj, st)
		}
	}
	if prev.AuditSeq > 0 && cur.AuditHead != "" {
		switch {
		case cur.AuditSeq < prev.AuditSeq:
			add("audit-rewound", "audit.jsonl", Critical, "the audit log lost events: it had %d, it has %d (restored from an older copy, or cut)", prev.AuditSeq, cur.AuditSeq)
		case cur.AuditHas != nil && !cur.AuditHas(prev.AuditSeq, prev.AuditHead):
			add("audit-rewound", "audit.jsonl", Critical, "the audit log was rewritten: event %d is no longer the one last seen (%s)", prev.AuditSeq, prev.AuditHead)
		}
	}
	if cur.Audit == "fail" && prev.Audit != "fail" {
		add("audit", "audit.jsonl", Critical, "the audit log does not verify: %s", cur.AuditDetail)
	} else if cur.Audit == "ok" && prev.Audit == "fail" {
		add("audit", "audit.jsonl", Info, "the audit log verifies again")
	}
	rank := map[string]int{Critical: 0, Warning: 1, Info: 2}
	sort.SliceStable(out, func(i, j int) bool { return rank[out[i].Severity] < rank[out[j].Severity] })
	return out
}

func healthSeverity(h string) string {
	switch h {
	case "healthy":
		return Info
	case "degraded":
		return Critical
	}
	return Warning
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// Message is what a channel delivers.
type Message struct {
	// Node names the workspace (its directory or the configured name).
	Node     string   `json:"node"`
	Time     string   `json:"time"`
	Severity string   `json:"severity"`
	Health   string   `json:"health"`
	Reasons  []string `json:"reasons"`
	Changes  []Change `json:"changes"`
	// Digest marks the periodic summary; Summary holds its lines.
	Digest  bool     `json:"digest"`
	Summary []string `json:"summary"`
}

// Title is the message's one-line headline.
func (m *Message) Title() string {
	switch {
	case len(m.Changes) == 1:
		return m.Changes[0].Text
	case len(m.Changes) > 1:
		return fmt.Sprintf("%d changes; health %s", len(m.Changes), m.Health)
	}
	return "digest: health " + m.Health
}

// Channel delivers messages. Send returns how many attempts it made.
type Channel interface {
	Send(ctx context.Context, m *Message) (attempts int, err error)
}

// Target is a configured channel.
type Target struct {
	Name    string
	Type    string
	Channel Channel
	Timeout time.Duration
}

// ChannelState is what one channel was last told.
type ChannelState struct {
	State      *State `json:"state,omitempty"`
	LastSent   string `json:"lastSent,omitempty"`
	LastDigest string `json:"lastDigest,omitempty"`
}

// Memory is the notified state of every channel (notify-state.json).
type Memory struct {
	Channels map[string]*ChannelState `json:"channels"`
}

// MemorySpec is the notified state's kind and version.
var MemorySpec = artifact.Spec{Kind: "lambda-check/notify-state", Version: 1}

// Delivery is one channel's outcome.
type Delivery struct {
	Channel  string `json:"channel"`
	Type     string `json:"type"`
	Status   string `json:"status"` // sent, quiet (nothing new), failed
	Changes  int    `json:"changes"`
	Digest   bool   `json:"digest,omitempty"`
	Attempts int    `json:"attempts,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Record is notify.json's payload.
type Record struct {
	Deliveries []Delivery `json:"deliveries"`
}

// Failed counts failed deliveries.
func (r *Record) Failed() int {
	n := 0
	for _, d := range r.Deliveries {
		if d.Status == "failed" {
			n++
		}
	}
	return n
}

// Request is one round of notifications.
type Request struct {
	Node    string
	Now     time.Time
	State   *State
	Summary []string
	Targets []Target
	Memory  *Memory
	// DigestEvery is the digest period; 0 sends no digest.
	DigestEvery time.Duration
}

// Run tells every channel what changed since it was last told (and the
// digest when due), and returns the record and the updated memory. A
// failed delivery keeps that channel's memory, so it is told next time.
func Run(ctx context.Context, req Request) (*Record, *Memory) {
	mem := &Memory{Channels: map[string]*ChannelState{}}
	if req.Memory != nil {
		for k, v := range req.Memory.Channels {
			c := *v
			mem.Channels[k] = &c
		}
	}
	rec := &Record{Deliveries: []Delivery{}}
	now := req.Now.UTC().Format(time.RFC3339)
	for _, t := range req.Targets {
		cs := mem.Channels[t.Name]
		if cs == nil {
			cs = &ChannelState{}
		}
		d := Delivery{Channel: t.Name, Type: t.Type}
		changes := Diff(cs.State, req.State)
		due := req.DigestEvery > 0 && digestDue(cs.LastDigest, req.Now, req.DigestEvery)
		d.Changes, d.Digest = len(changes), due
		if len(changes) == 0 && !due {
			d.Status = "quiet"
			// Nothing to tell, but the log's head seen now is remembered:
			// a later rewind to before it is found.
			if cs.State != nil && req.State.AuditHead != "" {
				cs.State.AuditSeq, cs.State.AuditHead = req.State.AuditSeq, req.State.AuditHead
				mem.Channels[t.Name] = cs
			}
			rec.Deliveries = append(rec.Deliveries, d)
			continue
		}
		m := &Message{Node: req.Node, Time: now, Health: req.State.Health, Reasons: nonNil(req.State.Reasons),
			Changes: nonNil(changes), Digest: due, Summary: nonNil(req.Summary), Severity: Info}
		for _, c := range changes {
			if c.Severity == Critical || (c.Severity == Warning && m.Severity == Info) {
				m.Severity = c.Severity
			}
		}
		sctx, cancel := ctx, context.CancelFunc(func() {})
		if t.Timeout > 0 {
			sctx, cancel = context.WithTimeout(ctx, t.Timeout)
		}
		n, err := t.Channel.Send(sctx, m)
		cancel()
		d.Attempts = n
		if err != nil {
			d.Status, d.Error = "failed", err.Error()
		} else {
			d.Status = "sent"
			st := *req.State
			cs.State, cs.LastSent = &st, now
			if due {
				cs.LastDigest = now
			}
		}
		mem.Channels[t.Name] = cs
		rec.Deliveries = append(rec.Deliveries, d)
	}
	return rec, mem
}

func digestDue(last string, now time.Time, every time.Duration) bool {
	t, err := time.Parse(time.RFC3339, last)
	return err != nil || !now.Before(t.Add(every))
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Lines renders a message as plain text lines (desktop, logs).
func Lines(m *Message) []string {
	var out []string
	for _, c := range m.Changes {
		out = append(out, "• "+c.Text)
	}
	if len(m.Reasons) > 0 && m.Health != "healthy" {
		out = append(out, "why: "+strings.Join(m.Reasons, "; "))
	}
	if m.Digest {
		out = append(out, m.Summary...)
	}
	return out
}
