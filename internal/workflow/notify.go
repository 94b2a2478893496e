package workflow

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/notify"
	"github.com/lambda-os/lambda-check/internal/stage/cycle"
	"github.com/lambda-os/lambda-check/internal/stage/verify"
)

// ErrNoNotify: nothing to notify, no channel is configured.
var ErrNoNotify = errors.New("no notification channels configured (notify.channels in the config)")

// NotifyOptions are what a notification round takes.
type NotifyOptions struct {
	// Stages are the cycle's stages the message is about; nil reads the
	// last cycle.json.
	Stages []cycle.StageResult
	// Snap is the workspace proposals are listed against; nil: as it is.
	Snap *Snap
	// Test sends a test message to every channel and keeps no state.
	Test bool
}

// Notify tells each configured channel what changed since it was last
// told and writes notify.json and the channels' memory.
func Notify(ctx context.Context, e *Env, o NotifyOptions) (*notify.Record, error) {
	cfg := e.Config
	if len(cfg.Notify.Channels) == 0 {
		return nil, exitcode.Input(ErrNoNotify, "docs/cycle.md (Notifications) shows a configuration")
	}
	node, err := ReadNode(ctx, e, o.Snap)
	if err != nil {
		return nil, err
	}
	stages := o.Stages
	if stages == nil && node.Cycle != nil {
		stages = node.Cycle.Stages
	}
	st, summary := notifyState(node, stages)
	logPath := e.File(AuditFile)
	if h, err := audit.ReadHead(logPath); err == nil && h.Seq > 0 {
		st.AuditSeq, st.AuditHead = h.Seq, h.Digest
		st.AuditHas = func(seq int64, digest string) bool { return auditHas(logPath, seq, digest) }
	}
	if o.Test {
		rec, _ := notify.Run(ctx, notify.Request{Node: e.Workspace, Now: time.Now(), State: st, Summary: summary, Targets: targets(e)})
		return rec, nil
	}
	var mem *notify.Memory
	menv, _, err := artifact.Read[notify.Memory](e.File(NotifyMemory), notify.MemorySpec)
	switch {
	case err == nil:
		mem = &menv.Payload
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, exitcode.Input(fmt.Errorf("read %s: %w", NotifyMemory, err), "remove it to start over (every channel is then told the current state once)")
	}
	rec, mem := notify.Run(ctx, notify.Request{Node: e.Workspace, Now: e.Now(), State: st, Summary: summary,
		Targets: targets(e), Memory: mem, DigestEvery: cfg.NotifyDigest()})
	if _, _, err := artifact.Write(e.File(NotifyMemory), &artifact.Envelope[*notify.Memory]{
		Kind: notify.MemorySpec.Kind, SchemaVersion: notify.MemorySpec.Version, Producer: e.Producer, Payload: mem}); err != nil {
		return nil, err
	}
	sent := 0
	for _, d := range rec.Deliveries {
		if d.Status == "sent" {
			sent++
		}
	}
	if sent == 0 && rec.Failed() == 0 {
		// Nothing said: the record is kept, the log is not told.
		_, _, err := artifact.Write(e.File("notify.json"), &artifact.Envelope[*notify.Record]{
			Kind: notify.Spec.Kind, SchemaVersion: notify.Spec.Version, Producer: e.Producer, Payload: rec})
		return rec, err
	}
	ev := audit.Event{Stage: "notify", Detail: fmt.Sprintf("%d sent, %d failed", sent, rec.Failed())}
	if rec.Failed() > 0 {
		ev.Result = audit.ResultFail
	}
	if _, err := writeArtifact(e, notify.Spec, e.File("notify.json"), nil, rec, ev); err != nil {
		return nil, err
	}
	return rec, nil
}

// auditHas says whether the log at p holds event seq with that digest.
func auditHas(p string, seq int64, digest string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	found := false
	_ = audit.Scan(f, func(_ int64, line []byte) error {
		if found {
			return nil
		}
		if ev, err := audit.Decode(line); err == nil && ev.Seq == seq {
			found = ev.Digest == digest
		}
		return nil
	})
	return found
}

// NotifyVerdict fails when a delivery failed.
func NotifyVerdict(rec *notify.Record) error {
	if n := rec.Failed(); n > 0 {
		return &exitcode.FailError{Reason: fmt.Sprintf("notify: %d of %d deliveries failed", n, len(rec.Deliveries))}
	}
	return nil
}

// targets builds the configured channels.
func targets(e *Env) []notify.Target {
	cfg := e.Config
	var out []notify.Target
	for _, ch := range cfg.Notify.Channels {
		timeout := cfg.ChannelTimeout(ch.Name)
		if timeout == 0 {
			timeout = 30 * time.Second
		}
		client := &http.Client{Timeout: timeout}
		t := notify.Target{Name: ch.Name, Type: ch.Type, Timeout: timeout}
		switch ch.Type {
		case "telegram":
			t.Channel = &notify.Telegram{APIBase: ch.APIBase, TokenFile: cfg.Path(ch.TokenFile), ChatID: ch.ChatID, Client: client}
		case "webhook":
			t.Channel = &notify.Webhook{URL: ch.URL, SecretFile: cfg.Path(ch.SecretFile), Client: client}
		case "desktop":
			t.Channel = &notify.Desktop{Bus: firstOf(ch.Bus, e.getenv("DBUS_SESSION_BUS_ADDRESS"))}
		}
		out = append(out, t)
	}
	return out
}

// notifyState is what notifications are about, from the node's read
// model and the stages of the cycle they report on.
func notifyState(n *Node, stages []cycle.StageResult) (*notify.State, []string) {
	st := &notify.State{Failing: map[string]string{}, Regressions: map[string]string{},
		Proposals: map[string]string{}, Subjects: map[string]string{}}
	st.Health, st.Reasons = cycle.Judge(stages)
	var summary []string
	for _, r := range stages {
		if r.Name == "audit" {
			switch r.Status {
			case cycle.StatusOK:
				st.Audit = "ok"
			case cycle.StatusFail:
				st.Audit, st.AuditDetail = "fail", r.Detail
			}
		}
		if r.Detail != "" && r.Status != cycle.StatusSkipped {
			summary = append(summary, fmt.Sprintf("%s: %s", r.Name, r.Detail))
		}
	}
	if n.Verify != nil {
		for _, m := range n.Verify.Modules {
			if m.Verdict != verify.Pass {
				st.Failing[m.Name] = m.Reason
			}
		}
	}
	if n.Heal != nil {
		for _, r := range n.Heal.Regressions {
			st.Regressions[r.Module] = r.Proposal
		}
	}
	for _, l := range n.Proposals {
		if l.Proposal == nil {
			continue
		}
		st.Proposals[l.Proposal.ID] = n.ProposalState(l)
		st.Subjects[l.Proposal.ID] = Subject(l.Proposal)
	}
	return st, summary
}
