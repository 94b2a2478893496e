package flake_test

import (
	"bytes"
	"errors"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/flake"
)

const handLock = `{
  "nodes": {
    "liblogos": {
      "inputs": {
        "nixpkgs": [
          "sdk",
          "nixpkgs"
        ],
        "sdk": [
          "sdk"
        ]
      },
      "locked": {
        "lastModified": 1772355600,
        "narHash": "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "owner": "logos-co",
        "repo": "logos-liblogos",
        "rev": "0123456789abcdef0123456789abcdef01234567",
        "type": "github"
      },
      "original": {
        "owner": "logos-co",
        "repo": "logos-liblogos",
        "type": "github"
      }
    },
    "nixpkgs": {
      "flake": false,
      "locked": {
        "lastModified": 1,
        "narHash": "sha256-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=",
        "path": "/nix/store/x-ünï <&>",
        "type": "path"
      },
      "original": {
        "id": "nixpkgs",
        "type": "indirect"
      }
    },
    "root": {
      "inputs": {
        "liblogos": "liblogos",
        "nixpkgs": [
          "sdk",
          "nixpkgs"
        ],
        "sdk": "sdk"
      }
    },
    "sdk": {
      "inputs": {
        "nixpkgs": "nixpkgs"
      },
      "locked": {
        "lastModified": 1772352000,
        "narHash": "sha256-CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC=",
        "ref": "main",
        "rev": "89abcdef0123456789abcdef0123456789abcdef",
        "revCount": 42,
        "type": "git",
        "url": "file:///srv/sdk"
      },
      "original": {
        "type": "git",
        "url": "file:///srv/sdk"
      }
    }
  },
  "root": "root",
  "version": 7
}
`

func TestLockRoundTripIsByteExact(t *testing.T) {
	l, err := flake.ParseLock([]byte(handLock))
	assert.NilError(t, err)
	out, err := l.Marshal()
	assert.NilError(t, err)
	assert.Equal(t, string(out), handLock)
}

func TestResolveFollows(t *testing.T) {
	l, err := flake.ParseLock([]byte(handLock))
	assert.NilError(t, err)
	for _, tc := range []struct{ node, input, want string }{
		{"root", "sdk", "sdk"},
		{"root", "nixpkgs", "nixpkgs"},     // root follows sdk/nixpkgs
		{"liblogos", "sdk", "sdk"},         // follows ["sdk"]
		{"liblogos", "nixpkgs", "nixpkgs"}, // follows ["sdk","nixpkgs"]
	} {
		got, err := l.Resolve(tc.node, tc.input)
		assert.NilError(t, err, "%s.%s", tc.node, tc.input)
		assert.Equal(t, got, tc.want, "%s.%s", tc.node, tc.input)
	}
	ins, err := l.RootInputs()
	assert.NilError(t, err)
	assert.DeepEqual(t, ins, []flake.ResolvedInput{{"liblogos", "liblogos"}, {"nixpkgs", "nixpkgs"}, {"sdk", "sdk"}})
	n, _ := l.Nodes["sdk"].Locked.Int("revCount")
	assert.Equal(t, n, int64(42))
}

func TestFollowsCycleIsAnError(t *testing.T) {
	cyc := `{"nodes":{"root":{"inputs":{"a":["b"],"b":["a"]}}},"root":"root","version":7}`
	l, err := flake.ParseLock([]byte(cyc))
	assert.NilError(t, err)
	_, err = l.Resolve("root", "a")
	assert.ErrorContains(t, err, "a follows cycle")
}

func TestParseLockErrors(t *testing.T) {
	for name, in := range map[string]string{
		"version":      `{"nodes":{"root":{}},"root":"root","version":6}`,
		"no root node": `{"nodes":{},"root":"root","version":7}`,
		"missing node": `{"nodes":{"root":{"inputs":{"a":"nope"}}},"root":"root","version":7}`,
		"bad input":    `{"nodes":{"root":{"inputs":{"a":1}}},"root":"root","version":7}`,
		"bad attr":     `{"nodes":{"root":{},"a":{"locked":{"x":[1]}}},"root":"root","version":7}`,
		"null attr":    `{"nodes":{"root":{},"a":{"locked":{"x":null}}},"root":"root","version":7}`,
		"unknown key":  `{"nodes":{"root":{}},"root":"root","version":7,"extra":1}`,
		"trailing":     `{"nodes":{"root":{}},"root":"root","version":7} {}`,
		"not json":     `nodes`,
	} {
		_, err := flake.ParseLock([]byte(in))
		assert.Assert(t, err != nil, name)
	}
}

func FuzzParseLock(f *testing.F) {
	f.Add([]byte(handLock))
	f.Add([]byte(`{"nodes":{"root":{}},"root":"root","version":7}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := flake.ParseLock(b)
		if err != nil {
			return
		}
		out, err := l.Marshal()
		if err != nil {
			t.Fatalf("marshal of a parsed lock: %v", err)
		}
		l2, err := flake.ParseLock(out)
		if err != nil {
			t.Fatalf("reparse of marshalled lock: %v\n%s", err, out)
		}
		out2, err := l2.Marshal()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("marshal is not stable:\n%s\n---\n%s", out, out2)
		}
		for name := range l.Nodes {
			for in := range l.Nodes[name].Inputs {
				_, _ = l.Resolve(name, in) // must not panic or loop
			}
		}
	})
}

// A follows cycle is said once, in a short message, not unrolled.
func TestFollowsCycleSaidOnce(t *testing.T) {
	l, err := flake.ParseLock([]byte(`{"nodes": {"root": {"inputs": {"a": "a", "b": "b"}},
		"a": {"inputs": {"x": ["b", "x"]}, "locked": {"type": "path", "path": "/a"}, "original": {"type": "path", "path": "/a"}},
		"b": {"inputs": {"x": ["a", "x"]}, "locked": {"type": "path", "path": "/b"}, "original": {"type": "path", "path": "/b"}}},
		"root": "root", "version": 7}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Resolve("a", "x")
	var fc *flake.FollowsCycleError
	if !errors.As(err, &fc) || len(err.Error()) > 200 {
		t.Fatalf("a follows cycle: %d bytes: %.300v", len(err.Error()), err)
	}
}
