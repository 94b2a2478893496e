package statedir_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/statedir"
)

func TestLockExcludesASecondWriter(t *testing.T) {
	t.Parallel()
	d, err := statedir.Open(filepath.Join(t.TempDir(), "state"))
	assert.NilError(t, err)
	b, err := os.ReadFile(d.File(".gitignore"))
	assert.NilError(t, err)
	assert.Assert(t, len(b) > 0)

	l1, err := d.Lock(context.Background(), time.Second)
	assert.NilError(t, err)
	_, err = d.Lock(context.Background(), 50*time.Millisecond)
	assert.ErrorIs(t, err, statedir.ErrLocked)
	assert.ErrorContains(t, err, "pid ")
	assert.NilError(t, l1.Unlock())
	l2, err := d.Lock(context.Background(), time.Second)
	assert.NilError(t, err)
	assert.NilError(t, l2.Unlock())
}

// TestLockDiesWithItsHolder: a holder killed with SIGKILL leaves no stale
// lock, because the kernel drops flock(2) locks with the process.
func TestLockDiesWithItsHolder(t *testing.T) {
	t.Parallel()
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skipf("skipped: flock(1) is not installed: %v", err)
	}
	d, err := statedir.Open(filepath.Join(t.TempDir(), "state"))
	assert.NilError(t, err)
	cmd := exec.Command(flock, "-x", d.File("lock"), "sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	assert.NilError(t, cmd.Start())
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := d.Lock(context.Background(), 0)
		if err != nil {
			break // the child holds it now
		}
		assert.NilError(t, l.Unlock())
		assert.Assert(t, time.Now().Before(deadline), "child never took the lock")
		time.Sleep(10 * time.Millisecond)
	}
	// SIGKILL the whole group: flock(1) and the sleep that inherited the lock.
	assert.NilError(t, syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL))
	_ = cmd.Wait()
	l, err := d.Lock(context.Background(), 2*time.Second)
	assert.NilError(t, err)
	assert.NilError(t, l.Unlock())
}
