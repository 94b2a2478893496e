package proc_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/proc"
)

// A cancelled child's whole group is killed: a grandchild that keeps the
// output open neither survives nor makes Wait hang.
func TestCancelKillsTheGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pidFile := t.TempDir() + "/pid"
	cmd := proc.Command(ctx, proc.Options{WaitDelay: time.Second}, "/bin/sh", "-c", "sleep 300 & echo $! > "+pidFile+"; wait")
	var out strings.Builder
	cmd.Stdout = &out
	assert.NilError(t, cmd.Start())
	var grandchild int
	for i := 0; i < 200 && grandchild == 0; i++ {
		if b, err := os.ReadFile(pidFile); err == nil && len(b) > 1 {
			grandchild, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		time.Sleep(10 * time.Millisecond)
	}
	assert.Assert(t, grandchild > 0)
	g1, _ := syscall.Getpgid(cmd.Process.Pid)
	g2, _ := syscall.Getpgid(grandchild)
	assert.Equal(t, g1, g2)
	assert.Equal(t, g1, cmd.Process.Pid)
	cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		assert.ErrorContains(t, err, "killed")
	case <-time.After(30 * time.Second):
		t.Fatal("Wait did not return after the cancel")
	}
	gone := false
	for i := 0; i < 200 && !gone; i++ {
		gone = !alive(grandchild)
		time.Sleep(10 * time.Millisecond)
	}
	assert.Assert(t, gone, "grandchild %d outlived the cancel", grandchild)
}

func TestKillGroupGone(t *testing.T) {
	assert.NilError(t, proc.KillGroup(0))
	assert.NilError(t, proc.KillGroup(1<<22-1))
}

// alive says whether pid runs (a zombie waiting for its reaper does not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
