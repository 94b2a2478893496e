package policy

import (
	"context"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/lambda-os/lambda-check/internal/flake"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// A lock shaped like logos-workspace's today: the root's nixpkgs follows
// the SDK's; one module follows it, one brings its own (an old, unpinned
// nixpkgs), liblogos is locked twice at two revisions, and nixpkgs itself
// is old. The submodules: the SDK, liblogos and two modules.
const realisticLock = `{"nodes": {
  "liblogos": {"inputs": {"nixpkgs": ["nixpkgs"], "sdk": ["sdk"]},
    "locked": {"owner": "logos-co", "repo": "logos-liblogos", "rev": "1111111111111111111111111111111111111111", "type": "github", "lastModified": 1770000000}},
  "liblogos_2": {"inputs": {"nixpkgs": ["nixpkgs"], "sdk": ["sdk"]},
    "locked": {"owner": "logos-co", "repo": "logos-liblogos", "rev": "2222222222222222222222222222222222222222", "type": "github", "lastModified": 1760000000}},
  "chat": {"inputs": {"liblogos": "liblogos_2", "nixpkgs": ["nixpkgs"]},
    "locked": {"owner": "logos-co", "repo": "logos-chat-module", "rev": "3333333333333333333333333333333333333333", "type": "github"}},
  "bundler": {"inputs": {"nixpkgs": "nixpkgs_3"},
    "locked": {"owner": "logos-co", "repo": "nix-bundle-dir", "rev": "4444444444444444444444444444444444444444", "type": "github"}},
  "nixpkgs_2": {"locked": {"owner": "NixOS", "repo": "nixpkgs", "rev": "5555555555555555555555555555555555555555", "type": "github", "lastModified": 1761955200},
    "original": {"owner": "NixOS", "ref": "nixos-unstable", "repo": "nixpkgs", "type": "github"}},
  "nixpkgs_3": {"locked": {"owner": "NixOS", "repo": "nixpkgs", "rev": "6666666666666666666666666666666666666666", "type": "github", "lastModified": 1700000000},
    "original": {"owner": "NixOS", "repo": "nixpkgs", "rev": "6666666666666666666666666666666666666666", "type": "github"}},
  "rust-overlay": {"locked": {"owner": "oxalica", "repo": "rust-overlay", "rev": "7777777777777777777777777777777777777777", "type": "github"}},
  "sdk": {"inputs": {"nixpkgs": "nixpkgs_2"},
    "locked": {"owner": "logos-co", "repo": "logos-cpp-sdk", "rev": "8888888888888888888888888888888888888888", "type": "github"}},
  "root": {"inputs": {"bundler": "bundler", "chat": "chat", "liblogos": "liblogos", "nixpkgs": ["sdk", "nixpkgs"], "rust-overlay": "rust-overlay", "sdk": "sdk"}}
}, "root": "root", "version": 7}`

func realisticInput(t *testing.T, metadata map[string]string, extra ...workspace.Submodule) *Input {
	t.Helper()
	l, err := flake.ParseLock([]byte(realisticLock))
	assert.NilError(t, err)
	snap := &workspace.Snapshot{Root: "/ws", Submodules: []workspace.Submodule{
		{Path: "repos/logos-chat-module", URL: "git@github.com:logos-co/logos-chat-module.git", Gitlink: "3333333333333333333333333333333333333333", State: workspace.StateClean},
		{Path: "repos/logos-cpp-sdk", URL: "git@github.com:logos-co/logos-cpp-sdk.git", Gitlink: "8888888888888888888888888888888888888888", State: workspace.StateClean},
		{Path: "repos/logos-liblogos", URL: "git@github.com:logos-co/logos-liblogos.git", Gitlink: "1111111111111111111111111111111111111111", State: workspace.StateClean},
		{Path: "repos/nix-bundle-dir", URL: "git@github.com:logos-co/nix-bundle-dir.git", Gitlink: "4444444444444444444444444444444444444444", State: workspace.StateClean},
	}}
	snap.Submodules = append(snap.Submodules, extra...)
	reg, err := workspace.BuildRegistry(context.Background(), workspace.RegistryRequest{
		Snapshot: snap, Lock: l,
		ReadMetadata: func(_ context.Context, m *workspace.Submodule) ([]byte, error) {
			if b, ok := metadata[m.Path]; ok {
				return []byte(b), nil
			}
			return nil, errNotExist
		},
	})
	assert.NilError(t, err)
	return &Input{Root: "/ws", Snapshot: snap, Lock: l, Registry: reg, Now: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), Par: 2,
		FlakeNix: flake.Evaluation{Note: "not evaluated in this test"}}
}

func runRules(t *testing.T, in *Input, edit func(*Config)) Report {
	t.Helper()
	cfg := DefaultConfig("/ws")
	if edit != nil {
		edit(cfg)
	}
	res, err := check(context.Background(), in, cfg, workspace.FileDigest{})
	assert.NilError(t, err)
	return res.Report
}

func ruleFindings(rep Report, rule string) []Finding {
	var out []Finding
	for _, f := range rep.Findings {
		if f.Rule == rule {
			out = append(out, f)
		}
	}
	return out
}

func TestFollows(t *testing.T) {
	t.Parallel()
	in := realisticInput(t, nil)
	fs := ruleFindings(runRules(t, in, nil), "follows")
	assert.Equal(t, len(fs), 2, "%+v", fs)
	// Every copy of nixpkgs is one finding that lists who takes it.
	assert.DeepEqual(t, fs[0].Subject, Subject{Kind: KindInput, Name: "nixpkgs"})
	assert.Check(t, is.Contains(fs[0].Message, "2 copies of nixpkgs in flake.lock: the workspace's (node nixpkgs_2"))
	assert.DeepEqual(t, fs[0].Details, []string{`bundler takes node nixpkgs_3 at 666666666666 (fix: bundler.inputs.nixpkgs.follows = "nixpkgs";)`})
	assert.DeepEqual(t, fs[1].Subject, Subject{Kind: KindSubmodule, Name: "repos/logos-liblogos"})
	assert.Check(t, is.Contains(fs[1].Message, "2 times at 2 revisions (nodes liblogos, liblogos_2)"))

	// Declared follows that the lock does not record: a stale lock.
	in.Declared, _ = flake.ParseDeclaredInputs([]byte(`{
  "nixpkgs": {"follows": "sdk/nixpkgs"}, "sdk": {"url": "github:logos-co/logos-cpp-sdk"},
  "liblogos": {"url": "github:logos-co/logos-liblogos"}, "rust-overlay": {"url": "github:oxalica/rust-overlay"},
  "bundler": {"url": "github:logos-co/nix-bundle-dir", "inputs": {"nixpkgs": {"follows": "nixpkgs"}}},
  "chat": {"url": "github:logos-co/logos-chat-module", "inputs": {"liblogos": {"follows": "liblogos"}}}
}`))
	fs = ruleFindings(runRules(t, in, nil), "follows")
	var stale []string
	for _, f := range fs {
		if strings.Contains(f.Hint, "stale") {
			stale = append(stale, f.Subject.Name+": "+f.Message)
		}
	}
	assert.DeepEqual(t, stale, []string{
		"bundler/nixpkgs: flake.nix declares follows nixpkgs, flake.lock records nixpkgs_3",
		"chat/liblogos: flake.nix declares follows liblogos, flake.lock records liblogos_2",
	})

	// Quiet when nothing is shared and each repository is locked once.
	rep := runRules(t, in, func(c *Config) { c.Rules["follows"].Options.(*followsOptions).Shared = []string{"nope"} })
	for _, f := range ruleFindings(rep, "follows") {
		assert.Check(t, !strings.Contains(f.Message, "own"), f.Message)
	}
}

func TestLockAgeAndAllowedRefs(t *testing.T) {
	t.Parallel()
	in := realisticInput(t, nil)
	rep := runRules(t, in, nil)
	// nixpkgs (node nixpkgs_2) was locked 2025-11-01: 391 days before now.
	age := ruleFindings(rep, "lock-age")
	assert.Equal(t, len(age), 1)
	assert.DeepEqual(t, age[0].Subject, Subject{Kind: KindInput, Name: "nixpkgs"})
	assert.Check(t, is.Contains(age[0].Message, "391 days old (limit 30)"))
	assert.Equal(t, rep.Now, in.Now.Unix())
	assert.Equal(t, len(ruleFindings(rep, "allowed-refs")), 0, "nixos-unstable is allowed")

	// Chosen by pattern: the bundler's nixpkgs is a bare revision.
	in.Lock.Nodes[in.Lock.Root].Inputs["nixpkgs-old"] = flake.InputRef{Node: "nixpkgs_3"}
	rep = runRules(t, in, func(c *Config) {
		c.Rules["allowed-refs"].Options.(*allowedRefsOptions).Inputs = []string{"nixpkgs*"}
		c.Rules["lock-age"].Options.(*lockAgeOptions).MaxDays = 400
	})
	refs := ruleFindings(rep, "allowed-refs")
	assert.Equal(t, len(refs), 1)
	assert.Equal(t, refs[0].Subject.Name, "nixpkgs-old")
	assert.Check(t, is.Contains(refs[0].Message, "bare revision"))
	assert.Equal(t, len(ruleFindings(rep, "lock-age")), 0, "400 days allowed; nixpkgs-old is not chosen by lock-age")

	rep = runRules(t, in, func(c *Config) { c.Rules["allowed-refs"].Options.(*allowedRefsOptions).Refs = []string{"nixos-24.11"} })
	refs = ruleFindings(rep, "allowed-refs")
	assert.Equal(t, len(refs), 1)
	assert.Check(t, is.Contains(refs[0].Message, `tracks "nixos-unstable", which is not an allowed branch`))
}

func TestLocalOverrideOwners(t *testing.T) {
	t.Parallel()
	in := realisticInput(t, nil)
	assert.Equal(t, len(ruleFindings(runRules(t, in, nil), "local-override")), 0)
	rep := runRules(t, in, func(c *Config) {
		c.Rules["local-override"].Options.(*localOverrideOptions).AllowedOwners = []string{"logos-co", "NixOS"}
	})
	fs := ruleFindings(rep, "local-override")
	assert.Equal(t, len(fs), 1)
	assert.Equal(t, fs[0].Subject.Name, "rust-overlay")

	in.Declared, _ = flake.ParseDeclaredInputs([]byte(`{"sdk": {"url": "path:/home/dev/logos-cpp-sdk"}, "chat": {"url": "github:logos-co/logos-chat-module", "inputs": {"liblogos": {"url": "git+file:///home/dev/liblogos"}}}}`))
	fs = ruleFindings(runRules(t, in, nil), "local-override")
	var names []string
	for _, f := range fs {
		names = append(names, f.Subject.Name)
	}
	assert.DeepEqual(t, names, []string{"chat/liblogos", "sdk"})
	rep = runRules(t, in, func(c *Config) {
		c.Rules["local-override"].Options.(*localOverrideOptions).AllowedURLs = []string{"file:///home/dev/*", "path:/home/dev/*"}
	})
	assert.Equal(t, len(ruleFindings(rep, "local-override")), 0)
}

func TestRegistryAndRLN(t *testing.T) {
	t.Parallel()
	in := realisticInput(t, map[string]string{
		"repos/logos-chat-module": `{"name": "chat_module", "type": "core", "category": "chat", "capabilities": []}`,
		"repos/logos-liblogos":    `{"name": "liblogos", "name": "again"}`,
	}, workspace.Submodule{Path: "repos/sdk-copy", URL: "https://github.com/logos-co/logos-cpp-sdk", State: workspace.StateClean})
	rep := runRules(t, in, nil)
	var got []string
	for _, f := range ruleFindings(rep, "registry") {
		got = append(got, f.Subject.Name+": "+f.Message)
	}
	assert.DeepEqual(t, got, []string{
		"repos/logos-cpp-sdk: has the same repository (github.com/logos-co/logos-cpp-sdk) as repos/sdk-copy: its flake inputs cannot be told apart",
		"repos/logos-liblogos: metadata.json: canonical json: duplicate member \"name\"",
		"repos/sdk-copy: has the same repository (github.com/logos-co/logos-cpp-sdk) as repos/logos-cpp-sdk: its flake inputs cannot be told apart",
	})
	rln := ruleFindings(rep, "rln")
	assert.Equal(t, len(rln), 1)
	assert.DeepEqual(t, rln[0].Subject, Subject{Kind: KindModule, Name: "chat_module"})

	// Declaring RLN, as a capability or by depending on a marker module.
	in = realisticInput(t, map[string]string{"repos/logos-chat-module": `{"name": "chat_module", "type": "core", "category": "chat", "dependencies": ["rln"]}`})
	assert.Equal(t, len(ruleFindings(runRules(t, in, nil), "rln")), 0)
}

func TestForbiddenPaths(t *testing.T) {
	t.Parallel()
	in := realisticInput(t, nil)
	in.Changes = []Change{{"flake.lock", "modified"}, {".github/workflows/ci.yml", "staged"}, {"repos/x/README.md", "proposal abc"}}
	rep := runRules(t, in, func(c *Config) {
		c.Rules["forbidden-paths"].Options.(*forbiddenPathsOptions).Paths = []string{".github/**", "*.lock"}
	})
	fs := ruleFindings(rep, "forbidden-paths")
	assert.Equal(t, len(fs), 2)
	assert.Equal(t, fs[0].Subject.Name, ".github/workflows/ci.yml")
	assert.Equal(t, fs[1].Subject.Name, "flake.lock")
	assert.Equal(t, len(ruleFindings(runRules(t, in, nil), "forbidden-paths")), 0, "no paths configured")
}

func TestSeverityAndDisable(t *testing.T) {
	t.Parallel()
	in := realisticInput(t, nil)
	rep := runRules(t, in, func(c *Config) {
		c.Rules["follows"].Severity = Deny
		c.Rules["lock-age"].Enabled = false
	})
	assert.Equal(t, rep.Summary.Verdict, "fail")
	assert.Equal(t, len(ruleFindings(rep, "lock-age")), 0)
	assert.Equal(t, rep.Now, int64(0))
	for _, r := range rep.Rules {
		if r.ID == "lock-age" {
			assert.Check(t, !r.Enabled)
		}
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	c, err := ParseConfig([]byte(`{
  "schemaVersion": 1,
  "rules": {
    "lock-drift": {"severity": "warn"},
    "signed-metadata": {"enabled": true, "options": {"registry": "keys.json"}},
    "follows": {"ignore": ["repos/legacy-*"], "options": {"shared": ["nixpkgs", "logos-cpp-sdk"]}}
  }
}`), "test", "/etc/lc")
	assert.NilError(t, err)
	assert.Equal(t, c.Rules["lock-drift"].Severity, Warn)
	assert.Check(t, c.Rules["lock-drift"].Enabled, "defaults kept")
	assert.Equal(t, c.Rules["signed-metadata"].Options.(*signedMetadataOptions).Registry, "keys.json")
	assert.DeepEqual(t, c.Rules["signed-metadata"].Options.(*signedMetadataOptions).Modules, []string{"*"})
	assert.DeepEqual(t, c.Rules["follows"].Options.(*followsOptions).Shared, []string{"nixpkgs", "logos-cpp-sdk"})
	assert.Equal(t, c.Dir, "/etc/lc")

	for in, want := range map[string]string{
		`{}`:                                  `missing "schemaVersion"`,
		`{"schemaVersion": 2}`:                "schemaVersion 2 is not supported",
		`{"schemaVersion": 1, "extra": true}`: `unknown field "extra"`,
		`{"schemaVersion": 1, "rules": {"nope": {}}}`:                                       `unknown rule "nope"`,
		`{"schemaVersion": 1, "rules": {"rln": {"level": "deny"}}}`:                         `rule "rln": json: unknown field "level"`,
		`{"schemaVersion": 1, "rules": {"rln": {"severity": "fatal"}}}`:                     `severity "fatal"`,
		`{"schemaVersion": 1, "rules": {"rln": {"options": {"marker": []}}}}`:               `unknown field "marker"`,
		`{"schemaVersion": 1, "rules": {"rln": {"options": {"markers": []}}}}`:              "markers must name",
		`{"schemaVersion": 1, "rules": {"lock-age": {"options": {"maxDays": 0}}}}`:          "maxDays must be positive",
		`{"schemaVersion": 1, "rules": {"lock-drift": {"options": {"x": 1}}}}`:              `unknown field "x"`,
		`{"schemaVersion": 1, "rules": {"lock-drift": {"ignore": ["["]}}}`:                  "bad pattern",
		`{"schemaVersion": 1, "rules": {"forbidden-paths": {"options": {"paths": ["["]}}}}`: "bad pattern",
		"{\"schemaVersion\": 1,\n \"rules\": 3}":                                            "line 2",
		`{"schemaVersion": 1} {}`:                                                           "trailing data",
	} {
		_, err := ParseConfig([]byte(in), "test", "/")
		assert.ErrorContains(t, err, want, in)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"schemaVersion": 1, "rules": {"lock-drift": {"severity": "warn", "ignore": ["repos/*"]}, "rln": {"options": {"markers": ["rln"]}}}}`))
	f.Add([]byte(`{"schemaVersion": 1, "rules": {"signed-metadata": {"enabled": true, "options": {"registry": "k.json", "modules": ["chat_*"]}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b, "fuzz", "/")
		if err != nil {
			return
		}
		for _, id := range RuleIDs() {
			rc := c.Rules[id]
			if rc == nil || (rc.Severity != Deny && rc.Severity != Warn) || rc.Options == nil {
				t.Fatalf("accepted config leaves rule %s as %+v", id, rc)
			}
		}
	})
}

var errNotExist = fsErrNotExist()
