package gitrepo

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/requires"
)

// Status takes a file's content from the stat cache instead of hashing it
// when the stat data matches exactly: a cache entry that (falsely) records
// another blob makes the file read as modified, so the entry was used; a
// file changed since (other stat data) is hashed, whatever the cache says.
func TestStatCacheIsConsulted(t *testing.T) {
	requires.Tool(t, "git")
	t.Parallel()
	w := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", w}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_NOSYSTEM=1", "HOME="+w)
		out, err := cmd.CombinedOutput()
		assert.NilError(t, err, "%v: %s", args, out)
	}
	run("init", "-q", "-b", "master")
	f := filepath.Join(w, "f")
	assert.NilError(t, os.WriteFile(f, []byte("content\n"), 0o644))
	run("add", "f")
	run("commit", "-q", "-m", "c")
	// Stat data that no longer matches the index: a new inode, same bytes.
	assert.NilError(t, os.Rename(f, f+".old"))
	assert.NilError(t, os.WriteFile(f, []byte("content\n"), 0o644))
	past := time.Now().Add(-time.Hour)
	assert.NilError(t, os.Chtimes(f, past, past))
	r, err := Open(w)
	assert.NilError(t, err)
	var st syscall.Stat_t
	assert.NilError(t, syscall.Lstat(f, &st))
	key := r.GitDir + "\x00f"
	lying := &StatCache{written: time.Now().Unix(), old: map[string]statEntry{key: entryOf(&st, plumbing.NewHash("0123456789012345678901234567890123456789"))}, used: map[string]statEntry{}}
	s, err := r.Status(t.Context(), StatusOptions{StatCache: lying})
	assert.NilError(t, err)
	assert.DeepEqual(t, s.Unstaged, []FileChange{{Path: "f", Change: Modified}})
	// Without an entry the file is hashed: clean.
	s, err = r.Status(t.Context(), StatusOptions{StatCache: &StatCache{old: map[string]statEntry{}, used: map[string]statEntry{}}})
	assert.NilError(t, err)
	assert.Equal(t, len(s.Unstaged), 0)
	// Other stat data (the file was touched): the entry does not count.
	assert.NilError(t, os.Chtimes(f, past.Add(time.Second), past.Add(time.Second)))
	s, err = r.Status(t.Context(), StatusOptions{StatCache: lying})
	assert.NilError(t, err)
	assert.Equal(t, len(s.Unstaged), 0)
}
