package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/nixcli"
	"github.com/lambda-os/lambda-check/internal/requires"
	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func signingKey(t *testing.T) *sign.PrivateKey {
	t.Helper()
	k, err := sign.GenerateKey("logos-release", bytes.NewReader(bytes.Repeat([]byte{42}, 32)))
	assert.NilError(t, err)
	return k
}

func takeSnapshot(t *testing.T, root string) *workspace.Snapshot {
	t.Helper()
	res, err := snapshot.Run(context.Background(), snapshot.Request{Workspace: root, Parallelism: 4})
	assert.NilError(t, err)
	return &res.Snapshot
}

// runPolicy checks a workspace with its own policy.json, evaluating
// flake.nix when nix is given.
func runPolicy(t *testing.T, root string, nix *nixcli.Nix, edit func(*Config)) Report {
	t.Helper()
	cfg, err := LoadConfig(filepath.Join(root, "policy.json"), false)
	assert.NilError(t, err)
	if edit != nil {
		edit(cfg)
	}
	req := Request{Snapshot: takeSnapshot(t, root), Config: cfg, NixNote: "nix not used by this test", Now: now}
	if nix != nil {
		req.Nix = nix
	}
	res, err := Run(context.Background(), req)
	assert.NilError(t, err)
	// Reading metadata from the checkout (fresh snapshot, clean submodule)
	// and from git's objects must give the same report; so must a run that
	// takes lock-integrity's results from the first.
	req.Fresh, req.Integrity = true, res.Integrity
	again, err := Run(context.Background(), req)
	assert.NilError(t, err)
	a, err := artifact.Encode(res.Report)
	assert.NilError(t, err)
	b, err := artifact.Encode(again.Report)
	assert.NilError(t, err)
	assert.Equal(t, string(b), string(a))
	assert.Equal(t, again.IntegrityReused, len(res.Integrity.Entries))
	return res.Report
}

type found struct{ Rule, Kind, Name string }

func findingsOf(r Report) []found {
	out := []found{}
	for _, f := range r.Findings {
		out = append(out, found{f.Rule, f.Subject.Kind, f.Subject.Name})
	}
	return out
}

func uniq(fs []found) []found {
	sort.Slice(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		return a.Rule+"\x00"+a.Kind+"\x00"+a.Name < b.Rule+"\x00"+b.Kind+"\x00"+b.Name
	})
	out := fs[:0]
	for i, f := range fs {
		if i == 0 || f != fs[i-1] {
			out = append(out, f)
		}
	}
	return out
}

func nixOrSkip(t *testing.T) *nixcli.Nix {
	t.Helper()
	requires.Tool(t, "nix")
	requires.Tool(t, "nix-instantiate")
	n, err := nixcli.Find(requires.NixEnv())
	assert.NilError(t, err)
	return n
}

// A workspace as it should be: every rule runs (signed-metadata too) and
// none finds anything, with and without flake.nix evaluated.
func TestCleanWorkspace(t *testing.T) {
	t.Parallel()
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 8, SigningKey: signingKey(t)})
	assert.NilError(t, err)
	rep := runPolicy(t, ws.Root, nil, nil)
	assert.DeepEqual(t, findingsOf(rep), []found{})
	assert.Equal(t, rep.Summary.Verdict, "pass")
	for _, r := range rep.Rules {
		assert.Check(t, r.Enabled, r.ID)
	}
	assert.Equal(t, rep.Now, int64(0), "no rule looked at the clock")
	assert.Check(t, !rep.FlakeNix.Evaluated)

	nix := nixOrSkip(t)
	rep = runPolicy(t, ws.Root, nix, nil)
	assert.Check(t, rep.FlakeNix.Evaluated, rep.FlakeNix.Note)
	assert.DeepEqual(t, findingsOf(rep), []found{})
}

// A workspace with known faults: policy reports exactly those.
func TestKnownFaults(t *testing.T) {
	t.Parallel()
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{
		Modules:      10,
		Drift:        []string{"logos-wallet-module"},
		Override:     []string{"logos-storage-module"},
		Fork:         map[string]string{"logos-waku-module": "mallory"},
		SigningKey:   signingKey(t),
		BadSignature: []string{"logos-chat-module"},
	})
	assert.NilError(t, err)
	// A dirty checkout, and flake.lock edited by hand: the SDK's narHash.
	assert.NilError(t, os.WriteFile(filepath.Join(ws.Root, "repos/logos-accounts-module/notes.txt"), []byte("wip\n"), 0o644))
	lockPath := filepath.Join(ws.Root, "flake.lock")
	lock, err := os.ReadFile(lockPath)
	assert.NilError(t, err)
	i := bytes.Index(lock, []byte(`"logos-cpp-sdk": {`))
	j := i + bytes.Index(lock[i:], []byte(`"narHash": "sha256-`)) + len(`"narHash": "sha256-`)
	lock[j] ^= 1
	assert.NilError(t, os.WriteFile(lockPath, lock, 0o644))

	edit := func(c *Config) {
		c.Rules["forbidden-paths"].Options.(*forbiddenPathsOptions).Paths = []string{"flake.lock"}
	}
	want := []found{
		{"checkout-drift", KindSubmodule, "repos/logos-accounts-module"},
		{"forbidden-paths", KindPath, "flake.lock"},
		{"local-override", KindInput, "logos-storage-module"},
		{"local-override", KindInput, "logos-waku-module"},
		{"lock-drift", KindSubmodule, "repos/logos-wallet-module"},
		{"lock-integrity", KindInput, "logos-cpp-sdk"},
		{"rln", KindModule, "irc_module"},
		{"signed-metadata", KindModule, "chatsdk_module"},
	}
	rep := runPolicy(t, ws.Root, nil, edit)
	assert.DeepEqual(t, findingsOf(rep), want)
	assert.Equal(t, rep.Summary.Verdict, "fail")
	assert.Equal(t, rep.Summary.Warn, 1)
	assert.Equal(t, rep.Summary.Deny, 7)

	byRule := map[string]Finding{}
	for _, f := range rep.Findings {
		byRule[f.Rule+" "+f.Subject.Name] = f
	}
	drift := byRule["lock-drift repos/logos-wallet-module"]
	wallet := ws.Repo("logos-wallet-module")
	assert.Check(t, is.Contains(drift.Message, "gitlink is "+wallet.Pin.String()[:12]))
	assert.Check(t, is.Contains(drift.Message, "at "+wallet.LockRev.String()[:12]))
	assert.Check(t, is.Contains(drift.Hint, "nix flake lock --override-input logos-wallet-module 'git+file://"))
	assert.Check(t, is.Contains(byRule["local-override logos-waku-module"].Message, "github:mallory/logos-waku-module"))
	assert.Check(t, is.Contains(byRule["signed-metadata chatsdk_module"].Message, "invalid"))
	assert.Check(t, is.Contains(byRule["lock-integrity logos-cpp-sdk"].Message, "narHash"))

	// With flake.nix evaluated, the declared local URL is found as well.
	nix := nixOrSkip(t)
	rep = runPolicy(t, ws.Root, nix, edit)
	assert.Check(t, rep.FlakeNix.Evaluated, rep.FlakeNix.Note)
	assert.DeepEqual(t, uniq(findingsOf(rep)), want)
	n := 0
	for _, f := range rep.Findings {
		if f.Rule == "local-override" && f.Subject.Name == "logos-storage-module" {
			n++
		}
	}
	assert.Equal(t, n, 2, "lock and flake.nix both name the local path")
}

// The snapshot and the flake.lock read must be the same file.
func TestLockChangedSinceSnapshot(t *testing.T) {
	t.Parallel()
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 1})
	assert.NilError(t, err)
	snap := takeSnapshot(t, ws.Root)
	f, err := os.OpenFile(filepath.Join(ws.Root, "flake.lock"), os.O_APPEND|os.O_WRONLY, 0)
	assert.NilError(t, err)
	_, _ = f.WriteString(" ")
	assert.NilError(t, f.Close())
	_, err = Run(context.Background(), Request{Snapshot: snap, Config: DefaultConfig(ws.Root), Now: now})
	assert.ErrorIs(t, err, ErrLockChanged)
}

// Without a registry, an enabled signed-metadata rule fails closed.
func TestSignedMetadataFailsClosed(t *testing.T) {
	t.Parallel()
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 2})
	assert.NilError(t, err)
	enable := func(reg string) func(*Config) {
		return func(c *Config) {
			c.Rules["signed-metadata"].Enabled = true
			c.Rules["signed-metadata"].Options.(*signedMetadataOptions).Registry = reg
		}
	}
	rep := runPolicy(t, ws.Root, nil, enable(""))
	assert.DeepEqual(t, findingsOf(rep), []found{{"signed-metadata", KindConfig, "signed-metadata"}})
	assert.Equal(t, rep.Summary.Verdict, "fail")

	rep = runPolicy(t, ws.Root, nil, enable("missing.json"))
	assert.DeepEqual(t, findingsOf(rep), []found{{"signed-metadata", KindConfig, "signed-metadata"}})
	assert.Check(t, is.Contains(rep.Findings[0].Message, "missing.json"))

	// A registry that trusts another key: every (unsigned) module fails.
	other, err := sign.GenerateKey("other", bytes.NewReader(bytes.Repeat([]byte{1}, 32)))
	assert.NilError(t, err)
	reg := `{"schemaVersion": 1, "keys": [{"id": "other", "algorithm": "ed25519", "publicKey": "` + sign.RegistryKey(other, sign.Scope{}).PublicKey + `", "roles": ["metadata"], "modules": ["*"]}]}`
	assert.NilError(t, os.WriteFile(filepath.Join(ws.Root, "keys.json"), []byte(reg), 0o644))
	rep = runPolicy(t, ws.Root, nil, enable("keys.json"))
	assert.DeepEqual(t, findingsOf(rep), []found{
		{"signed-metadata", KindModule, "capability_module"},
		{"signed-metadata", KindModule, "waku_module"},
	})
	assert.Check(t, is.Contains(rep.Findings[0].Message, "unsigned"))
}

// The same workspace gives the same report, run after run.
func TestDeterministic(t *testing.T) {
	t.Parallel()
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.DemoOptions())
	assert.NilError(t, err)
	first := runPolicy(t, ws.Root, nil, nil)
	a, err := artifact.Encode(first)
	assert.NilError(t, err)
	for range 3 {
		b, err := artifact.Encode(runPolicy(t, ws.Root, nil, nil))
		assert.NilError(t, err)
		assert.Equal(t, string(b), string(a))
	}
	assert.DeepEqual(t, findingsOf(first), []found{
		{"lock-drift", KindSubmodule, "repos/logos-wallet-module"},
		{"rln", KindModule, "irc_module"},
	})
}

// Checkout states each produce their finding; ignore silences a subject.
func TestCheckoutDrift(t *testing.T) {
	t.Parallel()
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 4})
	assert.NilError(t, err)
	git := func(dir string, args ...string) {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
		assert.NilError(t, err, string(out))
	}
	// checkout-differs: the submodule at the first commit.
	cap := ws.Repo("logos-capability-module")
	git(filepath.Join(ws.Root, cap.Path), "checkout", "-q", cap.History[0].String())
	// uninitialized: the directory emptied.
	waku := filepath.Join(ws.Root, ws.Repo("logos-waku-module").Path)
	assert.NilError(t, os.RemoveAll(waku))
	assert.NilError(t, os.Mkdir(waku, 0o755))
	// missing.
	assert.NilError(t, os.RemoveAll(filepath.Join(ws.Root, ws.Repo("logos-chat-module").Path)))

	rep := runPolicy(t, ws.Root, nil, nil)
	var got []string
	for _, f := range rep.Findings {
		if f.Rule == "checkout-drift" {
			got = append(got, f.Subject.Name+": "+strings.SplitN(f.Message, ":", 2)[0])
		}
	}
	assert.DeepEqual(t, got, []string{
		"repos/logos-capability-module: checked out at " + cap.History[0].String()[:12] + ", but the gitlink is " + cap.Pin.String()[:12],
		"repos/logos-chat-module: missing",
		"repos/logos-waku-module: not initialised",
	})
	rep = runPolicy(t, ws.Root, nil, func(c *Config) { c.Rules["checkout-drift"].Ignore = []string{"repos/*"} })
	for _, f := range rep.Findings {
		assert.Check(t, f.Rule != "checkout-drift", f)
	}
}

// Nothing to check is never a pass.
func TestNothingToCheck(t *testing.T) {
	t.Parallel()
	res, err := Run(context.Background(), Request{Snapshot: &workspace.Snapshot{Root: t.TempDir()}, Now: now})
	assert.NilError(t, err)
	assert.Equal(t, res.Report.Summary.Verdict, "unknown")
	assert.Check(t, is.Contains(res.Report.Summary.Reason, "no submodules and no flake.lock"))
}

// A 2,000-node dependency chain in flake.lock (each input needing the
// next, and each following the one before's input through a follows path)
// is checked like any lock, and a cancelled run stops with the context's
// error instead of finishing its rules.
func TestLongChainAndCancel(t *testing.T) {
	t.Parallel()
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 4})
	assert.NilError(t, err)
	path := filepath.Join(ws.Root, "flake.lock")
	b, err := os.ReadFile(path)
	assert.NilError(t, err)
	var lock map[string]any
	assert.NilError(t, json.Unmarshal(b, &lock))
	nodes := lock["nodes"].(map[string]any)
	root := nodes[lock["root"].(string)].(map[string]any)["inputs"].(map[string]any)
	const n = 2000
	for i := range n {
		inputs := map[string]any{}
		if i+1 < n {
			inputs["next"] = fmt.Sprintf("chain%d", i+1)
		}
		if i > 1 {
			inputs["dep"] = []any{fmt.Sprintf("chain%d", i-1), "dep"}
		} else if i == 1 {
			inputs["dep"] = []any{"chain0"}
		}
		nodes[fmt.Sprintf("chain%d", i)] = map[string]any{"inputs": inputs,
			"locked":   map[string]any{"type": "github", "owner": "x", "repo": fmt.Sprintf("chain%d", i), "rev": strings.Repeat("0", 40), "narHash": "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
			"original": map[string]any{"type": "github", "owner": "x", "repo": fmt.Sprintf("chain%d", i)}}
	}
	root["chain0"] = "chain0"
	b, err = json.Marshal(lock)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(path, b, 0o644))
	cfg, err := LoadConfig(filepath.Join(ws.Root, "policy.json"), false)
	assert.NilError(t, err)
	req := Request{Snapshot: takeSnapshot(t, ws.Root), Config: cfg, NixNote: "nix not used by this test", Now: now}
	_, err = Run(context.Background(), req)
	assert.NilError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Run(ctx, req)
	assert.ErrorIs(t, err, context.Canceled)
}
