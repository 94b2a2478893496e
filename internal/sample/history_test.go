package sample_test

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/requires"
	"github.com/lambda-os/lambda-check/internal/sample"
)

// Commits gives every repository a packed history that git reads.
func TestPackedHistory(t *testing.T) {
	requires.Tool(t, "git")
	t.Parallel()
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 2, Commits: 300})
	assert.NilError(t, err)
	r := ws.Repos[0]
	out, err := exec.Command("git", "--git-dir", r.Remote, "rev-list", "--count", r.Pin.String()).CombinedOutput()
	assert.NilError(t, err, string(out))
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	assert.NilError(t, err)
	assert.Equal(t, n, 302)
	out, err = exec.Command("git", "--git-dir", r.Remote, "count-objects", "-v").CombinedOutput()
	assert.NilError(t, err, string(out))
	assert.Assert(t, strings.Contains(string(out), "packs: 1"), string(out))
	out, err = exec.Command("git", "--git-dir", r.Remote, "fsck", "--no-dangling").CombinedOutput()
	assert.NilError(t, err, string(out))
}
