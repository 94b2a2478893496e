package flake

import (
	"strconv"
	"testing"

	"gotest.tools/v3/assert"
)

// A lock shaped like logos-workspace's: the root's nixpkgs follows the
// SDK's, the SDK is the leaf everyone follows, and liblogos carries its own
// copy of capability-module (the hand-broken cycle), which in turn follows
// the root's liblogos.
const workspaceLock = `{
  "nodes": {
    "cap": {
      "inputs": {"liblogos": ["liblogos"], "nixpkgs": ["nixpkgs"], "sdk": ["sdk"]},
      "locked": {"owner": "logos-co", "repo": "logos-capability-module", "rev": "c1", "type": "github"}
    },
    "cap_2": {
      "inputs": {"liblogos": ["liblogos"], "nixpkgs": ["nixpkgs"], "sdk": ["sdk"]},
      "locked": {"owner": "logos-co", "repo": "logos-capability-module", "rev": "c0", "type": "github"}
    },
    "chat": {
      "inputs": {"liblogos": ["liblogos"], "nixpkgs": ["nixpkgs"], "sdk": ["sdk"], "waku": ["waku"]},
      "locked": {"owner": "logos-co", "repo": "logos-chat-module", "rev": "h1", "type": "github"}
    },
    "liblogos": {
      "inputs": {"cap": "cap_2", "nixpkgs": ["nixpkgs"], "sdk": ["sdk"]},
      "locked": {"owner": "logos-co", "repo": "logos-liblogos", "rev": "l1", "type": "github"}
    },
    "nixpkgs_2": {
      "locked": {"owner": "NixOS", "repo": "nixpkgs", "rev": "n1", "type": "github"}
    },
    "root": {
      "inputs": {"cap": "cap", "chat": "chat", "liblogos": "liblogos", "nixpkgs": ["sdk", "nixpkgs"], "sdk": "sdk", "waku": "waku"}
    },
    "sdk": {
      "inputs": {"nixpkgs": "nixpkgs_2"},
      "locked": {"owner": "logos-co", "repo": "logos-cpp-sdk", "rev": "s1", "type": "github"}
    },
    "waku": {
      "inputs": {"liblogos": ["liblogos"], "nixpkgs": ["nixpkgs"], "sdk": ["sdk"]},
      "locked": {"owner": "logos-co", "repo": "logos-waku-module", "rev": "w1", "type": "github"}
    }
  },
  "root": "root",
  "version": 7
}`

func TestGraph(t *testing.T) {
	t.Parallel()
	l, err := ParseLock([]byte(workspaceLock))
	assert.NilError(t, err)
	g, err := NewGraph(l, GraphOptions{})
	assert.NilError(t, err)
	assert.DeepEqual(t, g.Node("nixpkgs_2").Inputs, []string{"nixpkgs"})
	assert.Equal(t, g.Node("sdk").Ref, "github:logos-co/logos-cpp-sdk")
	assert.DeepEqual(t, g.Needs("chat"), []string{"liblogos", "nixpkgs_2", "sdk", "waku"})
	assert.DeepEqual(t, g.Needs("liblogos"), []string{"cap_2", "nixpkgs_2", "sdk"})
	assert.DeepEqual(t, g.Needs("sdk"), []string{"nixpkgs_2"})
	assert.DeepEqual(t, g.Cycles, [][]string{{"cap_2", "liblogos"}})

	// nixpkgs is infrastructure: left out, and the order through it kept.
	g, err = NewGraph(l, GraphOptions{Exclude: []string{"nixpkgs", "nixpkgs_*"}})
	assert.NilError(t, err)
	assert.DeepEqual(t, g.Excluded, []string{"nixpkgs_2"})
	assert.DeepEqual(t, g.ExcludedInputs, []string{"nixpkgs"})
	assert.Assert(t, g.Node("nixpkgs_2") == nil)
	assert.DeepEqual(t, g.Needs("sdk"), []string(nil))
	assert.DeepEqual(t, g.Needs("chat"), []string{"liblogos", "sdk", "waku"})

	_, err = NewGraph(l, GraphOptions{Exclude: []string{"["}})
	assert.ErrorContains(t, err, "bad exclude pattern")
}

func TestGraphThroughExcluded(t *testing.T) {
	t.Parallel()
	// a needs infra, infra needs b: with infra excluded, a still needs b.
	l, err := ParseLock([]byte(`{"nodes": {
  "a": {"inputs": {"infra": "infra"}, "locked": {"type": "git", "url": "file:///a", "rev": "1"}},
  "b": {"locked": {"type": "git", "url": "file:///b", "rev": "2"}},
  "infra": {"inputs": {"b": ["b"]}, "locked": {"type": "github", "owner": "numtide", "repo": "flake-utils", "rev": "3"}},
  "root": {"inputs": {"a": "a", "b": "b", "flake-utils": "infra"}}
}, "root": "root", "version": 7}`))
	assert.NilError(t, err)
	g, err := NewGraph(l, GraphOptions{Exclude: []string{"flake-utils"}})
	assert.NilError(t, err)
	assert.DeepEqual(t, g.Edges, []Edge{{From: "a", To: "b", Input: "infra", Via: []string{"infra"}}})
}

func TestGraphDeepChain(t *testing.T) {
	t.Parallel()
	// Cycle detection is iterative: a 5,000-node chain closed into a loop.
	const n = 5000
	l := &Lock{Version: 7, Root: "root", Nodes: map[string]*Node{"root": {Inputs: map[string]InputRef{}}}}
	name := func(i int) string { return "n" + strconv.Itoa(i) }
	for i := 0; i < n; i++ {
		l.Nodes[name(i)] = &Node{Inputs: map[string]InputRef{"next": {Node: name((i + 1) % n)}}, Locked: Attrs{"type": "git", "url": "file:///x"}}
	}
	l.Nodes["root"].Inputs["first"] = InputRef{Node: name(0)}
	g, err := NewGraph(l, GraphOptions{})
	assert.NilError(t, err)
	assert.Equal(t, len(g.Cycles), 1)
	assert.Equal(t, len(g.Cycles[0]), n)
}

func TestCompareDeclared(t *testing.T) {
	t.Parallel()
	l, err := ParseLock([]byte(workspaceLock))
	assert.NilError(t, err)
	decl, err := ParseDeclaredInputs([]byte(`{
  "nixpkgs": {"follows": "sdk/nixpkgs"},
  "sdk": {"url": "github:logos-co/logos-cpp-sdk"},
  "liblogos": {"url": "github:logos-co/logos-liblogos", "inputs": {"sdk": {"follows": "sdk"}, "nixpkgs": {"follows": "nixpkgs"}}},
  "cap": {"url": "github:logos-co/logos-capability-module", "inputs": {"liblogos": {"follows": "liblogos"}}},
  "chat": {"url": "github:logos-co/logos-chat-module", "inputs": {"waku": {"follows": "waku"}, "extra": {"follows": "sdk"}}},
  "waku": {"type": "github", "owner": "logos-co", "repo": "logos-waku-module", "inputs": {"sdk": {"follows": ""}}},
  "new": {"url": "github:logos-co/new", "flake": false}
}`))
	assert.NilError(t, err)
	assert.DeepEqual(t, l.CompareDeclared(decl), []Staleness{
		{Input: "chat/extra", Declared: "follows sdk", Locked: "absent"},
		{Input: "new", Declared: "github:logos-co/new", Locked: "absent"},
		{Input: "waku/sdk", Declared: "follows ", Locked: "follows sdk"},
	})
	for in, want := range map[string]string{
		`[]`:                           "cannot unmarshal",
		`{"a": 1}`:                     `"a" must be an attribute set`,
		`{"a": {"follows": 1}}`:        "a.follows",
		`{"a": {"inputs": {"b": 2}}}`:  `"a.inputs.b" must be an attribute set`,
		`{"a": {"owner": {"x": "y"}}}`: "want a string, integer or boolean",
	} {
		_, err := ParseDeclaredInputs([]byte(in))
		assert.ErrorContains(t, err, want, in)
	}
}
