package cli

import (
	"fmt"
	"strings"

	"github.com/lambda-os/lambda-check/internal/flake"
	"github.com/lambda-os/lambda-check/internal/stage/plan"
	"github.com/lambda-os/lambda-check/internal/workflow"
)

// GraphCmd is "lambda-check graph".
type GraphCmd struct {
	Format   string `short:"f" enum:"text,json,dot" default:"text" help:"Output format: text, json or dot (Graphviz)."`
	AllNodes bool   `help:"Keep infrastructure inputs (graph.exclude in the config) in the graph."`
	NoEval   bool   `help:"Do not evaluate flake.nix's inputs with Nix; use flake.lock alone."`
}

// Help is shown by "lambda-check graph --help".
func (c *GraphCmd) Help() string {
	return `Prints how the workspace's repositories depend on each other, from
flake.lock exactly: one node per locked input, an edge "X needs Y" per input,
follows resolved as Nix resolves them. Infrastructure inputs (nixpkgs and the
like, graph.exclude in the config) are left out, and what depends through them
is kept. Cycles are reported with their members. Where Nix is installed,
flake.nix's inputs are evaluated (nothing is fetched) and any follows the lock
does not record is reported: the lock is stale. The order at the end is the
one changes must go in, leaves first.`
}

// Run prints the graph.
func (c *GraphCmd) Run(rt *Runtime) error {
	e, err := rt.Workflow()
	if err != nil {
		return err
	}
	v, err := workflow.Graph(rt.Ctx, e, workflow.GraphOptions{AllNodes: c.AllNodes, NoEval: c.NoEval})
	if err != nil {
		return err
	}
	switch {
	case c.Format == "json" || rt.Globals.JSON:
		return rt.PrintJSON(v)
	case c.Format == "dot":
		rt.Printf("%s", dot(&v.Graph))
		return nil
	}
	order, err := workflow.Order(rt.Ctx, v)
	if err != nil {
		return err
	}
	renderGraph(rt, v, order)
	return nil
}

func renderGraph(rt *Runtime, v *plan.GraphView, order *plan.Plan) {
	g := &v.Graph
	rt.Printf("flake.lock: %d inputs, %d dependencies, %d cycles", len(g.Nodes), len(g.Edges), len(g.Cycles))
	if len(g.Excluded) > 0 {
		rt.Printf("; left out as infrastructure: %s", strings.Join(g.Excluded, ", "))
	}
	rt.Printf("\n")
	for _, n := range g.Nodes {
		name := n.ID
		if len(n.Inputs) > 0 && (len(n.Inputs) > 1 || n.Inputs[0] != n.ID) {
			name += " (input " + strings.Join(n.Inputs, ", ") + ")"
		}
		rt.Printf("  %s  %s %s\n", name, n.Ref, short(n.Rev))
		if needs := g.Needs(n.ID); len(needs) > 0 {
			rt.Printf("      needs %s\n", strings.Join(needs, ", "))
		}
	}
	for _, c := range g.Cycles {
		rt.Printf("cycle: %s\n", strings.Join(append(append([]string{}, c...), c[0]), " -> "))
	}
	if len(order.Levels) > 0 {
		rt.Printf("order, leaves first:\n")
		for i, l := range order.Levels {
			var names []string
			for _, s := range l {
				names = append(names, s.Node)
			}
			rt.Printf("  %d: %s\n", i, strings.Join(names, ", "))
		}
	}
	if v.FlakeNix.Evaluated {
		if len(v.Stale) == 0 {
			rt.Printf("flake.nix: evaluated; flake.lock records every input and follows it declares\n")
		}
		for _, s := range v.Stale {
			if parent, sub, nested := strings.Cut(s.Input, "/"); nested && s.Locked == "absent" {
				rt.Printf("stale or dead: %s: flake.nix declares %s, but %s as locked has no input %q\n", s.Input, s.Declared, parent, sub)
				continue
			}
			rt.Printf("stale: %s: flake.nix declares %s, flake.lock records %s\n", s.Input, s.Declared, s.Locked)
		}
	} else {
		rt.Logf("flake.nix not evaluated (%s): its declared follows were not compared with flake.lock", v.FlakeNix.Note)
	}
}

// dot writes the graph for Graphviz: an edge per "X needs Y", dashed when
// through follows, cycle members in red.
func dot(g *flake.Graph) string {
	inCycle := map[string]bool{}
	for _, c := range g.Cycles {
		for _, m := range c {
			inCycle[m] = true
		}
	}
	var b strings.Builder
	b.WriteString("digraph \"flake.lock\" {\n  rankdir=LR;\n  node [shape=box];\n")
	for _, n := range g.Nodes {
		attrs := fmt.Sprintf("label=%s", dotQuote(n.ID+"\n"+n.Ref))
		if inCycle[n.ID] {
			attrs += ", color=red"
		}
		fmt.Fprintf(&b, "  %s [%s];\n", dotQuote(n.ID), attrs)
	}
	for _, e := range g.Edges {
		style := ""
		if e.Follows != "" {
			style = " [style=dashed]"
		}
		fmt.Fprintf(&b, "  %s -> %s%s;\n", dotQuote(e.From), dotQuote(e.To), style)
	}
	b.WriteString("}\n")
	return b.String()
}

func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
