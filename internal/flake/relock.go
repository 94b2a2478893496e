package flake

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ErrNeedsFetch: re-locking would make Nix fetch something (an input the
// new revision declares that its own flake.lock does not pin, or an input
// the workspace gives a URL of its own): the lock cannot be derived here.
var ErrNeedsFetch = errors.New("nix would have to fetch")

// Relock moves one root input of a workspace's flake.lock to a new
// revision the way 'nix flake lock --update-input <Input>' does (Nix 2.8's
// computeLocks): the moved input's own inputs are taken from the new
// revision's flake.lock, its follows made relative to the input's place in
// the workspace, except where the workspace's flake.nix overrides them
// (its follows win); what only the old revision needed is dropped; every
// node is named as Nix names them when it writes the file.
type Relock struct {
	// Workspace is the workspace's flake.lock before the move.
	Workspace *Lock
	// Input is the root input moved; it must lock a node directly.
	Input string
	// Locked are the input's locked attributes at the new revision.
	Locked Attrs
	// DepLock is the input's own flake.lock at the new revision, nil when
	// it has none.
	DepLock *Lock
	// DepInputs are the inputs the input's flake.nix declares at the new
	// revision; nil: those its flake.lock pins (which Nix wrote from that
	// flake.nix), or without one, those the old node has.
	DepInputs []string
	// Overrides are what the workspace's flake.nix declares for the
	// input's inputs (inputs.<Input>.inputs); nil when flake.nix was not
	// evaluated: then the follows the old lock records for them stand in.
	Overrides map[string]*DeclaredInput
}

// RelockResult is the new lock and what changed in the moved input's own
// inputs.
type RelockResult struct {
	Lock *Lock
	// Added and Removed name the moved input's inputs the new revision
	// gained and lost.
	Added, Removed []string
	// Overrides are the workspace's follows applied in the moved input's
	// subtree: input path under it ("nixpkgs", "a/nixpkgs") -> follows
	// path from the workspace's root.
	Overrides map[string][]string
}

// gnode is a lock node in a pointer graph: Nix's in-memory form, in which
// node names do not exist until the file is written.
type gnode struct {
	src    *Node
	inputs map[string]gref
}

type gref struct {
	node    *gnode
	follows []string // set for a follows
}

// Apply computes the new lock.
func (r Relock) Apply() (*RelockResult, error) {
	ws := r.Workspace
	rootRef, ok := ws.Nodes[ws.Root].Inputs[r.Input]
	if !ok || rootRef.IsFollows() {
		return nil, fmt.Errorf("%q is not a root input of the workspace that locks a node", r.Input)
	}
	oldNode := ws.Nodes[rootRef.Node]

	// The workspace as a graph, node for node.
	byKey, err := graphOf(ws, nil)
	if err != nil {
		return nil, err
	}
	root := byKey[ws.Root]

	overrides := r.Overrides
	if overrides == nil {
		overrides = overridesFromLock(oldNode, r.Input)
	}
	names := r.DepInputs
	var depRoot *Node
	if r.DepLock != nil {
		depRoot = r.DepLock.Nodes[r.DepLock.Root]
	}
	switch {
	case names != nil:
	case depRoot != nil:
		for in := range depRoot.Inputs {
			names = append(names, in)
		}
	default:
		// Neither its flake.nix evaluated nor a lock of its own: take the
		// inputs it had (those the workspace follows need nothing else).
		for in := range oldNode.Inputs {
			names = append(names, in)
		}
	}
	sort.Strings(names)

	moved := &gnode{src: &Node{Locked: r.Locked, Original: oldNode.Original, Flake: oldNode.Flake, Extra: oldNode.Extra}, inputs: map[string]gref{}}
	res := &RelockResult{Added: []string{}, Removed: []string{}, Overrides: map[string][]string{}}
	prefix := []string{r.Input}
	for _, y := range names {
		ov := overrides[y]
		switch {
		case ov != nil && ov.Follows != nil:
			moved.inputs[y] = gref{follows: ov.Follows}
			res.Overrides[y] = ov.Follows
			continue
		case ov != nil && (ov.URL != "" || ov.Attrs != nil):
			return nil, fmt.Errorf("%w: the workspace gives %s's input %q its own URL (%s)", ErrNeedsFetch, r.Input, y, describeDeclared(ov))
		}
		var ref InputRef
		if depRoot != nil {
			ref, ok = depRoot.Inputs[y]
		}
		if depRoot == nil || !ok {
			return nil, fmt.Errorf("%w: %s at the new revision declares the input %q, which its flake.lock does not pin", ErrNeedsFetch, r.Input, y)
		}
		var sub map[string]*DeclaredInput
		if ov != nil {
			sub = ov.Inputs
		}
		g, err := copyDep(r.DepLock, ref, append(prefix, y), prefix, sub, res.Overrides, 0)
		if err != nil {
			return nil, err
		}
		moved.inputs[y] = g
	}
	for in := range oldNode.Inputs {
		if !containsString(names, in) {
			res.Removed = append(res.Removed, in)
		}
	}
	for _, in := range names {
		if _, ok := oldNode.Inputs[in]; !ok {
			res.Added = append(res.Added, in)
		}
	}
	sort.Strings(res.Removed)
	root.inputs[r.Input] = gref{node: moved}
	res.Lock = dumpNix(root, ws.Version)
	return res, nil
}

// copyDep copies a node of a dependency's lock into the workspace as Nix's
// computeLocks does: one new node per place it is reached (Nix does not
// share nodes across input paths), the dependency's follows (paths from
// its own root) prefixed with the dependency's path in the workspace, and
// the workspace's overrides at that path applied.
func copyDep(dep *Lock, ref InputRef, path, depPrefix []string, overrides map[string]*DeclaredInput, applied map[string][]string, depth int) (gref, error) {
	if ref.IsFollows() {
		return gref{follows: append(append([]string{}, depPrefix...), ref.Follows...)}, nil
	}
	if depth > maxLockDepth {
		return gref{}, fmt.Errorf("the new revision's flake.lock nests deeper than %d nodes", maxLockDepth)
	}
	n, ok := dep.Nodes[ref.Node]
	if !ok {
		return gref{}, fmt.Errorf("the new revision's flake.lock has no node %q", ref.Node)
	}
	g := &gnode{src: n, inputs: map[string]gref{}}
	for in, r := range n.Inputs {
		ov := overrides[in]
		switch {
		case ov != nil && ov.Follows != nil:
			g.inputs[in] = gref{follows: ov.Follows}
			applied[strings.Join(append(append([]string{}, path[len(depPrefix):]...), in), "/")] = ov.Follows
			continue
		case ov != nil && (ov.URL != "" || ov.Attrs != nil):
			return gref{}, fmt.Errorf("%w: the workspace gives %s its own URL (%s)", ErrNeedsFetch, strings.Join(append(path, in), "/"), describeDeclared(ov))
		}
		var sub map[string]*DeclaredInput
		if ov != nil {
			sub = ov.Inputs
		}
		c, err := copyDep(dep, r, append(append([]string{}, path...), in), depPrefix, sub, applied, depth+1)
		if err != nil {
			return gref{}, err
		}
		g.inputs[in] = c
	}
	return gref{node: g}, nil
}

// overridesFromLock recovers the workspace's follows for an input's
// inputs from the old lock: a follows inside the input's subtree whose
// target lies outside it can only come from the workspace's flake.nix
// (the input's own lock makes its follows relative to itself).
func overridesFromLock(old *Node, input string) map[string]*DeclaredInput {
	out := map[string]*DeclaredInput{}
	for in, ref := range old.Inputs {
		if ref.IsFollows() && (len(ref.Follows) == 0 || ref.Follows[0] != input) {
			out[in] = &DeclaredInput{Follows: ref.Follows}
		}
	}
	return out
}

// maxLockDepth bounds how deep lock graphs are walked.
const maxLockDepth = 256

// dumpNix writes a graph as Nix's LockFile::toJSON does: the root named
// "root", every other node by the input that first reaches it, depth
// first in input order, with "_2", "_3" on collisions; only what the root
// reaches is written.
func dumpNix(root *gnode, version int) *Lock {
	out := &Lock{Version: version, Nodes: map[string]*Node{}}
	keys := map[string]bool{}
	next := map[string]int{} // the next suffix to try for a taken key
	named := map[*gnode]string{}
	var dump func(key string, g *gnode) string
	dump = func(key string, g *gnode) string {
		if k, ok := named[g]; ok {
			return k
		}
		if keys[key] {
			base := key
			for i := max(next[base], 2); ; i++ {
				if k := base + "_" + strconv.Itoa(i); !keys[k] {
					key, next[base] = k, i+1
					break
				}
			}
		}
		keys[key] = true
		named[g] = key
		node := &Node{Locked: g.src.Locked, Original: g.src.Original, Flake: g.src.Flake, Extra: g.src.Extra}
		out.Nodes[key] = node
		ins := make([]string, 0, len(g.inputs))
		for in := range g.inputs {
			ins = append(ins, in)
		}
		sort.Strings(ins)
		if len(ins) > 0 {
			node.Inputs = map[string]InputRef{}
		}
		for _, in := range ins {
			r := g.inputs[in]
			if r.node == nil {
				node.Inputs[in] = InputRef{Follows: r.follows}
			} else {
				node.Inputs[in] = InputRef{Node: dump(in, r.node)}
			}
		}
		return key
	}
	out.Root = dump("root", root)
	return out
}

func containsString(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// Renamed returns the lock with every node named as Nix names them when it
// writes the file (see dumpNix), for a lock put together by hand; nodes
// the root does not reach are dropped.
func (l *Lock) Renamed() (*Lock, error) {
	byKey, err := graphOf(l, nil)
	if err != nil {
		return nil, err
	}
	return dumpNix(byKey[l.Root], l.Version), nil
}

// graphOf turns a lock into its pointer graph, one gnode per node key;
// follows (non-nil) rewrites every follows path (re-rooting the graph).
func graphOf(l *Lock, follows func([]string) []string) (map[string]*gnode, error) {
	byKey := map[string]*gnode{}
	var conv func(key string, depth int) (*gnode, error)
	conv = func(key string, depth int) (*gnode, error) {
		if g, ok := byKey[key]; ok {
			return g, nil
		}
		if depth > maxLockDepth {
			return nil, fmt.Errorf("flake.lock nests deeper than %d nodes", maxLockDepth)
		}
		n, ok := l.Nodes[key]
		if !ok {
			return nil, fmt.Errorf("flake.lock: no node %q", key)
		}
		g := &gnode{src: n, inputs: map[string]gref{}}
		byKey[key] = g
		for in, ref := range n.Inputs {
			if ref.IsFollows() {
				f := ref.Follows
				if follows != nil {
					f = follows(f)
				}
				g.inputs[in] = gref{follows: f}
				continue
			}
			c, err := conv(ref.Node, depth+1)
			if err != nil {
				return nil, err
			}
			g.inputs[in] = gref{node: c}
		}
		return g, nil
	}
	if _, err := conv(l.Root, 0); err != nil {
		return nil, err
	}
	return byKey, nil
}
