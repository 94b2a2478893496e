package cli

import (
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/workflow"
)

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
		return exitcode.Input(workflow.ErrNoNotify, "docs/cycle.md (Notifications) shows a configuration")
	}
	e, release, err := rt.Lock()
	if err != nil {
		return err
	}
	defer release()
	rec, err := workflow.Notify(rt.Ctx, e, workflow.NotifyOptions{Test: c.Test})
	if err != nil {
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
	return workflow.NotifyVerdict(rec)
}
