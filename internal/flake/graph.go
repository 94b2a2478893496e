package flake

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Graph is the dependency graph of a flake.lock: one node per lock node
// (the root excepted), an edge "From needs To" per input, with follows
// resolved exactly as Nix resolves them.
type Graph struct {
	Nodes []GraphNode `json:"nodes"` // sorted by id
	Edges []Edge      `json:"edges"` // sorted by from, to, input
	// Cycles are the strongly connected components with more than one
	// member (or a node that needs itself), members sorted.
	Cycles [][]string `json:"cycles"`
	// Excluded are the infrastructure nodes left out, sorted, and
	// ExcludedInputs the root inputs resolving to them.
	Excluded       []string `json:"excluded"`
	ExcludedInputs []string `json:"excludedInputs"`
}

// GraphNode is a lock node.
type GraphNode struct {
	ID string `json:"id"`
	// Inputs are the root's inputs that resolve to this node, sorted.
	Inputs []string `json:"inputs"`
	// Ref is the locked reference in flake-URL style
	// (github:owner/repo, git+https://..., path:...).
	Ref string `json:"ref"`
	Rev string `json:"rev,omitempty"`
}

// Edge is "From needs To" through From's input Input.
type Edge struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Input string `json:"input"`
	// Follows is the follows path when the input follows another.
	Follows string `json:"follows,omitempty"`
	// Via lists excluded infrastructure nodes the dependency passes
	// through, when there are any.
	Via []string `json:"via,omitempty"`
}

// GraphOptions shape a graph.
type GraphOptions struct {
	// Exclude lists path.Match patterns; a node is infrastructure and left
	// out when its id or one of the root inputs resolving to it matches.
	// Dependencies through a left-out node are kept as edges with Via.
	Exclude []string
}

// NewGraph builds the graph of a lock.
func NewGraph(l *Lock, opts GraphOptions) (*Graph, error) {
	for _, p := range opts.Exclude {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("graph: bad exclude pattern %q", p)
		}
	}
	roots, err := l.RootInputs()
	if err != nil {
		return nil, err
	}
	inputsOf := map[string][]string{}
	for _, ri := range roots {
		inputsOf[ri.Node] = append(inputsOf[ri.Node], ri.Input)
	}
	ids := make([]string, 0, len(l.Nodes))
	for id := range l.Nodes {
		if id != l.Root {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	excluded := map[string]bool{}
	for _, id := range ids {
		for _, name := range append([]string{id}, inputsOf[id]...) {
			for _, p := range opts.Exclude {
				if ok, _ := path.Match(p, name); ok {
					excluded[id] = true
				}
			}
		}
	}
	// Direct edges, follows resolved.
	direct := map[string][]Edge{}
	for _, id := range ids {
		n := l.Nodes[id]
		ins := make([]string, 0, len(n.Inputs))
		for in := range n.Inputs {
			ins = append(ins, in)
		}
		sort.Strings(ins)
		for _, in := range ins {
			to, err := l.Resolve(id, in)
			if err != nil {
				return nil, fmt.Errorf("flake.lock: input %q of %q: %w", in, id, err)
			}
			if to == l.Root {
				// Following the root flake itself ("inputs.x.follows = """)
				// is no dependency on another repository.
				continue
			}
			e := Edge{From: id, To: to, Input: in}
			if ref := n.Inputs[in]; ref.IsFollows() {
				e.Follows = strings.Join(ref.Follows, "/")
			}
			direct[id] = append(direct[id], e)
		}
	}
	g := &Graph{Nodes: []GraphNode{}, Edges: []Edge{}, Cycles: [][]string{}, Excluded: []string{}, ExcludedInputs: []string{}}
	for _, id := range ids {
		if excluded[id] {
			g.Excluded = append(g.Excluded, id)
			g.ExcludedInputs = append(g.ExcludedInputs, inputsOf[id]...)
			continue
		}
		n := l.Nodes[id]
		ins := inputsOf[id]
		if ins == nil {
			ins = []string{}
		}
		g.Nodes = append(g.Nodes, GraphNode{ID: id, Inputs: ins, Ref: RefString(n.Locked), Rev: n.Locked.String("rev")})
		seen := map[string]bool{}
		for _, e := range direct[id] {
			if !excluded[e.To] {
				if !seen[e.To+"\x00"+e.Input] {
					seen[e.To+"\x00"+e.Input] = true
					g.Edges = append(g.Edges, e)
				}
				continue
			}
			// Keep what the excluded node leads to, so no order is lost.
			for _, t := range throughExcluded(e.To, direct, excluded) {
				key := t.to + "\x00" + e.Input
				if !seen[key] {
					seen[key] = true
					g.Edges = append(g.Edges, Edge{From: id, To: t.to, Input: e.Input, Follows: e.Follows, Via: t.via})
				}
			}
		}
	}
	sort.Strings(g.ExcludedInputs)
	sort.Slice(g.Edges, func(i, j int) bool {
		a, b := g.Edges[i], g.Edges[j]
		if a.From != b.From {
			return a.From < b.From
		}
		if a.To != b.To {
			return a.To < b.To
		}
		return a.Input < b.Input
	})
	g.Cycles = g.findCycles()
	return g, nil
}

type target struct {
	to  string
	via []string
}

// throughExcluded returns the kept nodes reachable from an excluded node
// through excluded nodes only, each with the first path found.
func throughExcluded(start string, direct map[string][]Edge, excluded map[string]bool) []target {
	var out []target
	seen := map[string]bool{start: true}
	type item struct {
		id  string
		via []string
	}
	queue := []item{{start, []string{start}}}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		for _, e := range direct[it.id] {
			if seen[e.To] {
				continue
			}
			seen[e.To] = true
			if excluded[e.To] {
				queue = append(queue, item{e.To, append(append([]string{}, it.via...), e.To)})
			} else {
				out = append(out, target{e.To, it.via})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].to < out[j].to })
	return out
}

// Needs returns the ids a node needs directly, sorted and unique.
func (g *Graph) Needs(id string) []string {
	i := sort.Search(len(g.Edges), func(i int) bool { return g.Edges[i].From >= id })
	var out []string
	for ; i < len(g.Edges) && g.Edges[i].From == id; i++ {
		if n := len(out); n == 0 || out[n-1] != g.Edges[i].To {
			out = append(out, g.Edges[i].To)
		}
	}
	return out
}

// Node returns the node with id, or nil.
func (g *Graph) Node(id string) *GraphNode {
	i := sort.Search(len(g.Nodes), func(i int) bool { return g.Nodes[i].ID >= id })
	if i < len(g.Nodes) && g.Nodes[i].ID == id {
		return &g.Nodes[i]
	}
	return nil
}

// findCycles runs Tarjan's algorithm (iteratively: graphs of thousands of
// nodes in a chain must not exhaust the stack).
func (g *Graph) findCycles() [][]string {
	index := map[string]int{}
	low := map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	var cycles [][]string
	next := 0
	type frame struct {
		id    string
		needs []string
		i     int
	}
	for _, n := range g.Nodes {
		if _, ok := index[n.ID]; ok {
			continue
		}
		work := []*frame{{id: n.ID, needs: g.Needs(n.ID)}}
		index[n.ID], low[n.ID] = next, next
		next++
		stack = append(stack, n.ID)
		onStack[n.ID] = true
		for len(work) > 0 {
			f := work[len(work)-1]
			if f.i < len(f.needs) {
				w := f.needs[f.i]
				f.i++
				if _, ok := index[w]; !ok {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					work = append(work, &frame{id: w, needs: g.Needs(w)})
				} else if onStack[w] {
					low[f.id] = min(low[f.id], index[w])
				}
				continue
			}
			work = work[:len(work)-1]
			if len(work) > 0 {
				p := work[len(work)-1]
				low[p.id] = min(low[p.id], low[f.id])
			}
			if low[f.id] != index[f.id] {
				continue
			}
			var scc []string
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				scc = append(scc, w)
				if w == f.id {
					break
				}
			}
			if len(scc) > 1 || g.needsItself(f.id) {
				sort.Strings(scc)
				cycles = append(cycles, scc)
			}
		}
	}
	sort.Slice(cycles, func(i, j int) bool { return cycles[i][0] < cycles[j][0] })
	if cycles == nil {
		cycles = [][]string{}
	}
	return cycles
}

func (g *Graph) needsItself(id string) bool {
	for _, n := range g.Needs(id) {
		if n == id {
			return true
		}
	}
	return false
}

// RefString writes locked attributes in flake-URL style, for people.
func RefString(a Attrs) string {
	switch a.Type() {
	case "github", "gitlab", "sourcehut":
		return a.Type() + ":" + a.String("owner") + "/" + a.String("repo")
	case "git":
		return "git+" + a.String("url")
	case "path":
		return "path:" + a.String("path")
	case "tarball", "file":
		return a.Type() + "+" + a.String("url")
	case "indirect":
		return "flake:" + a.String("id")
	case "":
		return ""
	}
	return a.Type() + ":" + a.String("url")
}
