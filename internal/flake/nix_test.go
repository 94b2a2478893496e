package flake_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/flake"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/nixcli"
	"github.com/lambda-os/lambda-check/internal/requires"
	"github.com/lambda-os/lambda-check/internal/sample"
)

func needNix(t *testing.T) *nixcli.Nix {
	t.Helper()
	requires.Tool(t, "nix")
	n, err := nixcli.Find(requires.NixEnv())
	assert.NilError(t, err)
	return n
}

// TestGeneratedLockIsNixsOwn: the flake.lock the generator writes through
// this package is byte for byte what "nix flake lock" writes from scratch.
func TestGeneratedLockIsNixsOwn(t *testing.T) {
	t.Parallel()
	n := needNix(t)
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 5})
	assert.NilError(t, err)
	ours, err := os.ReadFile(filepath.Join(ws.Root, "flake.lock"))
	assert.NilError(t, err)
	assert.NilError(t, os.Remove(filepath.Join(ws.Root, "flake.lock")))
	_, err = n.Run(context.Background(), ws.Root, "flake", "lock")
	assert.NilError(t, err)
	theirs, err := os.ReadFile(filepath.Join(ws.Root, "flake.lock"))
	assert.NilError(t, err)
	assert.Equal(t, string(ours), string(theirs))

	// And the lock is usable: a module builds, at the pinned revision.
	out, err := n.Run(context.Background(), ws.Root, "build", "--no-link", "--json", ".#logos-waku-module")
	assert.NilError(t, err)
	var built []struct {
		Outputs map[string]string `json:"outputs"`
	}
	assert.NilError(t, json.Unmarshal(out, &built))
	content, err := os.ReadFile(built[0].Outputs["out"])
	assert.NilError(t, err)
	assert.Assert(t, strings.HasPrefix(string(content), "logos-waku-module "+ws.Repo("logos-waku-module").Pin.String()+"\n"), "%s", content)
}

// TestStableHashes: fixed authors, dates and content give the same module
// pins wherever and whenever the workspace is generated.
func TestStableHashes(t *testing.T) {
	t.Parallel()
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 3})
	assert.NilError(t, err)
	pins := map[string]string{}
	for _, r := range ws.Repos {
		pins[r.Name] = r.Pin.String()
	}
	ws2, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 3})
	assert.NilError(t, err)
	for _, r := range ws2.Repos {
		assert.Equal(t, r.Pin.String(), pins[r.Name], r.Name)
	}
	assert.Equal(t, pins["logos-cpp-sdk"], stableSDKPin)
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t",
		"GIT_AUTHOR_DATE=2026-03-01T10:00:00Z", "GIT_COMMITTER_DATE=2026-03-02T11:00:00Z")
	out, err := cmd.CombinedOutput()
	assert.NilError(t, err, "%s %v: %s", name, args, out)
	return string(out)
}

// TestNarHashMatchesNix builds a repository with everything that changes a
// NAR (executables, symlinks, nested and non-ASCII names, a submodule,
// export-ignore in several forms) with the real git, locks it with the real
// nix, and compares every locked attribute.
func TestNarHashMatchesNix(t *testing.T) {
	t.Parallel()
	n := needNix(t)
	requires.Tool(t, "git")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	assert.NilError(t, os.MkdirAll(src, 0o755))
	run(t, src, "git", "init", "-q", "-b", "master")
	files := map[string]string{
		"README.md":               "hello\n",
		"bin/tool":                "#!/bin/sh\necho tool\n",
		"ünïcode/fïlé name.txt":   "x",
		"a/b/c/d/deep.txt":        "deep",
		"a-b.txt":                 "sorts between a and a/ in git, not in NAR",
		"a.b":                     "and this one",
		"empty":                   "",
		"docs/.gitattributes":     "internal/ export-ignore\n*.draft export-ignore\n",
		"docs/internal/secret.md": "dropped",
		"docs/guide.md":           "kept",
		"docs/notes.draft":        "dropped",
		".gitattributes":          "/ci/** export-ignore\nkeep.me -export-ignore\n**/gen/* export-ignore\n",
		"ci/pipeline.yml":         "dropped, but ci/ stays as an empty directory",
		"x/gen/out.c":             "dropped",
		"x/gen/sub/out.c":         "kept: * does not cross /",
		"keep.me":                 "kept",
		"flake.nix":               "{ outputs = { self }: { }; }\n",
	}
	for p, data := range files {
		full := filepath.Join(src, p)
		assert.NilError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		assert.NilError(t, os.WriteFile(full, []byte(data), 0o644))
	}
	assert.NilError(t, os.Chmod(filepath.Join(src, "bin/tool"), 0o755))
	assert.NilError(t, os.Symlink("README.md", filepath.Join(src, "link")))
	assert.NilError(t, os.Symlink("../nowhere", filepath.Join(src, "bin/dangling")))
	run(t, src, "git", "add", "-A")
	run(t, src, "git", "commit", "-q", "-m", "one")
	// A submodule: a gitlink, which an archive shows as an empty directory.
	run(t, src, "git", "update-index", "--add", "--cacheinfo", "160000,0123456789abcdef0123456789abcdef01234567,vendor/lib")
	run(t, src, "git", "commit", "-q", "-m", "two")
	rev := run(t, src, "git", "rev-parse", "HEAD")[:40]

	ws := filepath.Join(dir, "ws")
	assert.NilError(t, os.MkdirAll(ws, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(ws, "flake.nix"),
		[]byte(`{ inputs.src.url = "git+file://`+src+`"; inputs.src.flake = false; outputs = { self, src }: { }; }`+"\n"), 0o644))
	run(t, ws, "git", "init", "-q")
	run(t, ws, "git", "add", "flake.nix")
	_, err := n.Run(context.Background(), ws, "flake", "lock")
	assert.NilError(t, err)
	b, err := os.ReadFile(filepath.Join(ws, "flake.lock"))
	assert.NilError(t, err)
	var nixLock struct {
		Nodes map[string]struct {
			Locked map[string]any `json:"locked"`
		} `json:"nodes"`
	}
	assert.NilError(t, json.Unmarshal(b, &nixLock))
	want := nixLock.Nodes["src"].Locked

	repo, err := gitrepo.Open(src)
	assert.NilError(t, err)
	got, err := flake.LockGit(repo, plumbing.NewHash(rev), "file://"+src, "master")
	assert.NilError(t, err)
	assert.Equal(t, got.String("narHash"), want["narHash"])
	assert.Equal(t, got.String("rev"), want["rev"])
	assert.Equal(t, got.String("ref"), want["ref"])
	lm, _ := got.Int("lastModified")
	assert.Equal(t, float64(lm), want["lastModified"])
	rc, _ := got.Int("revCount")
	assert.Equal(t, float64(rc), want["revCount"])
}

// stableSDKPin is the generated SDK repository's pin; it changes only when
// the generator's content changes.
const stableSDKPin = "b66cbd37990f4a49e8ba0f4df50d36806e0213d6"
