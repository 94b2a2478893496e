package statedir_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/statedir"
)

type rec struct {
	N int `json:"n"`
}

// A torn last line stays one bad line: the next append starts a new one.
func TestJournalTornLine(t *testing.T) {
	j := statedir.Journal{Path: filepath.Join(t.TempDir(), "j.jsonl")}
	assert.NilError(t, j.Append(rec{1}, rec{2}))
	f, err := os.OpenFile(j.Path, os.O_WRONLY|os.O_APPEND, 0)
	assert.NilError(t, err)
	_, err = f.WriteString(`{"n": 3`)
	assert.NilError(t, err)
	assert.NilError(t, f.Close())
	assert.NilError(t, j.Append(rec{4}))
	got, bad, err := statedir.ReadJournal[rec](j, func(r *rec) bool { return r.N > 0 })
	assert.NilError(t, err)
	assert.Equal(t, bad, 1)
	assert.DeepEqual(t, got, []rec{{1}, {2}, {4}})
}

func TestJournalAbsent(t *testing.T) {
	got, bad, err := statedir.ReadJournal[rec](statedir.Journal{Path: filepath.Join(t.TempDir(), "none")}, nil)
	assert.NilError(t, err)
	assert.Equal(t, bad, 0)
	assert.Equal(t, len(got), 0)
}

// A symbolic link planted where a state file goes is refused, its target
// untouched: the journal, the lock.
func TestSymlinksAreNotFollowed(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "precious")
	assert.NilError(t, os.WriteFile(target, []byte("keep\n"), 0o644))
	link := filepath.Join(dir, "cycles.jsonl")
	assert.NilError(t, os.Symlink(target, link))
	err := statedir.Journal{Path: link}.Append(rec{1})
	assert.ErrorContains(t, err, "is a symbolic link: refusing to write through it")
	sd, err := statedir.Open(dir)
	assert.NilError(t, err)
	assert.NilError(t, os.Symlink(target, sd.File("lock")))
	_, err = sd.Lock(context.Background(), 0)
	assert.ErrorContains(t, err, "is a symbolic link")
	b, err := os.ReadFile(target)
	assert.NilError(t, err)
	assert.Equal(t, string(b), "keep\n")
}
