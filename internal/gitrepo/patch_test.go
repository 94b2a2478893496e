package gitrepo_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/requires"
	"github.com/lambda-os/lambda-check/internal/sample"
)

// A change built in memory, as a patch, is what git itself makes of it:
// "git apply --index" applies it and "git am" commits exactly the same
// tree and (with the same committer) the same commit; and nothing was
// written to the repository.
func TestBuildChangeAndPatch(t *testing.T) {
	t.Parallel()
	requires.Tool(t, "git")
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 3, Ahead: map[string]int{"logos-chat-module": 2}})
	assert.NilError(t, err)
	repo, err := gitrepo.Open(ws.Root)
	assert.NilError(t, err)
	before := listing(t, filepath.Join(ws.Root, ".git"))
	lock, err := os.ReadFile(filepath.Join(ws.Root, "flake.lock"))
	assert.NilError(t, err)
	chat := ws.Repo("logos-chat-module")
	newLock := bytes.Replace(lock, []byte(chat.Pin.String()), []byte(chat.Head.String()), 1)
	author := gitrepo.Signature{Name: "lambda-check", Email: "lambda-check@localhost", When: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	msg := "Upgrade logos-chat-module\n\nMove it and its flake.lock entry together.\n"
	ch, err := repo.BuildChange(ws.Head, []gitrepo.Edit{
		{Path: "flake.lock", Mode: filemode.Regular, Content: newLock},
		{Path: chat.Path, Mode: filemode.Submodule, Hash: chat.Head},
	}, author, msg)
	assert.NilError(t, err)
	p, err := gitrepo.FormatPatch(ch, author, msg, "lambda-check test")
	assert.NilError(t, err)
	assert.Equal(t, listing(t, filepath.Join(ws.Root, ".git")), before, "nothing written to the repository")
	s := string(p)
	assert.Assert(t, strings.Contains(s, "\n-Subproject commit "+chat.Pin.String()+"\n+Subproject commit "+chat.Head.String()+"\n"), s)
	assert.Assert(t, strings.Contains(s, " 2 files changed, 1 insertions(+), 1 deletions(-)\n") || strings.Contains(s, "2 files changed"), s)
	patchFile := filepath.Join(t.TempDir(), "change.patch")
	assert.NilError(t, os.WriteFile(patchFile, p, 0o644))

	env := append(os.Environ(), "GIT_COMMITTER_NAME=lambda-check", "GIT_COMMITTER_EMAIL=lambda-check@localhost",
		"GIT_COMMITTER_DATE=2026-03-02T10:00:00Z")
	run := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		assert.NilError(t, err, string(out))
		return strings.TrimSpace(string(out))
	}
	clone := filepath.Join(t.TempDir(), "clone")
	run(t.TempDir(), "clone", "-q", ws.Root, clone)
	run(clone, "apply", "--index", "--check", patchFile)
	run(clone, "apply", "--index", patchFile)
	assert.Equal(t, run(clone, "write-tree"), ch.Tree.String())
	run(clone, "reset", "-q", "--hard")
	run(clone, "am", "-q", patchFile)
	assert.Equal(t, run(clone, "rev-parse", "HEAD^{tree}"), ch.Tree.String())
	assert.Equal(t, run(clone, "rev-parse", "HEAD"), ch.Commit.String())
	assert.Equal(t, run(clone, "ls-tree", "HEAD", chat.Path), "160000 commit "+chat.Head.String()+"\t"+chat.Path)

	_, err = repo.BuildChange(ws.Head, []gitrepo.Edit{{Path: "nope", Mode: filemode.Regular}}, author, msg)
	assert.ErrorContains(t, err, "nope is not in")
}

func listing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b.WriteString(p + " " + info.ModTime().String() + "\n")
		return nil
	})
	assert.NilError(t, err)
	return b.String()
}
