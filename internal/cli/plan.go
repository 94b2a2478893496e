package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/stage/plan"
	"github.com/lambda-os/lambda-check/internal/stage/upgrades"
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
	if c.All && len(c.Input) > 0 {
		return errUsage("--all and --input exclude each other")
	}
	v, err := loadGraph(rt, false, c.NoEval)
	if err != nil {
		return err
	}
	changes, unplaced := c.Input, []string(nil)
	var inputs []artifact.Input
	switch {
	case c.All:
		changes = v.RootInputs()
	case len(changes) == 0:
		// The upgrades the upgrades stage found.
		p := filepath.Join(rt.StateDirPath(), "upgrades.json")
		env, b, err := artifact.Read[upgrades.Upgrades](p, upgrades.Spec)
		if errors.Is(err, fs.ErrNotExist) {
			return exitcode.Input(fmt.Errorf("no changes to plan: %s does not exist", p), "run 'lambda-check upgrades' first, or name the inputs that change with --input NAME, or plan them all with --all")
		}
		if err != nil {
			return exitcode.Input(fmt.Errorf("read upgrades: %w", err), "")
		}
		if env.Payload.Base.FlakeLock != v.FlakeLock.Digest {
			return exitcode.Input(fmt.Errorf("%s was found for another flake.lock than the workspace's", p), "run 'lambda-check upgrades' again")
		}
		inputs = []artifact.Input{{Kind: upgrades.Spec.Kind, Digest: artifact.Digest(b)}}
		for _, r := range env.Payload.Repos {
			if !r.IsUpgrade() {
				continue
			}
			if len(r.Inputs) == 0 {
				unplaced = append(unplaced, r.Path)
			}
			changes = append(changes, r.Inputs...)
		}
		if len(changes) == 0 && len(unplaced) == 0 {
			rt.Logf("no upgrades in %s: the plan is empty", p)
		}
	}
	res, err := plan.Run(rt.Ctx, plan.Request{Graph: &v.Graph, Changes: changes, FlakeLock: v.FlakeLock, Unplaced: unplaced})
	var ue *plan.UnknownInputError
	if errors.As(err, &ue) {
		hint := "'lambda-check graph' lists the inputs"
		if len(ue.Excluded) > 0 {
			hint = fmt.Sprintf("%s %s left out as infrastructure (graph.exclude in the config)", strings.Join(ue.Excluded, ", "), isAre(len(ue.Excluded)))
		}
		return exitcode.Input(err, hint)
	}
	if err != nil {
		return err
	}
	sd, unlock, err := rt.LockState()
	if err != nil {
		return err
	}
	defer unlock()
	out := sd.File("plan.json")
	if c.Out != "" {
		out = rt.Abs(c.Out)
	}
	b, digest, err := artifact.Write(out, &artifact.Envelope[*plan.Plan]{
		Kind: plan.Spec.Kind, SchemaVersion: plan.Spec.Version, Producer: rt.Producer(), Inputs: inputs, Payload: &res.Plan,
	})
	if err != nil {
		return err
	}
	if err := rt.record(sd, audit.Event{Stage: "plan", Inputs: inputs, Output: output(plan.Spec.Kind, out, b),
		Detail: fmt.Sprintf("%d changes in %d levels", len(res.Plan.Changes), len(res.Plan.Levels))}); err != nil {
		return err
	}
	if rt.Globals.JSON {
		_, err := rt.Env.Stdout.Write(b)
		return err
	}
	renderPlan(rt, &res.Plan)
	rt.Logf("wrote %s (%s)", out, digest)
	return nil
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
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
