package policy

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/requires"
	"github.com/lambda-os/lambda-check/internal/sample"
)

// The drift hint recommends the move that is not a downgrade: whichever
// pin contains the other is kept.
func TestDriftHintKnowsTheDirection(t *testing.T) {
	requires.Tool(t, "git")
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.DemoOptions())
	assert.NilError(t, err)
	path := "repos/logos-wallet-module"
	out, err := exec.Command("git", "-C", filepath.Join(ws.Root, path), "rev-parse", "HEAD", "HEAD~1").Output()
	assert.NilError(t, err)
	revs := strings.Fields(string(out))
	newer, older := revs[0], revs[1]
	ref := "git+file:///r?rev=" + newer

	h := driftHint(ws.Root, path, "wallet", newer, older, ref)
	assert.Assert(t, strings.HasPrefix(h, "the gitlink is newer (1 commit ahead of the lock): move the lock to it: nix flake lock --override-input wallet"), h)
	h = driftHint(ws.Root, path, "wallet", older, newer, ref)
	assert.Assert(t, strings.HasPrefix(h, "the lock is newer (1 commit ahead of the gitlink): move the gitlink to it: git -C "+path+" checkout "+newer), h)
	h = driftHint(ws.Root, path, "wallet", older, strings.Repeat("1", 40), ref)
	assert.Assert(t, strings.Contains(h, "which one is newer is unknown"), h)
	assert.Assert(t, strings.Contains(h, "; or the lock to the gitlink: "), h)
}
