package cli

import (
	"strings"

	"github.com/lambda-os/lambda-check/internal/stage/plan"
	"github.com/lambda-os/lambda-check/internal/workflow"
)

// PlanCmd is "lambda-check plan".
type PlanCmd struct {
	Input  []string `name:"input" short:"i" placeholder:"NAME" help:"A flake input that changes (repeatable)."`
	All    bool     `help:"Plan a change of every input."`
	NoEval bool     `help:"Do not evaluate flake.nix's inputs with Nix."`
	Out    string   `placeholder:"FILE" help:"Write the artifact here instead of <state-dir>/plan.json."`
}

// Help is shown by "lambda-check plan --help".
func (c *PlanCmd) Help() string {
	return `Orders a set of changed flake inputs by dependency, leaves first, and
writes plan.json. Every change comes after every change it needs, directly or
through inputs that do not change; a level holds changes independent of each
other, sorted by name. Members of a dependency cycle move together and the
cycle is listed. Without --input or --all, the plan is for the upgrades
'lambda-check upgrades' found (<state-dir>/upgrades.json); upgraded
submodules that no flake input pins are listed apart, as unplaced.`
}

// Run writes the plan.
func (c *PlanCmd) Run(rt *Runtime) error {
	out, err := outFile(rt, c.Out)
	if err != nil {
		return err
	}
	e, release, err := rt.Lock()
	if err != nil {
		return err
	}
	defer release()
	res, err := workflow.Plan(rt.Ctx, e, workflow.PlanOptions{Inputs: c.Input, All: c.All, NoEval: c.NoEval, Out: out})
	if err != nil {
		return err
	}
	if rt.Globals.JSON {
		return rt.Print(res.Bytes)
	}
	renderPlan(rt, res.Plan)
	rt.Logf("wrote %s (%s)", res.Path, res.Digest)
	return nil
}

func renderPlan(rt *Runtime, p *plan.Plan) {
	rt.Printf("plan: %d changes in %d levels, leaves first\n", len(p.Changes), len(p.Levels))
	for i, l := range p.Levels {
		rt.Printf("  level %d:\n", i)
		for _, s := range l {
			line := "    " + strings.Join(s.Inputs, ", ")
			if len(s.Inputs) != 1 || s.Inputs[0] != s.Node {
				line += " (node " + s.Node + ")"
			}
			if len(s.After) > 0 {
				line += "  after " + strings.Join(s.After, ", ")
			}
			if len(s.Cycle) > 0 {
				line += "  [cycle: " + strings.Join(s.Cycle, ", ") + "]"
			}
			rt.Printf("%s\n", line)
		}
	}
	if len(p.Unplaced) > 0 {
		rt.Printf("  no flake input (unordered): %s\n", strings.Join(p.Unplaced, ", "))
	}
	for _, c := range p.Cycles {
		rt.Logf("warning: %s form a dependency cycle; they change together", strings.Join(c, ", "))
	}
}
