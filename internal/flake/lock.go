// Package flake models a workspace's flake: flake.lock (version 7) read and
// written exactly as Nix writes it, follows resolution, and the locked
// attributes (narHash, lastModified, revCount) of a git revision computed as
// Nix computes them.
package flake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// LockVersion is the flake.lock version this package reads and writes.
const LockVersion = 7

// Lock is a flake.lock.
type Lock struct {
	Version int
	Root    string
	Nodes   map[string]*Node
}

// Node is one node of the lock graph.
type Node struct {
	Inputs   map[string]InputRef
	Locked   Attrs
	Original Attrs
	// Flake is false for a non-flake input; nil means true (the default).
	Flake *bool
	// Extra keeps keys this package does not model, written back as read.
	Extra map[string]json.RawMessage
}

// InputRef is an input of a node: either a node name, or a follows path
// from the root ("inputs.x.follows = "a/b"" is ["a","b"]).
type InputRef struct {
	Node    string
	Follows []string
}

// IsFollows reports whether the input follows another.
func (r InputRef) IsFollows() bool { return r.Follows != nil }

func (r InputRef) String() string {
	if r.IsFollows() {
		return "follows " + strings.Join(r.Follows, "/")
	}
	return r.Node
}

// Attrs are the attributes of a locked or original reference. Values are
// string, int64 or bool.
type Attrs map[string]any

// String returns a string attribute, or "".
func (a Attrs) String(k string) string {
	s, _ := a[k].(string)
	return s
}

// Int returns an integer attribute and whether it is present.
func (a Attrs) Int(k string) (int64, bool) {
	n, ok := a[k].(int64)
	return n, ok
}

// Type returns the "type" attribute (git, github, path, tarball, ...).
func (a Attrs) Type() string { return a.String("type") }

// ParseLock decodes a flake.lock. It accepts version 7 only.
func ParseLock(b []byte) (*Lock, error) {
	var raw struct {
		Version *int                       `json:"version"`
		Root    *string                    `json:"root"`
		Nodes   map[string]json.RawMessage `json:"nodes"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("parse flake.lock: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("parse flake.lock: trailing data")
	}
	if raw.Version == nil || raw.Root == nil || raw.Nodes == nil {
		return nil, errors.New("parse flake.lock: missing version, root or nodes")
	}
	if *raw.Version != LockVersion {
		return nil, fmt.Errorf("parse flake.lock: version %d is not supported (want %d)", *raw.Version, LockVersion)
	}
	l := &Lock{Version: *raw.Version, Root: *raw.Root, Nodes: map[string]*Node{}}
	for name, nb := range raw.Nodes {
		n, err := parseNode(nb)
		if err != nil {
			return nil, fmt.Errorf("parse flake.lock: node %q: %w", name, err)
		}
		l.Nodes[name] = n
	}
	if _, ok := l.Nodes[l.Root]; !ok {
		return nil, fmt.Errorf("parse flake.lock: root node %q does not exist", l.Root)
	}
	for name, n := range l.Nodes {
		for in, ref := range n.Inputs {
			if !ref.IsFollows() {
				if _, ok := l.Nodes[ref.Node]; !ok {
					return nil, fmt.Errorf("parse flake.lock: input %q of node %q names missing node %q", in, name, ref.Node)
				}
			}
		}
	}
	return l, nil
}

func parseNode(b []byte) (*Node, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	n := &Node{}
	for k, v := range fields {
		var err error
		switch k {
		case "inputs":
			var ins map[string]any
			if err = json.Unmarshal(v, &ins); err == nil {
				n.Inputs = make(map[string]InputRef, len(ins))
				for in, rv := range ins {
					ref, ok := inputRef(rv)
					if !ok {
						return nil, fmt.Errorf("input %q: must be a node name or a follows path", in)
					}
					n.Inputs[in] = ref
				}
			}
		case "locked":
			n.Locked, err = parseAttrs(v)
		case "original":
			n.Original, err = parseAttrs(v)
		case "flake":
			var f bool
			if err = json.Unmarshal(v, &f); err == nil {
				n.Flake = &f
			}
		default:
			if n.Extra == nil {
				n.Extra = map[string]json.RawMessage{}
			}
			n.Extra[k] = v
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
	}
	return n, nil
}

// inputRef reads an input: a node name, or a follows path (a list of
// input names, possibly empty).
func inputRef(v any) (InputRef, bool) {
	switch x := v.(type) {
	case string:
		return InputRef{Node: x}, true
	case []any:
		path := make([]string, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return InputRef{}, false
			}
			path[i] = s
		}
		return InputRef{Follows: path}, true
	}
	return InputRef{}, false
}

func parseAttrs(b []byte) (Attrs, error) {
	// One decode per attribute set: flake.locks of thousands of nodes are
	// read on every run.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("null instead of an attribute set")
	}
	a := make(Attrs, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case string, bool:
			a[k] = x
		case json.Number:
			n, err := strconv.ParseInt(string(x), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("attribute %q: want a string, integer or boolean", k)
			}
			a[k] = n
		case nil:
			return nil, fmt.Errorf("attribute %q is null", k)
		default:
			return nil, fmt.Errorf("attribute %q: want a string, integer or boolean", k)
		}
	}
	return a, nil
}

// Marshal writes the lock as Nix does: keys sorted, two-space indentation,
// a trailing newline, non-ASCII as is.
func (l *Lock) Marshal() ([]byte, error) {
	nodes := map[string]any{}
	for name, n := range l.Nodes {
		m := map[string]any{}
		if len(n.Inputs) > 0 {
			ins := map[string]any{}
			for k, r := range n.Inputs {
				if r.IsFollows() {
					ins[k] = r.Follows
				} else {
					ins[k] = r.Node
				}
			}
			m["inputs"] = ins
		}
		if n.Locked != nil {
			m["locked"] = map[string]any(n.Locked)
		}
		if n.Original != nil {
			m["original"] = map[string]any(n.Original)
		}
		if n.Flake != nil {
			m["flake"] = *n.Flake
		}
		for k, v := range n.Extra {
			m[k] = v
		}
		nodes[name] = m
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]any{"nodes": nodes, "root": l.Root, "version": l.Version}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Resolve returns the node an input of node refers to, following follows
// paths from the root.
func (l *Lock) Resolve(node, input string) (string, error) {
	return l.resolve(node, input, 0)
}

func (l *Lock) resolve(node, input string, depth int) (string, error) {
	if depth > 64 {
		return "", &FollowsCycleError{Node: node, Input: input}
	}
	n, ok := l.Nodes[node]
	if !ok {
		return "", fmt.Errorf("no node %q", node)
	}
	ref, ok := n.Inputs[input]
	if !ok {
		return "", fmt.Errorf("node %q has no input %q", node, input)
	}
	if !ref.IsFollows() {
		return ref.Node, nil
	}
	return l.ResolvePath(ref.Follows, depth+1)
}

// ResolvePath resolves a follows path (input names from the root).
func (l *Lock) ResolvePath(path []string, depth int) (string, error) {
	cur := l.Root
	for _, in := range path {
		next, err := l.resolve(cur, in, depth)
		var fc *FollowsCycleError
		if errors.As(err, &fc) {
			return "", err // said once, not once per step of the cycle
		}
		if err != nil {
			return "", fmt.Errorf("follows %q: %w", strings.Join(path, "/"), err)
		}
		cur = next
	}
	return cur, nil
}

// RootInputs returns the root's inputs resolved to node names, sorted by
// input name.
func (l *Lock) RootInputs() ([]ResolvedInput, error) {
	root := l.Nodes[l.Root]
	names := make([]string, 0, len(root.Inputs))
	for k := range root.Inputs {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]ResolvedInput, 0, len(names))
	for _, in := range names {
		node, err := l.Resolve(l.Root, in)
		if err != nil {
			return nil, err
		}
		out = append(out, ResolvedInput{Input: in, Node: node})
	}
	return out, nil
}

// ResolvedInput is an input name and the node it resolves to.
type ResolvedInput struct {
	Input string
	Node  string
}

// FollowsCycleError: following an input's follows never ends (more than
// 64 deep: a cycle).
type FollowsCycleError struct{ Node, Input string }

func (e *FollowsCycleError) Error() string {
	return fmt.Sprintf("follows of %q.%q: a follows cycle (more than 64 follows deep)", e.Node, e.Input)
}
