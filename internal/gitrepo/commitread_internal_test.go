package gitrepo

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/requires"
)

// The small object reader returns every object of a repository packed
// with deltas (git gc --aggressive) byte for byte as git cat-file does.
func TestObjectReaderAsGit(t *testing.T) {
	requires.Tool(t, "git")
	t.Parallel()
	w := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", w}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_NOSYSTEM=1", "HOME="+w)
		out, err := cmd.CombinedOutput()
		assert.NilError(t, err, "%v: %s", args, out)
		return string(out)
	}
	run("init", "-q", "-b", "master")
	text := strings.Repeat("a line of a file that changes a little each time\n", 200)
	for i := range 40 {
		text += "line " + strconv.Itoa(i) + "\n"
		assert.NilError(t, os.WriteFile(filepath.Join(w, "f.txt"), []byte(text), 0o644))
		assert.NilError(t, os.WriteFile(filepath.Join(w, "g.txt"), []byte(strings.Repeat("g", i*100)), 0o644))
		run("add", "-A")
		run("commit", "-q", "-m", "commit "+strconv.Itoa(i)+"\n\nbody")
	}
	run("gc", "-q", "--aggressive")
	r, err := Open(w)
	assert.NilError(t, err)
	o := r.objects()
	assert.Assert(t, len(o.packIndexes()) > 0)
	types := map[string]int{"commit": objCommit, "tree": objTree, "blob": objBlob}
	deltas := 0
	for _, l := range strings.Split(strings.TrimSpace(run("cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype) %(deltabase)")), "\n") {
		f := strings.Fields(l)
		h := plumbing.NewHash(f[0])
		if f[2] != strings.Repeat("0", 40) {
			deltas++
		}
		typ, data, ok := o.read(h)
		assert.Assert(t, ok, "read %s", f[0])
		assert.Equal(t, typ, types[f[1]], f[0])
		want := run("cat-file", f[1], f[0])
		assert.Assert(t, bytes.Equal(data, []byte(want)), "%s %s differs", f[1], f[0])
	}
	assert.Assert(t, deltas > 10, "the pack has deltas to resolve (%d)", deltas)
}
