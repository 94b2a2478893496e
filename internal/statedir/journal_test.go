package statedir_test

import (
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
