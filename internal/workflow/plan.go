package workflow

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/stage/plan"
	"github.com/lambda-os/lambda-check/internal/stage/upgrades"
)

// GraphOptions say how the workspace's graph is read.
type GraphOptions struct {
	// AllNodes keeps the infrastructure inputs graph.exclude leaves out.
	AllNodes bool
	// NoEval leaves flake.nix unevaluated.
	NoEval bool
}

// Graph reads the workspace's dependency graph from flake.lock (and
// flake.nix's inputs where Nix can evaluate them).
func Graph(ctx context.Context, e *Env, o GraphOptions) (*plan.GraphView, error) {
	req := plan.GraphRequest{Workspace: e.Workspace, Exclude: e.Config.GraphExclude(), Why: "--no-eval was given"}
	if o.AllNodes {
		req.Exclude = nil
	}
	if !o.NoEval {
		if n, why := e.Nix(); n != nil {
			req.Evaluator = n
		} else {
			req.Why = why
		}
	}
	v, err := plan.LoadGraph(ctx, req)
	if errors.Is(err, plan.ErrNoLock) {
		return nil, exitcode.Input(err, "the graph comes from flake.lock: run 'nix flake lock' in the workspace, or point --workspace at one")
	}
	if err != nil {
		return nil, exitcode.Input(err, "")
	}
	return v, nil
}

// Order is the dependency order of every root input, leaves first.
func Order(ctx context.Context, v *plan.GraphView) (*plan.Plan, error) {
	res, err := plan.Run(ctx, plan.Request{Graph: &v.Graph, Changes: v.RootInputs()})
	if err != nil {
		return nil, err
	}
	return &res.Plan, nil
}

// PlanOptions say which changes a plan orders.
type PlanOptions struct {
	// Inputs are the flake inputs that change; All plans every one.
	Inputs []string
	All    bool
	// Upgrades, when neither Inputs nor All is given, are the upgrades
	// planned; nil reads the state directory's upgrades.json.
	Upgrades *UpgradesResult
	// Graph is the workspace's graph; nil reads it (NoEval: without
	// evaluating flake.nix).
	Graph  *plan.GraphView
	NoEval bool
	// Out is where plan.json goes (default: the state directory).
	Out string
}

// PlanResult is a plan as written.
type PlanResult struct {
	Plan *plan.Plan
	Written
}

// Plan orders the changes by dependency, leaves first, and writes
// plan.json with its audit event.
func Plan(ctx context.Context, e *Env, o PlanOptions) (*PlanResult, error) {
	if o.All && len(o.Inputs) > 0 {
		return nil, &exitcode.UsageError{Err: errors.New("--all and --input exclude each other")}
	}
	v := o.Graph
	if v == nil {
		var err error
		if v, err = Graph(ctx, e, GraphOptions{NoEval: o.NoEval}); err != nil {
			return nil, err
		}
	}
	changes, unplaced := o.Inputs, []string(nil)
	var inputs []artifact.Input
	switch {
	case o.All:
		changes = v.RootInputs()
	case len(changes) == 0:
		up := o.Upgrades
		if up == nil {
			var err error
			up, err = ReadUpgrades(e, "", "changes to plan", "run 'lambda-check upgrades' first, or name the inputs that change with --input NAME, or plan them all with --all")
			if err != nil {
				return nil, err
			}
		}
		if up.Upgrades.Base.FlakeLock != v.FlakeLock.Digest {
			return nil, exitcode.Input(fmt.Errorf("%s was found for another flake.lock than the workspace's", up.Path), "run 'lambda-check upgrades' again")
		}
		inputs = up.Input(upgrades.Spec.Kind)
		changes, unplaced = upgradeChanges(up.Upgrades)
		if len(changes) == 0 && len(unplaced) == 0 {
			e.Logf("no upgrades in %s: the plan is empty", up.Path)
		}
	}
	res, err := plan.Run(ctx, plan.Request{Graph: &v.Graph, Changes: changes, FlakeLock: v.FlakeLock, Unplaced: unplaced})
	var ue *plan.UnknownInputError
	if errors.As(err, &ue) {
		hint := "'lambda-check graph' lists the inputs"
		if len(ue.Excluded) > 0 {
			verb := "are"
			if len(ue.Excluded) == 1 {
				verb = "is"
			}
			hint = fmt.Sprintf("%s %s left out as infrastructure (graph.exclude in the config)", strings.Join(ue.Excluded, ", "), verb)
		}
		return nil, exitcode.Input(err, hint)
	}
	if err != nil {
		return nil, err
	}
	w, err := writeArtifact(e, plan.Spec, firstOf(o.Out, e.File("plan.json")), inputs, &res.Plan,
		audit.Event{Stage: "plan", Detail: fmt.Sprintf("%d changes in %d levels", len(res.Plan.Changes), len(res.Plan.Levels))})
	if err != nil {
		return nil, err
	}
	return &PlanResult{Plan: &res.Plan, Written: w}, nil
}

// upgradeChanges are the flake inputs the upgrades move, and the upgraded
// submodules no input pins.
func upgradeChanges(u *upgrades.Upgrades) (changes, unplaced []string) {
	for _, r := range u.Repos {
		if !r.IsUpgrade() {
			continue
		}
		if len(r.Inputs) == 0 {
			unplaced = append(unplaced, r.Path)
		}
		changes = append(changes, r.Inputs...)
	}
	return changes, unplaced
}
