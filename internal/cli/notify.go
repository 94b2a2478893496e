package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/config"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/notify"
	"github.com/lambda-os/lambda-check/internal/stage/cycle"
	"github.com/lambda-os/lambda-check/internal/stage/governance"
	"github.com/lambda-os/lambda-check/internal/stage/heal"
	"github.com/lambda-os/lambda-check/internal/stage/verify"
	"github.com/lambda-os/lambda-check/internal/statedir"
)

const notifyMemory = "notify-state.json"

// errNoNotify is returned by notify when nothing is configured.
var errNoNotify = errors.New("no notification channels configured (notify.channels in the config)")

// NotifyCmd is "lambda-check notify".
type NotifyCmd struct {
	Test bool `help:"Send a test message to every channel, whatever changed, and keep no state."`
}

// Help is shown by "lambda-check notify --help".
func (c *NotifyCmd) Help() string {
	return `Tells each configured channel (notify.channels: telegram, webhook, desktop)
what changed since it was last told, from the state directory's artifacts
(the last cycle's health, verify.json, heal.json, the proposals and their
governance state, the audit log's verification): health transitions, modules
that start or stop failing, regressions and their rollbacks, new, approved,
applied and rejected proposals, audit failures. Nothing new, nothing sent;
with notify.digest a summary at most once per period. A channel that could
not be reached keeps its last state and is told next time. Writes notify.json
(the delivery record) and notify-state.json; exit 3 when a delivery failed.
The cycle runs this as its last stage. --test checks the channels.`
}

// Run notifies.
func (c *NotifyCmd) Run(rt *Runtime) error {
	cfg, err := rt.Config()
	if err != nil {
		return err
	}
	if len(cfg.Notify.Channels) == 0 {
		return exitcode.Input(errNoNotify, "docs/cycle.md (Notifications) shows a configuration")
	}
	sd, unlock, err := rt.LockState()
	if err != nil {
		return err
	}
	defer unlock()
	var stages []cycle.StageResult
	if env, _, err := artifact.Read[cycle.Summary](sd.File("cycle.json"), cycle.Spec); err == nil {
		stages = env.Payload.Stages
	}
	var rec *notify.Record
	if c.Test {
		st, summary := notifyState(rt, sd, stages)
		rec, _ = notify.Run(rt.Ctx, notify.Request{Node: rt.WorkspaceDir(), Now: time.Now(), State: st, Summary: summary,
			Targets: targets(rt, cfg)})
	} else if rec, err = notifyLocked(rt.Ctx, rt, sd, cfg, stages); err != nil {
		return err
	}
	if rt.Globals.JSON {
		if err := rt.PrintJSON(rec); err != nil {
			return err
		}
	} else {
		for _, d := range rec.Deliveries {
			rt.Printf("%-12s %-8s %-7s %d changes %s\n", d.Channel, d.Type, d.Status, d.Changes, paren(d.Error))
		}
	}
	if n := rec.Failed(); n > 0 {
		return &exitcode.FailError{Reason: fmt.Sprintf("notify: %d of %d deliveries failed", n, len(rec.Deliveries))}
	}
	return nil
}

func cycleNotify(ctx context.Context, rt *Runtime, sd *statedir.Dir, cfg *config.Config, stages []cycle.StageResult) cycle.Outcome {
	rec, err := notifyLocked(ctx, rt, sd, cfg, stages)
	if err != nil {
		return cycle.Outcome{Err: err}
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
	return cycle.Outcome{Status: cycle.StatusOK, Detail: detail, Counts: counts}
}

// notifyLocked sends what changed and writes the record and the memory.
func notifyLocked(ctx context.Context, rt *Runtime, sd *statedir.Dir, cfg *config.Config, stages []cycle.StageResult) (*notify.Record, error) {
	var mem *notify.Memory
	env, _, err := artifact.Read[notify.Memory](sd.File(notifyMemory), notify.MemorySpec)
	switch {
	case err == nil:
		mem = &env.Payload
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, exitcode.Input(fmt.Errorf("read %s: %w", notifyMemory, err), "remove it to start over (every channel is then told the current state once)")
	}
	now, err := rt.Clock()
	if err != nil {
		return nil, err
	}
	st, summary := notifyState(rt, sd, stages)
	every, _ := time.ParseDuration(cfg.Notify.Digest)
	rec, mem := notify.Run(ctx, notify.Request{Node: rt.WorkspaceDir(), Now: now, State: st, Summary: summary,
		Targets: targets(rt, cfg), Memory: mem, DigestEvery: every})
	if _, _, err := artifact.Write(sd.File(notifyMemory), &artifact.Envelope[*notify.Memory]{
		Kind: notify.MemorySpec.Kind, SchemaVersion: notify.MemorySpec.Version, Producer: rt.Producer(), Payload: mem}); err != nil {
		return nil, err
	}
	b, _, err := artifact.Write(sd.File("notify.json"), &artifact.Envelope[*notify.Record]{
		Kind: notify.Spec.Kind, SchemaVersion: notify.Spec.Version, Producer: rt.Producer(), Payload: rec})
	if err != nil {
		return nil, err
	}
	result := audit.ResultOK
	if rec.Failed() > 0 {
		result = audit.ResultFail
	}
	sent := 0
	for _, d := range rec.Deliveries {
		if d.Status == "sent" {
			sent++
		}
	}
	if sent > 0 || rec.Failed() > 0 {
		if err := rt.record(sd, audit.Event{Stage: "notify", Output: output(notify.Spec.Kind, sd.File("notify.json"), b), Result: result,
			Detail: fmt.Sprintf("%d sent, %d failed", sent, rec.Failed())}); err != nil {
			return nil, err
		}
	}
	return rec, nil
}

// targets builds the configured channels.
func targets(rt *Runtime, cfg *config.Config) []notify.Target {
	var out []notify.Target
	for _, ch := range cfg.Notify.Channels {
		timeout := 30 * time.Second
		if ch.Timeout != "" {
			timeout, _ = time.ParseDuration(ch.Timeout)
		}
		client := &http.Client{Timeout: timeout}
		t := notify.Target{Name: ch.Name, Type: ch.Type, Timeout: timeout}
		switch ch.Type {
		case "telegram":
			t.Channel = &notify.Telegram{APIBase: ch.APIBase, TokenFile: cfg.Path(ch.TokenFile), ChatID: ch.ChatID, Client: client}
		case "webhook":
			t.Channel = &notify.Webhook{URL: ch.URL, SecretFile: cfg.Path(ch.SecretFile), Client: client}
		case "desktop":
			t.Channel = &notify.Desktop{Bus: firstOf(ch.Bus, rt.Env.Getenv("DBUS_SESSION_BUS_ADDRESS"))}
		}
		out = append(out, t)
	}
	return out
}

// notifyState gathers what notifications are about from the artifacts.
func notifyState(rt *Runtime, sd *statedir.Dir, stages []cycle.StageResult) (*notify.State, []string) {
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
	if env, _, err := artifact.Read[verify.Report](sd.File("verify.json"), verify.Spec); err == nil {
		for _, m := range env.Payload.Modules {
			if m.Verdict != verify.Pass {
				st.Failing[m.Name] = m.Reason
			}
		}
	}
	if env, _, err := artifact.Read[heal.Report](sd.File("heal.json"), heal.Spec); err == nil {
		for _, r := range env.Payload.Regressions {
			st.Regressions[r.Module] = r.Proposal
		}
	}
	if ls, err := listProposals(rt); err == nil {
		for _, l := range ls {
			if l.Proposal == nil {
				continue
			}
			st.Proposals[l.Proposal.ID] = l.Status
			st.Subjects[l.Proposal.ID] = fmt.Sprintf("%s %s → %s", l.Proposal.Submodule, short(l.Proposal.From), short(l.Proposal.To))
		}
	}
	if cfg, _ := rt.Config(); cfg != nil && cfg.KeysPath() != "" {
		if env, err := govEnv(rt, sd, false); err == nil {
			if states, err := governanceStates(env); err == nil {
				for id, s := range states {
					st.Proposals[id] = s
				}
			}
		}
	}
	return st, summary
}

// governanceStates maps each proposal to its governance state.
func governanceStates(env governance.Env) (map[string]string, error) {
	states, err := governance.Evaluate(env)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range states {
		out[s.ID] = s.State
	}
	return out, nil
}
