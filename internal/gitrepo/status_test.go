package gitrepo_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/requires"
	"github.com/lambda-os/lambda-check/internal/sample"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	assert.NilError(t, err, "git %v: %s", args, stderr.String())
	return string(out)
}

// gitStatus returns git's own view, as "<change> <path>" lines, sorted:
// staged changes as "S:<kind>", unstaged as "W:<kind>", untracked as "U".
func gitStatus(t *testing.T, dir string) []string {
	t.Helper()
	out := git(t, dir, "status", "--porcelain=v2", "-z", "--untracked-files=all", "--ignore-submodules=all", "--no-renames")
	var lines []string
	kind := map[byte]string{'A': "added", 'M': "modified", 'D': "deleted", 'T': "typechange"}
	for _, rec := range strings.Split(out, "\x00") {
		if rec == "" {
			continue
		}
		switch rec[0] {
		case '1':
			f := strings.SplitN(rec, " ", 9)
			xy, path := f[1], f[8]
			if xy[0] != '.' {
				lines = append(lines, "S:"+kind[xy[0]]+" "+path)
			}
			if xy[1] != '.' {
				lines = append(lines, "W:"+kind[xy[1]]+" "+path)
			}
		case 'u':
			f := strings.SplitN(rec, " ", 11)
			lines = append(lines, "S:unmerged "+f[10])
		case '?':
			lines = append(lines, "U "+rec[2:])
		}
	}
	sort.Strings(lines)
	return lines
}

func ourStatus(t *testing.T, dir string) []string {
	t.Helper()
	r, err := gitrepo.Open(dir)
	assert.NilError(t, err)
	st, err := r.Status(context.Background(), gitrepo.StatusOptions{})
	assert.NilError(t, err)
	var lines []string
	for _, c := range st.Staged {
		if c.Change == gitrepo.Modified || c.Change == gitrepo.Added || c.Change == gitrepo.Deleted || c.Change == gitrepo.TypeChange || c.Change == gitrepo.Unmerged {
			lines = append(lines, "S:"+c.Change+" "+c.Path)
		}
	}
	for _, c := range st.Unstaged {
		lines = append(lines, "W:"+c.Change+" "+c.Path)
	}
	for _, u := range st.Untracked {
		if u.Type == gitrepo.UntrackedRepository {
			continue // git -uall descends into nothing there either; checked separately
		}
		lines = append(lines, "U "+u.Path)
	}
	sort.Strings(lines)
	return lines
}

// TestStatusMatchesGit changes a generated module checkout in every way a
// work tree can change, then compares the in-process status with git's.
func TestStatusMatchesGit(t *testing.T) {
	requires.Tool(t, "git")
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 2})
	assert.NilError(t, err)
	sub := filepath.Join(ws.Root, "repos", "logos-capability-module")

	assert.DeepEqual(t, ourStatus(t, sub), gitStatus(t, sub))
	assert.DeepEqual(t, ourStatus(t, sub), []string(nil))

	write := func(rel, data string, mode os.FileMode) {
		p := filepath.Join(sub, rel)
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.WriteFile(p, []byte(data), mode))
	}
	// Same size, new content: only a content check can tell.
	b, err := os.ReadFile(filepath.Join(sub, "LICENSE"))
	assert.NilError(t, err)
	write("LICENSE", strings.Replace(string(b), "MIT", "BSD", 1), 0o644)
	write("README.md", "changed size\n", 0o644)
	assert.NilError(t, os.Remove(filepath.Join(sub, "VERSION")))
	assert.NilError(t, os.Chmod(filepath.Join(sub, "scripts/build.sh"), 0o644))
	assert.NilError(t, os.Remove(filepath.Join(sub, "docs/README.md")))
	write("docs/README.md", "now a file\n", 0o644) // symlink -> file
	// Untracked files with names of every kind, ignored files, an ignored dir.
	write("new file.txt", "a", 0o644)
	write("ünïcode/ñame.md", "b", 0o644)
	write("line\nbreak", "c", 0o644)
	write("tab\tand \"quote\"", "d", 0o644)
	write("build/output.o", "ignored", 0o644)
	write("x.o", "ignored", 0o644)
	assert.NilError(t, os.Symlink("nowhere", filepath.Join(sub, "dangling")))
	// A staged change through git itself, and a staged-then-modified file.
	write("CMakeLists.txt", "staged\n", 0o644)
	git(t, sub, "add", "CMakeLists.txt")
	write("metadata.json", "{}\n", 0o644)
	git(t, sub, "add", "metadata.json")
	write("metadata.json", "{\"x\":1}\n", 0o644)
	write("added.txt", "added\n", 0o644)
	git(t, sub, "add", "added.txt")
	git(t, sub, "rm", "-q", "--cached", "LICENSE")

	got, want := ourStatus(t, sub), gitStatus(t, sub)
	assert.Assert(t, len(want) > 10, "the test must change many things: %v", want)
	t.Logf("git and in-process status agree on %d changes: %q", len(want), want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("status differs from git's (-git +ours):\n%s", diff)
	}
}

// TestStatusSuperproject checks the superproject's own status: gitlinks are
// not files, a staged gitlink is a staged change, and excluded paths vanish.
func TestStatusSuperproject(t *testing.T) {
	requires.Tool(t, "git")
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 2})
	assert.NilError(t, err)
	assert.DeepEqual(t, gitStatus(t, ws.Root), []string(nil))
	assert.DeepEqual(t, ourStatus(t, ws.Root), []string(nil))

	state := filepath.Join(ws.Root, ".lambda-check")
	assert.NilError(t, os.MkdirAll(state, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(state, "snapshot.json"), []byte("{}"), 0o644))
	r, err := gitrepo.Open(ws.Root)
	assert.NilError(t, err)
	st, err := r.Status(context.Background(), gitrepo.StatusOptions{Exclude: []string{state}})
	assert.NilError(t, err)
	assert.Assert(t, st.Clean(), "%+v", st)
	assert.Equal(t, len(st.Gitlinks), len(ws.Repos))

	// Move a submodule's checkout and stage the new gitlink.
	sub := filepath.Join(ws.Root, "repos", "logos-liblogos")
	git(t, sub, "checkout", "-q", ws.Repo("logos-liblogos").History[0].String())
	git(t, ws.Root, "add", "repos/logos-liblogos")
	st, err = r.Status(context.Background(), gitrepo.StatusOptions{Exclude: []string{state}})
	assert.NilError(t, err)
	assert.DeepEqual(t, st.Staged, []gitrepo.FileChange{{Path: "repos/logos-liblogos", Change: gitrepo.Modified}})
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := gitrepo.Open(dir)
	assert.ErrorIs(t, err, gitrepo.ErrNotRepository)

	assert.NilError(t, os.WriteFile(filepath.Join(dir, ".git"), []byte("nonsense\n"), 0o644))
	_, err = gitrepo.Open(dir)
	assert.ErrorIs(t, err, gitrepo.ErrNotRepository)
}

func TestCorruptIndexFailsClosed(t *testing.T) {
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 1})
	assert.NilError(t, err)
	idx := filepath.Join(ws.Root, ".git", "index")
	b, err := os.ReadFile(idx)
	assert.NilError(t, err)
	b[len(b)/2] ^= 0xff
	assert.NilError(t, os.WriteFile(idx, b, 0o644))
	r, err := gitrepo.Open(ws.Root)
	assert.NilError(t, err)
	_, err = r.Status(context.Background(), gitrepo.StatusOptions{})
	assert.ErrorIs(t, err, gitrepo.ErrCorrupt)
}

// TestUnreadableFailsClosed: a directory the status cannot read is an error,
// never a silently shorter list.
func TestUnreadableFailsClosed(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("skipped: running as root, which reads any file; the check needs an unprivileged user")
	}
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 1})
	assert.NilError(t, err)
	dir := filepath.Join(ws.Root, "private")
	assert.NilError(t, os.MkdirAll(dir, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644))
	assert.NilError(t, os.Chmod(dir, 0))
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	r, err := gitrepo.Open(ws.Root)
	assert.NilError(t, err)
	_, err = r.Status(context.Background(), gitrepo.StatusOptions{})
	assert.ErrorContains(t, err, "permission denied")
}

// TestIndexVersions: indexes as git writes them in version 3 (extended
// flags, from "git add -N") and 4 (prefix-compressed paths) decode to the same
// status as git's. Version 2 is what every other test reads.
func TestIndexVersions(t *testing.T) {
	requires.Tool(t, "git")
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 1})
	assert.NilError(t, err)
	sub := filepath.Join(ws.Root, "repos", "logos-liblogos")
	assert.NilError(t, os.WriteFile(filepath.Join(sub, "intent.txt"), []byte("later"), 0o644))
	git(t, sub, "add", "-N", "intent.txt")
	assert.NilError(t, os.WriteFile(filepath.Join(sub, "README.md"), []byte("changed\n"), 0o644))
	for _, v := range []string{"3", "4"} {
		git(t, sub, "update-index", "--index-version", v)
		r, err := gitrepo.Open(sub)
		assert.NilError(t, err)
		idx, err := r.ReadIndex()
		assert.NilError(t, err)
		assert.Equal(t, idx.Version, mustAtoi(t, v))
		got, want := ourStatus(t, sub), gitStatus(t, sub)
		assert.DeepEqual(t, got, want)
		assert.Assert(t, len(want) == 2, "%v", want)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	assert.NilError(t, err)
	return n
}
