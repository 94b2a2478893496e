package flake

import (
	"errors"
	"fmt"
	"sort"
)

// ErrOverlay: the overlay lock cannot be derived exactly (Nix would have
// to fetch something to write it).
var ErrOverlay = errors.New("overlay lock cannot be derived without fetching")

// WorkspaceInput is the name of the workspace's input in an overlay flake.
const WorkspaceInput = "workspace"

// Overlay describes a flake that builds a workspace flake with one of its
// inputs moved:
//
//	inputs.workspace.url = <workspace at its base commit>;
//	inputs.workspace.inputs.<Input>.follows = "<Input>";
//	inputs.<Input>.url = <the input at its new revision>;
//	inputs.<Input>.inputs.<i>.follows = "workspace/<...>";  (as the workspace's lock has them)
type Overlay struct {
	// Workspace is the workspace's own flake.lock.
	Workspace *Lock
	// WorkspaceLocked and WorkspaceOriginal are the workspace input's
	// attributes.
	WorkspaceLocked, WorkspaceOriginal Attrs
	// Input is the moved input (a root input of the workspace).
	Input string
	// Locked and Original are its attributes at the new revision.
	Locked, Original Attrs
}

// InputFollows returns the follows of the moved input's own inputs, as
// the overlay's flake.nix must declare them: input name -> path from the
// overlay's root ("workspace/logos-cpp-sdk").
func (o *Overlay) InputFollows() (map[string][]string, error) {
	ws := o.Workspace
	ref, ok := ws.Nodes[ws.Root].Inputs[o.Input]
	if !ok || ref.IsFollows() {
		return nil, fmt.Errorf("%w: %q is not a locked root input of the workspace", ErrOverlay, o.Input)
	}
	out := map[string][]string{}
	for name, r := range ws.Nodes[ref.Node].Inputs {
		if !r.IsFollows() {
			return nil, fmt.Errorf("%w: %s's input %q is locked by its own lock, not the workspace's", ErrOverlay, o.Input, name)
		}
		out[name] = append([]string{WorkspaceInput}, r.Follows...)
	}
	return out, nil
}

// Lock returns the flake.lock Nix writes for the overlay flake: the
// workspace's lock re-rooted under "workspace", the moved input's old node
// replaced by the new one at the top, and every node named as Nix names
// them (by the input that first reaches it, depth first in input order,
// "_2", "_3" on collisions). It refuses (ErrOverlay) when another node than
// the workspace's root uses the old node directly: Nix would keep it under
// a name this function does not guess.
func (o *Overlay) Lock() (*Lock, error) {
	ws := o.Workspace
	follows, err := o.InputFollows()
	if err != nil {
		return nil, err
	}
	old := ws.Nodes[ws.Root].Inputs[o.Input].Node
	for name, n := range ws.Nodes {
		if name == ws.Root {
			continue
		}
		for in, r := range n.Inputs {
			if !r.IsFollows() && r.Node == old {
				return nil, fmt.Errorf("%w: node %q uses %s's old node through its input %q", ErrOverlay, name, o.Input, in)
			}
		}
	}
	type lnode struct {
		src    *Node
		inputs map[string]any // *lnode or []string
	}
	nodes := map[string]*lnode{}
	var conv func(name string) *lnode
	conv = func(name string) *lnode {
		if n, ok := nodes[name]; ok {
			return n
		}
		src := ws.Nodes[name]
		n := &lnode{src: src, inputs: map[string]any{}}
		nodes[name] = n
		for in, r := range src.Inputs {
			if r.IsFollows() {
				n.inputs[in] = append([]string{WorkspaceInput}, r.Follows...)
			} else {
				n.inputs[in] = conv(r.Node)
			}
		}
		return n
	}
	wsRoot := &lnode{src: &Node{Locked: o.WorkspaceLocked, Original: o.WorkspaceOriginal}, inputs: map[string]any{}}
	for in, r := range ws.Nodes[ws.Root].Inputs {
		switch {
		case in == o.Input:
			wsRoot.inputs[in] = []string{o.Input}
		case r.IsFollows():
			wsRoot.inputs[in] = append([]string{WorkspaceInput}, r.Follows...)
		default:
			wsRoot.inputs[in] = conv(r.Node)
		}
	}
	moved := &lnode{src: &Node{Locked: o.Locked, Original: o.Original}, inputs: map[string]any{}}
	for in, p := range follows {
		moved.inputs[in] = p
	}
	root := &lnode{src: &Node{}, inputs: map[string]any{o.Input: moved, WorkspaceInput: wsRoot}}

	// Nix's LockFile::toJSON naming.
	out := &Lock{Version: LockVersion, Nodes: map[string]*Node{}}
	keys := map[string]bool{}
	named := map[*lnode]string{}
	var dump func(key string, n *lnode) string
	dump = func(key string, n *lnode) string {
		if k, ok := named[n]; ok {
			return k
		}
		if keys[key] {
			for i := 2; ; i++ {
				if k := fmt.Sprintf("%s_%d", key, i); !keys[k] {
					key = k
					break
				}
			}
		}
		keys[key] = true
		named[n] = key
		node := &Node{Locked: n.src.Locked, Original: n.src.Original, Flake: n.src.Flake, Extra: n.src.Extra}
		out.Nodes[key] = node
		names := make([]string, 0, len(n.inputs))
		for in := range n.inputs {
			names = append(names, in)
		}
		sort.Strings(names)
		if len(names) > 0 {
			node.Inputs = map[string]InputRef{}
		}
		for _, in := range names {
			switch v := n.inputs[in].(type) {
			case *lnode:
				node.Inputs[in] = InputRef{Node: dump(in, v)}
			case []string:
				node.Inputs[in] = InputRef{Follows: v}
			}
		}
		return key
	}
	out.Root = dump("root", root)
	return out, nil
}
