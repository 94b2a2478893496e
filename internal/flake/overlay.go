package flake

import (
	"errors"
	"fmt"
	"strings"
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
//	inputs.<Input>.inputs.<i>.follows = "workspace/<...>";  (the workspace's follows for it)
//
// Nix locks the moved input's other inputs from its own flake.lock, as in
// the workspace after the move (Moved).
type Overlay struct {
	// Workspace is the workspace's own flake.lock at its base.
	Workspace *Lock
	// Moved is the workspace's flake.lock after the move (Relock's), whose
	// subtree under Input is the moved input as Nix locks it, and
	// Overrides the workspace's follows in that subtree (Relock's). Moved
	// nil: the input's node in Workspace, whose inputs must then all be
	// follows, which are the overrides.
	Moved     *Lock
	Overrides map[string][]string
	// WorkspaceLocked and WorkspaceOriginal are the workspace input's
	// attributes.
	WorkspaceLocked, WorkspaceOriginal Attrs
	// Input is the moved input (a root input of the workspace).
	Input string
	// Locked and Original are its attributes at the new revision.
	Locked, Original Attrs
}

func (o *Overlay) movedNode() (*Lock, *Node, error) {
	l := o.Moved
	if l == nil {
		l = o.Workspace
	}
	ref, ok := l.Nodes[l.Root].Inputs[o.Input]
	if !ok || ref.IsFollows() {
		return nil, nil, fmt.Errorf("%w: %q is not a locked root input of the workspace", ErrOverlay, o.Input)
	}
	return l, l.Nodes[ref.Node], nil
}

// InputFollows returns the overrides the overlay's flake.nix declares for
// the moved input: input path under it ("logos-cpp-sdk", or "a/nixpkgs"
// for an input of its input) -> follows path from the overlay's root
// ("workspace/logos-cpp-sdk"): the workspace's own follows for it.
func (o *Overlay) InputFollows() (map[string][]string, error) {
	_, n, err := o.movedNode()
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	if o.Moved != nil {
		for p, f := range o.Overrides {
			out[p] = append([]string{WorkspaceInput}, f...)
		}
		return out, nil
	}
	for in, r := range n.Inputs {
		if !r.IsFollows() {
			return nil, fmt.Errorf("%w: %s's input %q is locked by its own lock, not the workspace's", ErrOverlay, o.Input, in)
		}
		out[in] = append([]string{WorkspaceInput}, r.Follows...)
	}
	return out, nil
}

// Lock returns the flake.lock Nix writes for the overlay flake: the
// workspace's lock re-rooted under "workspace" with the moved input
// following the overlay's, the moved input at the top with its subtree as
// the workspace has it after the move (its own follows kept, the
// workspace's through "workspace/"), every node named as Nix names them.
// It refuses (ErrOverlay) when another node than the workspace's root uses
// the old node directly: Nix would keep it under a name this function does
// not guess.
func (o *Overlay) Lock() (*Lock, error) {
	ws := o.Workspace
	if _, err := o.InputFollows(); err != nil {
		return nil, err
	}
	ml, mn, err := o.movedNode()
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
	// The workspace, re-rooted: its follows now start at "workspace".
	byKey, err := graphOf(ws, func(f []string) []string { return append([]string{WorkspaceInput}, f...) })
	if err != nil {
		return nil, err
	}
	wsRoot := &gnode{src: &Node{Locked: o.WorkspaceLocked, Original: o.WorkspaceOriginal}, inputs: map[string]gref{}}
	for in, r := range ws.Nodes[ws.Root].Inputs {
		switch {
		case in == o.Input:
			wsRoot.inputs[in] = gref{follows: []string{o.Input}}
		case r.IsFollows():
			wsRoot.inputs[in] = gref{follows: append([]string{WorkspaceInput}, r.Follows...)}
		default:
			wsRoot.inputs[in] = gref{node: byKey[r.Node]}
		}
	}
	// The moved input as the workspace has it after the move: the
	// workspace's follows go through "workspace"; those from the input's
	// own lock stay (the input is a root input here too).
	overrides := o.Overrides
	if o.Moved == nil {
		overrides = map[string][]string{}
		for in, r := range mn.Inputs {
			overrides[in] = r.Follows
		}
	}
	var mconv func(n *Node, path []string, depth int) (*gnode, error)
	mconv = func(n *Node, path []string, depth int) (*gnode, error) {
		if depth > maxLockDepth {
			return nil, fmt.Errorf("flake.lock nests deeper than %d nodes", maxLockDepth)
		}
		g := &gnode{src: n, inputs: map[string]gref{}}
		for in, r := range n.Inputs {
			p := append(append([]string{}, path...), in)
			_, ov := overrides[strings.Join(p, "/")]
			switch {
			case r.IsFollows() && ov:
				g.inputs[in] = gref{follows: append([]string{WorkspaceInput}, r.Follows...)}
			case r.IsFollows():
				g.inputs[in] = gref{follows: r.Follows}
			default:
				c, err := mconv(ml.Nodes[r.Node], p, depth+1)
				if err != nil {
					return nil, err
				}
				g.inputs[in] = gref{node: c}
			}
		}
		return g, nil
	}
	moved, err := mconv(mn, nil, 0)
	if err != nil {
		return nil, err
	}
	moved.src = &Node{Locked: o.Locked, Original: o.Original, Flake: mn.Flake, Extra: mn.Extra}
	root := &gnode{src: &Node{}, inputs: map[string]gref{o.Input: {node: moved}, WorkspaceInput: {node: wsRoot}}}
	return dumpNix(root, LockVersion), nil
}
