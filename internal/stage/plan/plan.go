// Package plan is the plan stage: it orders a set of changed flake inputs
// by dependency, leaves first, from the flake.lock graph. Every change comes
// after every change it depends on, directly or through inputs that do not
// change; a level holds changes that do not depend on one another, sorted.
// Cycles are never broken silently: the members of a cycle move together,
// in one level, and the plan lists the cycle.
package plan

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/flake"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// Spec identifies the plan artifact.
var Spec = artifact.Spec{Kind: artifact.KindPrefix + "plan", Version: 1}

// Request is what the stage orders.
type Request struct {
	Graph *flake.Graph
	// Changes are root input names.
	Changes []string
	// FlakeLock identifies the lock the graph came from.
	FlakeLock workspace.FileDigest
	// Unplaced are changed submodules no flake input pins: nothing orders
	// them, and they are listed as they are.
	Unplaced []string
}

// Plan is the payload of plan.json.
type Plan struct {
	FlakeLock workspace.FileDigest `json:"flakeLock"`
	// Changes are the requested inputs, sorted.
	Changes []string `json:"changes"`
	// Levels: every step of level n depends only on steps of levels < n.
	Levels [][]Step `json:"levels"`
	// Cycles are the dependency cycles that hold a change, members sorted.
	Cycles [][]string `json:"cycles"`
	// Unplaced are changed submodules that no flake input pins (docs,
	// tools): no order applies to them. Sorted.
	Unplaced []string `json:"unplaced"`
}

// Step is one change in the plan.
type Step struct {
	// Node is the flake.lock node the inputs resolve to.
	Node string `json:"node"`
	// Inputs are the requested inputs resolving to the node.
	Inputs []string `json:"inputs"`
	// After are the nodes of the changes this one waits for: the nearest
	// changed dependencies, directly or through unchanged ones.
	After []string `json:"after"`
	// Cycle lists the cycle the node is in, when it is in one.
	Cycle []string `json:"cycle,omitempty"`
}

// Result is the stage's outcome.
type Result struct {
	Plan Plan
}

// UnknownInputError names requested inputs the graph does not have.
type UnknownInputError struct {
	Inputs   []string
	Excluded []string // of those, the ones left out as infrastructure
}

func (e *UnknownInputError) Error() string {
	return fmt.Sprintf("no such flake input: %s", strings.Join(e.Inputs, ", "))
}

// Run orders the changes.
func Run(ctx context.Context, req Request) (*Result, error) {
	g := req.Graph
	byInput := map[string]string{}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			byInput[in] = n.ID
		}
	}
	changes := uniqueSorted(req.Changes)
	changed := map[string][]string{} // node -> inputs
	var unknown []string
	for _, in := range changes {
		node, ok := byInput[in]
		if !ok {
			unknown = append(unknown, in)
			continue
		}
		changed[node] = append(changed[node], in)
	}
	if len(unknown) > 0 {
		return nil, &UnknownInputError{Inputs: unknown, Excluded: excludedAmong(g, unknown)}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Condense cycles: each component is one unit.
	comp := map[string]string{} // node -> representative
	members := map[string][]string{}
	for _, c := range g.Cycles {
		for _, m := range c {
			comp[m] = c[0]
		}
		members[c[0]] = c
	}
	rep := func(id string) string {
		if r, ok := comp[id]; ok {
			return r
		}
		return id
	}
	needs := map[string][]string{}
	dependants := map[string][]string{}
	units := map[string]bool{}
	for _, n := range g.Nodes {
		units[rep(n.ID)] = true
	}
	seenEdge := map[[2]string]bool{}
	for _, e := range g.Edges {
		a, b := rep(e.From), rep(e.To)
		if a == b || seenEdge[[2]string{a, b}] {
			continue
		}
		seenEdge[[2]string{a, b}] = true
		needs[a] = append(needs[a], b)
		dependants[b] = append(dependants[b], a)
	}
	unitChanged := map[string]bool{}
	for node := range changed {
		unitChanged[rep(node)] = true
	}

	// Kahn's algorithm, dependencies first. level[u] is the number of
	// changes on the longest chain of changes below u; after[u] the
	// nearest changed units below it.
	pending := map[string]int{}
	var ready []string
	for u := range units {
		pending[u] = len(needs[u])
		if pending[u] == 0 {
			ready = append(ready, u)
		}
	}
	level := map[string]int{}
	after := map[string]map[string]bool{}
	done := 0
	for len(ready) > 0 {
		u := ready[len(ready)-1]
		ready = ready[:len(ready)-1]
		done++
		lv, af := 0, map[string]bool{}
		for _, d := range needs[u] {
			if unitChanged[d] {
				lv = max(lv, level[d]+1)
				af[d] = true
			} else {
				lv = max(lv, level[d])
				for x := range after[d] {
					af[x] = true
				}
			}
		}
		level[u], after[u] = lv, af
		for _, p := range dependants[u] {
			pending[p]--
			if pending[p] == 0 {
				ready = append(ready, p)
			}
		}
	}
	if done != len(units) {
		// Condensation is acyclic by construction; this is a bug.
		return nil, fmt.Errorf("plan: %d of %d units left unordered", len(units)-done, len(units))
	}

	p := Plan{FlakeLock: req.FlakeLock, Changes: changes, Levels: [][]Step{}, Cycles: [][]string{}, Unplaced: uniqueSorted(req.Unplaced)}
	if p.Unplaced == nil {
		p.Unplaced = []string{}
	}
	if p.Changes == nil {
		p.Changes = []string{}
	}
	for node, ins := range changed {
		u := rep(node)
		for len(p.Levels) <= level[u] {
			p.Levels = append(p.Levels, []Step{})
		}
		s := Step{Node: node, Inputs: ins, After: []string{}, Cycle: members[u]}
		for x := range after[u] {
			s.After = append(s.After, changedNodes(x, members, changed)...)
		}
		sort.Strings(s.After)
		p.Levels[level[u]] = append(p.Levels[level[u]], s)
	}
	for _, l := range p.Levels {
		sort.Slice(l, func(i, j int) bool { return l[i].Node < l[j].Node })
	}
	for _, c := range g.Cycles {
		for _, m := range c {
			if _, ok := changed[m]; ok {
				p.Cycles = append(p.Cycles, c)
				break
			}
		}
	}
	return &Result{Plan: p}, nil
}

// changedNodes returns the changed nodes a unit stands for.
func changedNodes(unit string, members map[string][]string, changed map[string][]string) []string {
	ms := members[unit]
	if ms == nil {
		ms = []string{unit}
	}
	var out []string
	for _, m := range ms {
		if _, ok := changed[m]; ok {
			out = append(out, m)
		}
	}
	return out
}

func uniqueSorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	j := 0
	for i, x := range out {
		if i == 0 || x != out[j-1] {
			out[j] = x
			j++
		}
	}
	return out[:j]
}

func excludedAmong(g *flake.Graph, names []string) []string {
	ex := map[string]bool{}
	for _, e := range g.ExcludedInputs {
		ex[e] = true
	}
	var out []string
	for _, n := range names {
		if ex[n] {
			out = append(out, n)
		}
	}
	return out
}
