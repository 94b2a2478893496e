package flake

import (
	"errors"
	"testing"

	"gotest.tools/v3/assert"
)

func mustLock(t *testing.T, s string) *Lock {
	t.Helper()
	l, err := ParseLock([]byte(s))
	assert.NilError(t, err)
	return l
}

// The moved input takes its inputs from its new lock, its follows made
// relative to its place (["x", ...]); the workspace's follows win; what it
// no longer has is dropped; nodes are renamed as Nix writes them.
func TestRelock(t *testing.T) {
	t.Parallel()
	ws := mustLock(t, `{"nodes": {
  "root": {"inputs": {"x": "x", "nixpkgs": "nixpkgs"}},
  "nixpkgs": {"locked": {"type": "git", "url": "file:///n", "rev": "n1"}, "original": {"type": "git", "url": "file:///n"}},
  "x": {"inputs": {"nixpkgs": ["nixpkgs"], "old": "old"}, "locked": {"type": "git", "url": "file:///x", "rev": "x1"}, "original": {"type": "git", "url": "file:///x"}},
  "old": {"locked": {"type": "git", "url": "file:///old", "rev": "o1"}, "original": {"type": "git", "url": "file:///old"}}
}, "root": "root", "version": 7}`)
	dep := mustLock(t, `{"nodes": {
  "root": {"inputs": {"nixpkgs": ["tools", "nixpkgs"], "tools": "tools"}},
  "tools": {"inputs": {"nixpkgs": "nixpkgs"}, "locked": {"type": "git", "url": "file:///t", "rev": "t1"}, "original": {"type": "git", "url": "file:///t"}},
  "nixpkgs": {"locked": {"type": "git", "url": "file:///n", "rev": "n0"}, "original": {"type": "git", "url": "file:///n"}}
}, "root": "root", "version": 7}`)
	res, err := Relock{Workspace: ws, Input: "x", Locked: Attrs{"type": "git", "url": "file:///x", "rev": "x2"}, DepLock: dep}.Apply()
	assert.NilError(t, err)
	assert.DeepEqual(t, res.Added, []string{"tools"})
	assert.DeepEqual(t, res.Removed, []string{"old"})
	assert.DeepEqual(t, res.Overrides, map[string][]string{"nixpkgs": {"nixpkgs"}})
	l := res.Lock
	assert.Equal(t, l.Nodes["x"].Locked.String("rev"), "x2")
	assert.DeepEqual(t, l.Nodes["x"].Inputs["nixpkgs"], InputRef{Follows: []string{"nixpkgs"}})
	assert.DeepEqual(t, l.Nodes["x"].Inputs["tools"], InputRef{Node: "tools"})
	// tools' own nixpkgs is a node of its own: Nix names it nixpkgs_2.
	assert.DeepEqual(t, l.Nodes["tools"].Inputs["nixpkgs"], InputRef{Node: "nixpkgs_2"})
	assert.Equal(t, l.Nodes["nixpkgs_2"].Locked.String("rev"), "n0")
	_, ok := l.Nodes["old"]
	assert.Assert(t, !ok, "a node only the old revision used is dropped")

	// Without the workspace's override, x's own follows is made relative
	// to x.
	ws.Nodes["x"].Inputs["nixpkgs"] = InputRef{Follows: []string{"x", "tools", "nixpkgs"}}
	res, err = Relock{Workspace: ws, Input: "x", Locked: Attrs{"type": "git", "url": "file:///x", "rev": "x2"}, DepLock: dep}.Apply()
	assert.NilError(t, err)
	assert.DeepEqual(t, res.Lock.Nodes["x"].Inputs["nixpkgs"], InputRef{Follows: []string{"x", "tools", "nixpkgs"}})

	// An input the new revision declares and its lock does not pin: Nix
	// would fetch it.
	_, err = Relock{Workspace: ws, Input: "x", Locked: Attrs{"rev": "x2"}, DepLock: dep, DepInputs: []string{"tools", "nixpkgs", "extra"}}.Apply()
	assert.Assert(t, errors.Is(err, ErrNeedsFetch), "%v", err)
	assert.ErrorContains(t, err, `declares the input "extra"`)
	// So would an input the workspace gives a URL of its own.
	_, err = Relock{Workspace: ws, Input: "x", Locked: Attrs{"rev": "x2"}, DepLock: dep,
		Overrides: map[string]*DeclaredInput{"tools": {URL: "git+file:///elsewhere"}}}.Apply()
	assert.Assert(t, errors.Is(err, ErrNeedsFetch), "%v", err)
}

// Re-dumping a lock Nix wrote, unchanged, gives the same names.
func TestDumpNixRoundTrip(t *testing.T) {
	t.Parallel()
	ws := mustLock(t, `{"nodes": {
  "root": {"inputs": {"a": "a", "b": "b"}},
  "a": {"inputs": {"c": "c"}, "locked": {"rev": "1"}},
  "b": {"inputs": {"c": "c_2"}, "locked": {"rev": "2"}},
  "c": {"locked": {"rev": "3"}},
  "c_2": {"locked": {"rev": "4"}}
}, "root": "root", "version": 7}`)
	res, err := Relock{Workspace: ws, Input: "a", Locked: Attrs{"rev": "1"}, DepLock: mustLock(t, `{"nodes": {"root": {"inputs": {"c": "c"}}, "c": {"locked": {"rev": "3"}}}, "root": "root", "version": 7}`)}.Apply()
	assert.NilError(t, err)
	want, err := ws.Marshal()
	assert.NilError(t, err)
	got, err := res.Lock.Marshal()
	assert.NilError(t, err)
	assert.Equal(t, string(got), string(want))
}
