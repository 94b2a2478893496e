package workspace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/flake"
)

func TestSourceOfURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"git@github.com:logos-co/logos-cpp-sdk.git":      "github.com/logos-co/logos-cpp-sdk",
		"https://github.com/Logos-Co/Logos-Cpp-SDK":      "github.com/logos-co/logos-cpp-sdk",
		"ssh://git@github.com/logos-co/logos-cpp-sdk/":   "github.com/logos-co/logos-cpp-sdk",
		"git+https://github.com/logos-co/x.git?ref=main": "github.com/logos-co/x",
		"https://git.example.org:8443/Team/Repo.git":     "git.example.org/Team/Repo",
		"/srv/remotes/x.git":                             "file:///srv/remotes/x.git",
		"file:///srv/remotes//x.git/":                    "file:///srv/remotes/x.git",
		"git+file:///srv/remotes/x.git?ref=main":         "file:///srv/remotes/x.git",
		"../x.git":                                       "",
		"":                                               "",
		"nonsense":                                       "",
	} {
		assert.Equal(t, SourceOfURL(in, "/ws"), want, in)
	}
}

func TestSourceOfLocked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a    flake.Attrs
		want string
	}{
		{flake.Attrs{"type": "github", "owner": "logos-co", "repo": "Counter"}, "github.com/logos-co/counter"},
		{flake.Attrs{"type": "gitlab", "owner": "o", "repo": "r", "host": "gitlab.example.org"}, "gitlab.example.org/o/r"},
		{flake.Attrs{"type": "git", "url": "ssh://git@github.com/logos-co/x.git"}, "github.com/logos-co/x"},
		{flake.Attrs{"type": "path", "path": "./repos/x"}, "path:repos/x"},
		{flake.Attrs{"type": "path", "path": "/ws/repos/x"}, "path:repos/x"},
		{flake.Attrs{"type": "path", "path": "/elsewhere/x"}, "file:///elsewhere/x"},
		{flake.Attrs{"type": "tarball", "url": "https://x/y.tar.gz"}, "tarball:https://x/y.tar.gz"},
		{flake.Attrs{"type": "indirect", "id": "nixpkgs"}, "indirect:nixpkgs"},
	} {
		assert.Equal(t, SourceOfLocked(tc.a, "/ws"), tc.want, "%v", tc.a)
	}
	assert.Assert(t, IsLocal(flake.Attrs{"type": "git", "url": "file:///x"}))
	assert.Assert(t, IsLocal(flake.Attrs{"type": "path", "path": "/x"}))
	assert.Assert(t, !IsLocal(flake.Attrs{"type": "github", "owner": "o", "repo": "r"}))
}

func TestParseMetadata(t *testing.T) {
	t.Parallel()
	// Upstream's current form: object dependencies and keys lambda-check
	// does not model.
	m, err := ParseMetadata([]byte(`{
  "name": "chat_module", "display_name": "Chat Module", "version": "0.2.0",
  "type": "core", "interface": "cdylib", "category": "chat", "main": "chat_module_plugin",
  "dependencies": [{"name": "delivery_module", "version": "=0.1.3"}, "waku_module"],
  "include": [], "capabilities": ["rln", "messaging"],
  "nix": {"packages": {"build": []}}
}`))
	assert.NilError(t, err)
	assert.DeepEqual(t, *m, Metadata{
		Name: "chat_module", Version: "0.2.0", Type: "core", Category: "chat", Main: "chat_module_plugin",
		Dependencies: []Dependency{{Name: "delivery_module", Version: "=0.1.3"}, {Name: "waku_module"}},
		Capabilities: []string{"messaging", "rln"},
	})
	assert.Assert(t, m.HasCapability("rln"))
	for in, want := range map[string]string{
		`{"name": "x", "name": "y"}`:                "duplicate member",
		`[]`:                                        "not a JSON object",
		`{"version": "1"}`:                          `"name" "" is not a module name`,
		`{"name": "../x"}`:                          "not a module name",
		`{"name": 3}`:                               `"name" must be a string`,
		`{"name": null}`:                            `"name" must be a string`,
		`{"name": "x", "capabilities": "rln"}`:      "capabilities",
		`{"name": "x", "dependencies": [1]}`:        "dependency 0",
		`{"name": "x", "dependencies": [{"v": 1}]}`: "dependency 0",
		`{"name": "x", "dependencies": ["a/b"]}`:    "not a module name",
		`{"name": "x", "main": 1}`:                  `"main"`,
	} {
		_, err := ParseMetadata([]byte(in))
		assert.ErrorContains(t, err, want, in)
	}
}

func FuzzParseMetadata(f *testing.F) {
	for _, s := range []string{
		`{"name": "chat_module", "dependencies": [{"name": "d", "version": "1"}, "w"], "capabilities": ["rln"], "signatures": []}`,
		`{"name": "x", "main": {"linux-amd64": "x.so"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMetadata(b)
		if err != nil {
			return
		}
		if !moduleName().MatchString(m.Name) || m.Capabilities == nil || m.Dependencies == nil {
			t.Fatalf("accepted %q as %+v", b, m)
		}
	})
}

func TestBuildRegistry(t *testing.T) {
	t.Parallel()
	snap := &Snapshot{Root: "/ws", Submodules: []Submodule{
		{Path: "repos/counter", URL: "git@github.com:logos-co/counter.git"},
		{Path: "repos/docs", URL: "git@github.com:logos-co/logos-docs.git"},
		{Path: "repos/dup-a", URL: "https://github.com/logos-co/dup"},
		{Path: "repos/dup-b", URL: "git@github.com:logos-co/dup.git"},
		{Path: "repos/liblogos", URL: "git@github.com:logos-co/logos-liblogos.git"},
		{Path: "repos/local", URL: "git@github.com:logos-co/local.git"},
	}}
	lock, err := flake.ParseLock([]byte(`{"nodes": {
  "counter_qml": {"locked": {"type": "github", "owner": "logos-co", "repo": "counter", "rev": "c1"}},
  "dup": {"locked": {"type": "github", "owner": "logos-co", "repo": "dup", "rev": "d1"}},
  "liblogos": {"locked": {"type": "github", "owner": "logos-co", "repo": "logos-liblogos", "rev": "l1"}},
  "liblogos_2": {"locked": {"type": "github", "owner": "logos-co", "repo": "logos-liblogos", "rev": "l0"}},
  "local": {"locked": {"type": "path", "path": "/ws/repos/local", "narHash": "sha256-x"}},
  "nixpkgs": {"locked": {"type": "github", "owner": "NixOS", "repo": "nixpkgs", "rev": "n1"}},
  "user": {"inputs": {"liblogos": "liblogos_2"}, "locked": {"type": "github", "owner": "logos-co", "repo": "user", "rev": "u1"}},
  "root": {"inputs": {"counter": "counter_qml", "dup": "dup", "liblogos": "liblogos", "liblogos-alias": ["liblogos"], "local": "local", "nixpkgs": "nixpkgs", "user": "user"}}
}, "root": "root", "version": 7}`))
	assert.NilError(t, err)
	meta := map[string]string{
		"repos/counter":  `{"name": "counter", "type": "core", "category": "demo"}`,
		"repos/liblogos": `{"name": 1}`,
	}
	reg, err := BuildRegistry(context.Background(), RegistryRequest{
		Snapshot: snap, Lock: lock, Parallelism: 2,
		ReadMetadata: func(_ context.Context, m *Submodule) ([]byte, error) {
			if m.Path == "repos/docs" {
				return nil, errors.New("not checked out")
			}
			if b, ok := meta[m.Path]; ok {
				return []byte(b), nil
			}
			return nil, fmt.Errorf("%s: %w", m.Path, fs.ErrNotExist)
		},
	})
	assert.NilError(t, err)
	// Matched by source, not by name: the input "counter" locks node
	// counter_qml whose repo is logos-co/counter.
	c := reg.Repo("repos/counter")
	assert.DeepEqual(t, c.Pins, []Pin{{Node: "counter_qml", Inputs: []string{"counter"}, Rev: "c1"}})
	assert.Equal(t, c.Module.Name, "counter")
	assert.Equal(t, reg.Repo("repos/docs").MetadataError, "not checked out")
	assert.Assert(t, reg.Repo("repos/docs").Module == nil)
	// Two submodules with one source: reported, matched to nothing.
	assert.DeepEqual(t, reg.Repo("repos/dup-a").Ambiguous, []string{"repos/dup-b"})
	assert.DeepEqual(t, reg.Repo("repos/dup-a").Pins, []Pin{})
	// Every lock node of the repository, root ones with their inputs.
	l := reg.Repo("repos/liblogos")
	assert.DeepEqual(t, l.Pins, []Pin{
		{Node: "liblogos", Inputs: []string{"liblogos", "liblogos-alias"}, Rev: "l1"},
		{Node: "liblogos_2", Inputs: []string{}, Rev: "l0"},
	})
	assert.DeepEqual(t, l.Inputs(), []string{"liblogos", "liblogos-alias"})
	assert.Assert(t, l.Module == nil)
	assert.ErrorContains(t, errors.New(l.MetadataError), `"name" must be a string`)
	// A path: override names the submodule by its path.
	assert.DeepEqual(t, reg.Repo("repos/local").Pins, []Pin{{Node: "local", Inputs: []string{"local"}}})
	assert.DeepEqual(t, reg.UnmatchedInputs, []UnmatchedInput{
		{Input: "dup", Node: "dup", Source: "github.com/logos-co/dup"},
		{Input: "nixpkgs", Node: "nixpkgs", Source: "github.com/nixos/nixpkgs"},
		{Input: "user", Node: "user", Source: "github.com/logos-co/user"},
	})
}

func TestMetadataBounded(t *testing.T) {
	big := []byte(`{"name": "m", "description": "` + strings.Repeat("x", MaxMetadata) + `"}`)
	if _, err := ParseMetadata(big); err == nil || !strings.Contains(err.Error(), "more than the 1048576") {
		t.Fatalf("ParseMetadata of %d bytes: %v", len(big), err)
	}
}
