package cli

import (
	"github.com/lambda-os/lambda-check/internal/workflow"
)

// QuarantineCmd is "lambda-check quarantine".
type QuarantineCmd struct {
	List  QuarantineListCmd  `cmd:"" default:"withargs" help:"List the quarantined revisions."`
	Clear QuarantineClearCmd `cmd:"" help:"Lift a quarantine: upgrades to the revision are approvable again."`
}

// Help is shown by "lambda-check quarantine --help".
func (c *QuarantineCmd) Help() string {
	return `A revision a module failed verify at after it was applied (heal found the
regression and proposed, or applied, its rollback) is quarantined: an upgrade
to it is still proposed, shown as blocked with a "quarantine" finding, and is
never approvable, so no cycle applies it again, with autoApply or a program
decider either. When upstream moves past it the newer revision is proposed as
usual. An operator who knows the revision is fine after all (the crash was
the build's, not the code's) clears it; the clearing is recorded in the audit
log with its reason.`
}

// QuarantineListCmd is "lambda-check quarantine list".
type QuarantineListCmd struct{}

// Run lists.
func (c *QuarantineListCmd) Run(rt *Runtime) error {
	e, err := rt.ReadWorkflow()
	if err != nil {
		return err
	}
	q, err := workflow.ReadQuarantine(e)
	if err != nil {
		return err
	}
	if rt.Globals.JSON {
		return rt.PrintJSON(q)
	}
	if len(q.Entries) == 0 {
		rt.Printf("nothing quarantined\n")
		return nil
	}
	for _, x := range q.Entries {
		rt.Printf("%s@%s  %s %s since %s; last passed at %s %s\n", x.Submodule, short(x.Rev), x.Module, x.Reason, x.Since, short(x.LastPass), paren(x.Rollback))
	}
	return nil
}

// QuarantineClearCmd is "lambda-check quarantine clear".
type QuarantineClearCmd struct {
	Selector string `arg:"" placeholder:"SUBMODULE[@REV]" help:"What to clear: a submodule's revision (7 or more hex digits), or all of a submodule's."`
	Reason   string `placeholder:"TEXT" help:"Why, for the record."`
}

// Run clears.
func (c *QuarantineClearCmd) Run(rt *Runtime) error {
	e, release, err := rt.Lock()
	if err != nil {
		return err
	}
	defer release()
	cleared, err := workflow.ClearQuarantine(e, c.Selector, c.Reason)
	if err != nil {
		return err
	}
	for _, x := range cleared {
		rt.Printf("cleared %s@%s (%s %s): upgrades to it are approvable again once proposed\n", x.Submodule, short(x.Rev), x.Module, x.Reason)
	}
	return nil
}
