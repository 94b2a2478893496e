package plan

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/flake"
)

// dag builds a lock whose root inputs are n nodes "m0000"...; node i needs
// each earlier node with probability p (so the graph is acyclic).
func dag(r *rand.Rand, n int, p float64) *flake.Lock {
	l := &flake.Lock{Version: 7, Root: "root", Nodes: map[string]*flake.Node{"root": {Inputs: map[string]flake.InputRef{}}}}
	for i := range n {
		id := fmt.Sprintf("m%04d", i)
		node := &flake.Node{Inputs: map[string]flake.InputRef{}, Locked: flake.Attrs{"type": "git", "url": "file:///r/" + id, "rev": id}}
		for j := range i {
			if r.Float64() < p {
				// Half the edges are follows, as in a real workspace.
				dep := fmt.Sprintf("m%04d", j)
				if r.IntN(2) == 0 {
					node.Inputs[dep] = flake.InputRef{Follows: []string{dep}}
				} else {
					node.Inputs[dep] = flake.InputRef{Node: dep}
				}
			}
		}
		l.Nodes[id] = node
		l.Nodes["root"].Inputs[id] = flake.InputRef{Node: id}
	}
	return l
}

func graphOf(t testing.TB, l *flake.Lock) *flake.Graph {
	t.Helper()
	g, err := flake.NewGraph(l, flake.GraphOptions{})
	assert.NilError(t, err)
	return g
}

// reach returns, for every node, the set of nodes it needs transitively.
func reach(g *flake.Graph) map[string]map[string]bool {
	memo := map[string]map[string]bool{}
	var visit func(string) map[string]bool
	visit = func(id string) map[string]bool {
		if r, ok := memo[id]; ok {
			return r
		}
		r := map[string]bool{}
		memo[id] = r
		for _, d := range g.Needs(id) {
			r[d] = true
			for x := range visit(d) {
				r[x] = true
			}
		}
		return r
	}
	for _, n := range g.Nodes {
		visit(n.ID)
	}
	return memo
}

// Property: on random 2,000-node DAGs and random change sets, every change
// comes after every change it needs (directly or not), each level is as
// low as it can be, levels are sorted, and the plan is the same every time.
func TestPlanProperty(t *testing.T) {
	t.Parallel()
	for seed := range uint64(4) {
		r := rand.New(rand.NewPCG(seed, 42))
		l := dag(r, 2000, 0.002+0.002*float64(seed))
		g := graphOf(t, l)
		re := reach(g)
		var changes []string
		for _, n := range g.Nodes {
			if r.Float64() < 0.3 {
				changes = append(changes, n.ID)
			}
		}
		res, err := Run(context.Background(), Request{Graph: g, Changes: changes})
		assert.NilError(t, err)
		level := map[string]int{}
		total := 0
		for lv, steps := range res.Plan.Levels {
			assert.Assert(t, len(steps) > 0, "seed %d: level %d is empty", seed, lv)
			assert.Assert(t, sort.SliceIsSorted(steps, func(i, j int) bool { return steps[i].Node < steps[j].Node }))
			for _, s := range steps {
				level[s.Node] = lv
				total++
			}
		}
		assert.Equal(t, total, len(changes))
		changed := map[string]bool{}
		for _, c := range changes {
			changed[c] = true
		}
		for _, x := range changes {
			want := 0
			for y := range re[x] {
				if changed[y] {
					assert.Assert(t, level[x] > level[y], "seed %d: %s (level %d) needs %s (level %d)", seed, x, level[x], y, level[y])
					want = max(want, level[y]+1)
				}
			}
			assert.Equal(t, level[x], want, "seed %d: %s is not at its lowest level", seed, x)
		}
		again, err := Run(context.Background(), Request{Graph: graphOf(t, l), Changes: changes})
		assert.NilError(t, err)
		assert.DeepEqual(t, again.Plan, res.Plan)
	}
}

func TestPlanThroughUnchanged(t *testing.T) {
	t.Parallel()
	// app needs lib needs sdk; lib does not change: app still waits for sdk.
	l, err := flake.ParseLock([]byte(`{"nodes": {
  "app": {"inputs": {"lib": ["lib"]}, "locked": {"type": "git", "url": "file:///app", "rev": "a"}},
  "lib": {"inputs": {"sdk": ["sdk"]}, "locked": {"type": "git", "url": "file:///lib", "rev": "l"}},
  "sdk": {"locked": {"type": "git", "url": "file:///sdk", "rev": "s"}},
  "other": {"locked": {"type": "git", "url": "file:///other", "rev": "o"}},
  "root": {"inputs": {"app": "app", "lib": "lib", "sdk": "sdk", "other": "other", "sdk-alias": ["sdk"]}}
}, "root": "root", "version": 7}`))
	assert.NilError(t, err)
	res, err := Run(context.Background(), Request{Graph: graphOf(t, l), Changes: []string{"app", "sdk", "other", "sdk-alias", "app"}})
	assert.NilError(t, err)
	assert.DeepEqual(t, res.Plan.Changes, []string{"app", "other", "sdk", "sdk-alias"})
	assert.DeepEqual(t, res.Plan.Levels, [][]Step{
		{{Node: "other", Inputs: []string{"other"}, After: []string{}}, {Node: "sdk", Inputs: []string{"sdk", "sdk-alias"}, After: []string{}}},
		{{Node: "app", Inputs: []string{"app"}, After: []string{"sdk"}}},
	})

	_, err = Run(context.Background(), Request{Graph: graphOf(t, l), Changes: []string{"nope", "app"}})
	assert.ErrorContains(t, err, "no such flake input: nope")

	// An input left out as infrastructure is named as such.
	g, err := flake.NewGraph(l, flake.GraphOptions{Exclude: []string{"sdk"}})
	assert.NilError(t, err)
	_, err = Run(context.Background(), Request{Graph: g, Changes: []string{"sdk-alias"}})
	var ue *UnknownInputError
	assert.Assert(t, errors.As(err, &ue))
	assert.DeepEqual(t, ue.Excluded, []string{"sdk-alias"})
}

func TestPlanCycle(t *testing.T) {
	t.Parallel()
	// a <-> b is a cycle; c needs a. Changing a and c: a moves with its
	// cycle, c after it, and the cycle is listed.
	l, err := flake.ParseLock([]byte(`{"nodes": {
  "a": {"inputs": {"b": ["b"]}, "locked": {"type": "git", "url": "file:///a", "rev": "a"}},
  "b": {"inputs": {"a": ["a"]}, "locked": {"type": "git", "url": "file:///b", "rev": "b"}},
  "c": {"inputs": {"a": ["a"]}, "locked": {"type": "git", "url": "file:///c", "rev": "c"}},
  "root": {"inputs": {"a": "a", "b": "b", "c": "c"}}
}, "root": "root", "version": 7}`))
	assert.NilError(t, err)
	res, err := Run(context.Background(), Request{Graph: graphOf(t, l), Changes: []string{"a", "c"}})
	assert.NilError(t, err)
	assert.DeepEqual(t, res.Plan.Cycles, [][]string{{"a", "b"}})
	assert.DeepEqual(t, res.Plan.Levels, [][]Step{
		{{Node: "a", Inputs: []string{"a"}, After: []string{}, Cycle: []string{"a", "b"}}},
		{{Node: "c", Inputs: []string{"c"}, After: []string{"a"}}},
	})
}

func BenchmarkPlan2000(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	l := dag(r, 2000, 0.004)
	var changes []string
	for name := range l.Nodes["root"].Inputs {
		changes = append(changes, name)
	}
	b.ResetTimer()
	for range b.N {
		g, err := flake.NewGraph(l, flake.GraphOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Run(context.Background(), Request{Graph: g, Changes: changes}); err != nil {
			b.Fatal(err)
		}
	}
}
