package cli

import (
	healthreport "github.com/lambda-os/lambda-check/internal/report"
	"github.com/lambda-os/lambda-check/internal/workflow"
)

// ReportCmd is "lambda-check report".
type ReportCmd struct {
	HTML   string `name:"html" placeholder:"OUT" help:"Also write a self-contained HTML page here (no external assets)."`
	Events int    `default:"25" help:"How many recent audit events to show."`
	Format string `default:"text" enum:"text,json,prometheus" help:"text, json (as --json), or prometheus: the metrics in Prometheus' text format."`
}

// StatusCmd is "lambda-check status".
type StatusCmd struct{}

// Help is shown by "lambda-check status --help".
func (c *StatusCmd) Help() string {
	return `One line: the last cycle's health and how long ago it ran (stale when
older than three typical gaps between cycles), the stages that did not end
ok, the modules failing, the proposals pending and the audit verification.
--json gives the same as an object. It reads the state directory only.`
}

// Run shows the status.
func (c *StatusCmd) Run(rt *Runtime) error {
	e, err := rt.ReadWorkflow()
	if err != nil {
		return err
	}
	r, err := workflow.Report(rt.Ctx, e, 0)
	if err != nil {
		return err
	}
	s := healthreport.StatusOf(r)
	if rt.Globals.JSON {
		return rt.PrintJSON(struct {
			Kind          string `json:"kind"`
			SchemaVersion int    `json:"schemaVersion"`
			healthreport.Status
		}{"lambda-check/status", 1, s})
	}
	rt.Printf("%s\n", s.Line())
	return nil
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
	e, err := rt.ReadWorkflow()
	if err != nil {
		return err
	}
	r, err := workflow.Report(rt.Ctx, e, c.Events)
	if err != nil {
		return err
	}
	if c.HTML != "" {
		if err := workflow.WriteReportHTML(r, rt.Abs(c.HTML)); err != nil {
			return err
		}
		rt.Logf("wrote %s", rt.Abs(c.HTML))
	}
	switch {
	case c.Format == "prometheus":
		return healthreport.Prometheus(rt.Env.Stdout, healthreport.StatusOf(r))
	case rt.Globals.JSON || c.Format == "json":
		return rt.PrintJSON(r)
	}
	healthreport.Text(rt.Env.Stdout, r)
	return nil
}
