package cli

import (
	"github.com/lambda-os/lambda-check/internal/stage/heal"
	"github.com/lambda-os/lambda-check/internal/workflow"
)

// HealCmd is "lambda-check heal".
type HealCmd struct {
	Policy string `placeholder:"FILE" help:"The policy configuration rollbacks are checked against (default: <workspace>/policy.json when it exists)."`
}

// Help is shown by "lambda-check heal --help".
func (c *HealCmd) Help() string {
	return `Reads the last verify.json and the verify history. A module that passed in
the previous run and fails now is a regression; when its submodule's pin
moved since it last passed, heal writes a rollback proposal (kind rollback:
the gitlink and its flake.lock node back to the last pin it passed under,
the same patch and flake as an upgrade) to be approved and applied like any
other. With heal.autoApply (off by default) it approves the rollback with
heal.key and applies it through 'governance apply', runs verify.build and
verifies again. Writes heal.json; exit 3 when there was a regression, healed
or not.`
}

// Run heals.
func (c *HealCmd) Run(rt *Runtime) error {
	pcfg, err := workflow.LoadPolicyConfig(rt.WorkspaceDir(), absIf(rt, c.Policy))
	if err != nil {
		return err
	}
	e, release, err := rt.Lock()
	if err != nil {
		return err
	}
	defer release()
	res, err := workflow.Heal(rt.Ctx, e, workflow.HealOptions{Policy: pcfg})
	if err != nil {
		return err
	}
	if rt.Globals.JSON {
		if err := rt.PrintJSON(res.Report); err != nil {
			return err
		}
	} else {
		renderHeal(rt, res.Report)
	}
	return workflow.HealVerdict(res.Report)
}

func renderHeal(rt *Runtime, r *heal.Report) {
	if len(r.Regressions) == 0 {
		rt.Printf("heal: healthy: no module regressed since the last run\n")
		return
	}
	rt.Printf("heal: %d regressions\n", len(r.Regressions))
	for _, g := range r.Regressions {
		rt.Printf("  %s (%s) fails at %s; last passed at %s\n", g.Module, g.Reason, short(g.Now), short(g.LastPass))
		switch {
		case g.Applied != "":
			rt.Printf("    rolled back by %s: commit %s\n", g.Proposal, g.Applied)
		case g.Proposal != "":
			rt.Printf("    rollback proposal %s (approve and apply it with 'lambda-check governance')\n", g.Proposal)
		}
		if g.Problem != "" {
			rt.Printf("    %s\n", g.Problem)
		}
	}
	if r.Reverify != nil {
		rt.Printf("  verified again: %s (%d pass, %d fail)\n", r.Reverify.Verdict, r.Reverify.Pass, r.Reverify.Fail)
	}
}
