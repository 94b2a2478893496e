package snapshot_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/requires"
	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "protocol.file.allow=always"}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	out, err := cmd.CombinedOutput()
	assert.NilError(t, err, "git %v: %s", args, out)
}

func TestCleanWorkspace(t *testing.T) {
	t.Parallel()
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 3})
	assert.NilError(t, err)
	res, err := snapshot.Run(context.Background(), snapshot.Request{Workspace: ws.Root, Parallelism: 4})
	assert.NilError(t, err)
	s := res.Snapshot
	assert.Equal(t, s.Superproject.Head, ws.Head.String())
	assert.Equal(t, s.Superproject.Branch, "master")
	assert.Equal(t, s.Summary, workspace.Summary{Submodules: 5, Clean: 5})
	for i, r := range ws.Repos {
		m := s.Submodule(r.Path)
		assert.Assert(t, m != nil, r.Path)
		assert.Equal(t, m.Gitlink, r.Pin.String())
		assert.Equal(t, m.Head, r.Pin.String())
		assert.Equal(t, m.URL, r.Remote)
		assert.Equal(t, m.Name, r.Path)
		assert.Assert(t, m.Declared)
		if i == 0 {
			assert.Equal(t, m.Branch, "main") // the SDK tracks main
		}
	}
	assert.Assert(t, s.FlakeLock.Digest != "" && s.FlakeNix.Digest != "")
}

// TestNestedSubmoduleAddedByGit: a submodule added with the real git CLI
// inside a module (its git dir under the module's own modules/) is found,
// recorded with its parent, and makes the parent dirty until committed.
func TestNestedSubmoduleAddedByGit(t *testing.T) {
	t.Parallel()
	requires.Tool(t, "git")
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 1})
	assert.NilError(t, err)
	parent := filepath.Join(ws.Root, "repos", "logos-liblogos")
	git(t, parent, "submodule", "add", "-q", ws.Repo("logos-cpp-sdk").Remote, "vendor/sdk")

	res, err := snapshot.Run(context.Background(), snapshot.Request{Workspace: ws.Root, Parallelism: 2})
	assert.NilError(t, err)
	p := res.Snapshot.Submodule("repos/logos-liblogos")
	assert.Equal(t, p.State, workspace.StateDirty)
	assert.DeepEqual(t, p.Staged, []workspace.FileChange{{Path: ".gitmodules", Change: "added"}, {Path: "vendor/sdk", Change: "added"}})
	n := res.Snapshot.Submodule("repos/logos-liblogos/vendor/sdk")
	assert.Assert(t, n != nil)
	assert.Equal(t, n.Parent, "repos/logos-liblogos")
	assert.Equal(t, n.State, workspace.StateClean)
	assert.Equal(t, n.Head, ws.Repo("logos-cpp-sdk").Head.String())
	assert.Equal(t, n.Gitlink, n.Head)
	assert.Equal(t, res.Snapshot.Summary.Submodules, 4)
}

func TestBadWorkspace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, p := range []string{filepath.Join(dir, "absent"), dir} {
		_, err := snapshot.Run(context.Background(), snapshot.Request{Workspace: p, Parallelism: 1})
		assert.Equal(t, exitcode.Of(err), exitcode.BadInput, "%s: %v", p, err)
	}
}

func TestCancelled(t *testing.T) {
	t.Parallel()
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 2})
	assert.NilError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = snapshot.Run(ctx, snapshot.Request{Workspace: ws.Root, Parallelism: 1})
	assert.Equal(t, exitcode.Of(err), exitcode.Cancelled, "%v", err)
}

// A submodule path that is a symbolic link, or reached through one, is not
// read: git calls it a typechange, and its target is not the submodule.
func TestSubmoduleSymlinksNotFollowed(t *testing.T) {
	t.Parallel()
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 3})
	assert.NilError(t, err)
	outside := t.TempDir()
	sub := ws.Repos[1].Path
	abs := filepath.Join(ws.Root, filepath.FromSlash(sub))
	assert.NilError(t, os.Rename(abs, filepath.Join(outside, "moved")))
	assert.NilError(t, os.Symlink(filepath.Join(outside, "moved"), abs))
	res, err := snapshot.Run(context.Background(), snapshot.Request{Workspace: ws.Root, Parallelism: 4})
	assert.NilError(t, err)
	m := res.Snapshot.Submodule(sub)
	assert.Equal(t, m.State, workspace.StateMissing)
	assert.Assert(t, strings.Contains(m.Reason, "is a symbolic link"), m.Reason)

	// The directory above the submodules is a link to elsewhere.
	ws2, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 3})
	assert.NilError(t, err)
	repos := filepath.Join(ws2.Root, "repos")
	assert.NilError(t, os.Rename(repos, filepath.Join(outside, "repos")))
	assert.NilError(t, os.Symlink(filepath.Join(outside, "repos"), repos))
	res, err = snapshot.Run(context.Background(), snapshot.Request{Workspace: ws2.Root, Parallelism: 4})
	assert.NilError(t, err)
	for _, m := range res.Snapshot.Submodules {
		if strings.HasPrefix(m.Path, "repos/") && m.Parent == "" {
			assert.Equal(t, m.State, workspace.StateMissing, m.Path)
			assert.Assert(t, strings.Contains(m.Reason, "leads through a symbolic link"), m.Reason)
		}
	}
}

// File names that are not valid UTF-8 are recorded quoted, so two of them
// never collide as U+FFFD.
func TestInvalidUTF8NamesDistinct(t *testing.T) {
	t.Parallel()
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 1})
	assert.NilError(t, err)
	for _, n := range []string{"a\xff", "a\xfe", `"quoted"`} {
		assert.NilError(t, os.WriteFile(filepath.Join(ws.Root, n), []byte("x"), 0o644))
	}
	res, err := snapshot.Run(context.Background(), snapshot.Request{Workspace: ws.Root, Parallelism: 2})
	assert.NilError(t, err)
	var got []string
	for _, u := range res.Snapshot.Superproject.Changes.Untracked {
		got = append(got, u.Path)
	}
	assert.DeepEqual(t, got, []string{`"\"quoted\""`, `"a\xfe"`, `"a\xff"`})
}
