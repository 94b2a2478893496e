package nixcli_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/nixcli"
	"github.com/lambda-os/lambda-check/internal/requires"
	"github.com/lambda-os/lambda-check/internal/sample"
)

// repoRoot is this repository's root (for nixlib).
func repoRoot(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	assert.Assert(t, ok)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// TestNixlibTests runs nixlib's { expr; expected; } tests under the Nix
// here (2.8 on the project machine).
func TestNixlibTests(t *testing.T) {
	t.Parallel()
	requires.Tool(t, "nix-instantiate")
	out, err := exec.Command("nix-instantiate", "--eval", "--strict", "--json", filepath.Join(repoRoot(t), "nixlib", "tests.nix")).CombinedOutput()
	assert.NilError(t, err, string(out))
	assert.Equal(t, strings.TrimSpace(string(out)), "[]", "failing nixlib tests")
}

// TestWorkspaceFlakeCheck: a generated workspace whose flake uses
// mkWorkspaceChecks passes 'nix flake check' when clean and fails with
// the finding when a submodule's gitlink and its flake.lock pin drift.
func TestWorkspaceFlakeCheck(t *testing.T) {
	t.Parallel()
	requires.Tool(t, "git")
	requires.Tool(t, "nix")
	env := append(requires.NixEnv(),
		// The generated remotes are local files, which git refuses for
		// submodules unless told.
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=protocol.file.allow", "GIT_CONFIG_VALUE_0=always",
		"GIT_AUTHOR_NAME=Dev", "GIT_AUTHOR_EMAIL=dev@logos.invalid", "GIT_COMMITTER_NAME=Dev", "GIT_COMMITTER_EMAIL=dev@logos.invalid")
	n, err := nixcli.Find(env)
	assert.NilError(t, err)
	nixlib := filepath.Join(repoRoot(t), "nixlib")

	for _, tc := range []struct {
		name   string
		drift  []string
		tamper bool
	}{{"clean", nil, false}, {"drift", []string{"logos-liblogos"}, false}, {"tampered-audit", nil, true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ws, err := sample.Generate(ctx, t.TempDir(), sample.Options{Modules: 3, Drift: tc.drift})
			assert.NilError(t, err)
			flakeNix := filepath.Join(ws.Root, "flake.nix")
			b, err := os.ReadFile(flakeNix)
			assert.NilError(t, err)
			s := strings.Replace(string(b), "  inputs = {\n",
				"  inputs = {\n    lambda-check = { url = \"path:"+nixlib+"\"; flake = false; };\n", 1)
			s = strings.Replace(s, "      packages.${system} = {",
				"      checks.${system} = (import inputs.lambda-check { }).mkWorkspaceChecks {\n"+
					"        src = self; inherit inputs system;\n"+
					"        # The generated remotes are local bare repositories.\n"+
					"        allowLocal = true;\n"+
					"        auditLog = ./audit.jsonl;\n"+
					"      };\n      packages.${system} = {", 1)
			assert.NilError(t, os.WriteFile(flakeNix, []byte(s), 0o644))
			// A committed audit log, as lambda-check writes it.
			for _, stage := range []string{"snapshot", "policy", "cycle"} {
				_, err := audit.Append(filepath.Join(ws.Root, "audit.jsonl"), audit.Event{Time: "2026-11-27T12:00:00Z", Stage: stage, Actor: "ops@node", Result: audit.ResultOK})
				assert.NilError(t, err)
			}
			if tc.tamper {
				p := filepath.Join(ws.Root, "audit.jsonl")
				b, err := os.ReadFile(p)
				assert.NilError(t, err)
				assert.NilError(t, os.WriteFile(p, []byte(strings.Replace(string(b), `"stage":"policy"`, `"stage":"polish"`, 1)), 0o644))
			}
			_, err = n.Run(ctx, ws.Root, "flake", "lock")
			assert.NilError(t, err)
			git := exec.Command("git", "-C", ws.Root, "add", "flake.nix", "flake.lock", "audit.jsonl")
			git.Env = env
			out, err := git.CombinedOutput()
			assert.NilError(t, err, string(out))
			git = exec.Command("git", "-C", ws.Root, "commit", "-qm", "Check the workspace with lambda-check")
			git.Env = env
			out, err = git.CombinedOutput()
			assert.NilError(t, err, string(out))

			out, err = n.Run(ctx, ws.Root, "flake", "check", "git+file://"+ws.Root+"?submodules=1")
			switch {
			case tc.tamper:
				assert.ErrorContains(t, err, "deny  audit-chain  audit log line 2: its digest is not the digest of its content: the line was edited")
				return
			case tc.drift == nil:
				assert.NilError(t, err)
			default:
				assert.ErrorContains(t, err, "lambda-check: policy: fail (1 deny, 0 warn)")
				assert.ErrorContains(t, err, "deny  lock-drift  submodule repos/logos-liblogos: the gitlink of repos/logos-liblogos is not the revision flake.lock pins for input logos-liblogos")
			}
			// Without the submodules the drift cannot be seen: warnings, a pass.
			_, err = n.Run(ctx, ws.Root, "flake", "check", "git+file://"+ws.Root)
			assert.NilError(t, err)
		})
	}
}

// TestMkConfig: mkConfig writes the configuration and has the binary check
// it at build time; a misspelt key fails the build naming the key.
func TestMkConfig(t *testing.T) {
	t.Parallel()
	requires.Tool(t, "nix")
	bin := filepath.Join(t.TempDir(), "lambda-check")
	build := exec.Command("go", "build", "-o", bin, "./cmd/lambda-check")
	build.Dir = repoRoot(t)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	assert.NilError(t, err, string(out))
	n, err := nixcli.Find(requires.NixEnv())
	assert.NilError(t, err)
	expr := func(settings string) string {
		return `(import ` + filepath.Join(repoRoot(t), "nixlib") + ` { }).mkConfig { settings = ` + settings +
			`; lambda-check = /. + "` + bin + `"; system = builtins.currentSystem; }`
	}
	ctx := context.Background()
	out, err = n.Run(ctx, t.TempDir(), "build", "--impure", "--no-link", "--json", "--expr",
		expr(`{ verify.deadline = "10s"; notify.channels = [ { name = "ops"; type = "webhook"; url = "https://hooks.example/x"; } ]; }`))
	assert.NilError(t, err)
	var built []struct {
		Outputs struct{ Out string } `json:"outputs"`
	}
	assert.NilError(t, json.Unmarshal(out, &built))
	assert.Equal(t, len(built), 1)
	b, err := os.ReadFile(built[0].Outputs.Out)
	assert.NilError(t, err)
	assert.Equal(t, string(b), `{"notify":{"channels":[{"name":"ops","type":"webhook","url":"https://hooks.example/x"}]},"schemaVersion":1,"verify":{"deadline":"10s"}}`+"\n")

	_, err = n.Run(ctx, t.TempDir(), "build", "--impure", "--no-link", "--expr", expr(`{ verify.deadlin = "10s"; }`))
	assert.ErrorContains(t, err, `unknown key "verify.deadlin"; did you mean "deadline"?`)
	_, err = n.Run(ctx, t.TempDir(), "build", "--impure", "--no-link", "--expr", expr(`{ notify.channels = [ { name = "x"; type = "pager"; } ]; }`))
	assert.ErrorContains(t, err, `type "pager" is not telegram, webhook or desktop`)
}

// TestVendorHashIsCurrent recomputes package.nix's vendorHash as
// buildGoModule does (the NAR hash of what 'go mod vendor' writes) and
// fails when go.mod or go.sum moved without it.
func TestVendorHashIsCurrent(t *testing.T) {
	t.Parallel()
	requires.Tool(t, "nix")
	root := repoRoot(t)
	dir := filepath.Join(t.TempDir(), "vendor")
	vendor := exec.Command("go", "mod", "vendor", "-o", dir)
	vendor.Dir = root
	// Nothing is downloaded: go mod vendor needs the modules of every
	// platform (go-winio for Windows), which a Linux 'go test' never
	// fetches; scripts/test puts them in the cache with 'go mod download'.
	vendor.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off")
	out, err := vendor.CombinedOutput()
	if err != nil && strings.Contains(string(out), "GOPROXY=off") {
		msg := "the module cache lacks modules that go mod vendor needs; run 'go mod download' (scripts/test does): " + strings.TrimSpace(string(out))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("skipped: " + msg)
	}
	assert.NilError(t, err, string(out))
	n, err := nixcli.Find(requires.NixEnv())
	assert.NilError(t, err)
	out, err = n.Run(context.Background(), root, "hash", "path", dir)
	assert.NilError(t, err)
	pkg, err := os.ReadFile(filepath.Join(root, "package.nix"))
	assert.NilError(t, err)
	want := `vendorHash = "` + strings.TrimSpace(string(out)) + `";`
	assert.Assert(t, strings.Contains(string(pkg), want), "package.nix's vendorHash is stale: want %s; run scripts/update-vendor-hash", want)
}
