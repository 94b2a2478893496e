package policy

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/lambda-os/lambda-check/internal/flake"
)

var followsRule = define("follows", "inputs share the workspace's nixpkgs (and other shared inputs), one copy per repository, and flake.lock records the follows flake.nix declares", true, Warn,
	func() *followsOptions { return &followsOptions{Shared: []string{"nixpkgs"}} }, checkFollows)

type followsOptions struct {
	// Shared are inputs every node that has them must take from the root.
	Shared []string `json:"shared"`
}

// lockPaths returns, for every node the root reaches, the shortest input
// path from the root to it (for flake.nix override hints: "a/b" is
// a.inputs.b), in one breadth-first walk: input names sorted, so ties go
// the same way every time.
func lockPaths(l *flake.Lock) map[string][]string {
	out := map[string][]string{l.Root: nil}
	queue := []string{l.Root}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		n := l.Nodes[id]
		names := make([]string, 0, len(n.Inputs))
		for k, ref := range n.Inputs {
			if !ref.IsFollows() {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		for _, k := range names {
			to := n.Inputs[k].Node
			if _, seen := out[to]; seen {
				continue
			}
			out[to] = append(append([]string{}, out[id]...), k)
			queue = append(queue, to)
		}
	}
	return out
}

// lockPath is the shortest input path from the root to node, nil for the
// root or a node it does not reach; computed once per lock.
func (in *Input) lockPath(node string) []string {
	if in.paths == nil {
		in.paths = lockPaths(in.Lock)
	}
	return in.paths[node]
}

func checkFollows(_ context.Context, in *Input, o *followsOptions) (Output, error) {
	if in.Lock == nil {
		return Output{Notes: noLock}, nil
	}
	l := in.Lock
	var out []Finding
	root := l.Nodes[l.Root]
	// One finding per shared input, listing every input that does not
	// take the workspace's copy (the real workspace has eight nixpkgs).
	for _, s := range o.Shared {
		if _, ok := root.Inputs[s]; !ok {
			continue
		}
		want, err := l.Resolve(l.Root, s)
		if err != nil {
			return Output{}, err
		}
		var details []string
		copies := map[string]bool{}
		for _, id := range sortedNodes(l) {
			if _, ok := l.Nodes[id].Inputs[s]; !ok || id == want {
				continue
			}
			got, err := l.Resolve(id, s)
			if err != nil {
				return Output{}, err
			}
			if got == want {
				continue
			}
			copies[got] = true
			d := fmt.Sprintf("%s takes node %s%s", in.inputSubject(id).Name, got, revOf(l, got))
			if p := in.lockPath(id); p != nil {
				d += fmt.Sprintf(" (fix: %s.inputs.%s.follows = %q;)", strings.Join(p, ".inputs."), s, s)
			}
			details = append(details, d)
		}
		if len(details) == 0 {
			continue
		}
		sort.Strings(details)
		out = append(out, Finding{
			Subject: Subject{Kind: KindInput, Name: s},
			Message: fmt.Sprintf("%d copies of %s in flake.lock: the workspace's (node %s%s) and %d more, taken by %d inputs", len(copies)+1, s, want, revOf(l, want), len(copies), len(details)),
			Details: details,
			Hint:    fmt.Sprintf("in flake.nix, make each input listed follow the workspace's %s (the fix beside it); every copy is another %s to fetch and build against", s, s),
		})
	}
	for _, r := range in.Registry.Repos {
		revs := map[string]bool{}
		var nodes []string
		for _, p := range r.Pins {
			revs[p.Rev] = true
			nodes = append(nodes, p.Node)
		}
		if len(revs) > 1 {
			out = append(out, Finding{
				Subject: Subject{Kind: KindSubmodule, Name: r.Path},
				Message: fmt.Sprintf("flake.lock holds this repository %d times at %d revisions (nodes %s)", len(nodes), len(revs), strings.Join(nodes, ", ")),
				Hint:    "make the inner inputs follow the workspace's input for it, so one revision is built",
			})
		}
	}
	var notes []string
	if in.Declared == nil {
		notes = append(notes, "flake.nix not evaluated ("+in.FlakeNix.Note+"): declared follows not compared with flake.lock")
	} else {
		for _, s := range l.CompareDeclared(in.Declared) {
			f := Finding{
				Subject: Subject{Kind: KindInput, Name: s.Input},
				Message: fmt.Sprintf("flake.nix declares %s, flake.lock records %s", s.Declared, s.Locked),
				Hint:    "flake.lock is stale: run 'nix flake lock' and commit it",
			}
			if parent, sub, nested := strings.Cut(s.Input, "/"); nested && s.Locked == "absent" {
				// The locked flake may simply not have that input: Nix
				// then ignores the override with a warning.
				f.Message = fmt.Sprintf("flake.nix declares %s for %s, but %s as locked has no input %q", s.Declared, s.Input, parent, sub)
				f.Hint = fmt.Sprintf("remove the dead override from flake.nix, or run 'nix flake lock' if %s has gained that input", parent)
			}
			out = append(out, f)
		}
	}
	return Output{Findings: out, Notes: notes}, nil
}

// revOf is " at <short rev>" for a locked node, else "".
func revOf(l *flake.Lock, node string) string {
	if n := l.Nodes[node]; n != nil && n.Locked != nil {
		if r := n.Locked.String("rev"); r != "" {
			return " at " + short(r)
		}
	}
	return ""
}
