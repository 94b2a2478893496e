package proc_test

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/proc"
	"github.com/lambda-os/lambda-check/internal/requires"
)

func TestMain(m *testing.M) {
	if proc.IsSupervisor() {
		proc.SuperviseMain()
	}
	os.Exit(m.Run())
}

// A program's daemon in its own session, ignoring SIGTERM and keeping
// the output, is seen while it runs and gone with the tree; the program's
// own exit status is exact.
func TestTreeContainsADaemon(t *testing.T) {
	t.Run("namespace", func(t *testing.T) { containsADaemon(t, proc.TreeOptions{}) })
	t.Run("bwrap", func(t *testing.T) {
		bw := requires.Tool(t, "bwrap")
		containsADaemon(t, proc.TreeOptions{Bwrap: bw, BwrapArgs: []string{"--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"}})
	})
}

func containsADaemon(t *testing.T, o proc.TreeOptions) {
	r, w, err := os.Pipe()
	assert.NilError(t, err)
	defer r.Close()
	o.Env, o.Stdout, o.Stderr = []string{"PATH=/usr/bin:/bin"}, w, w
	tr, err := proc.StartTree(o,
		"/bin/sh", "-c", `setsid sh -c 'trap "" TERM HUP; exec sleep 300' & sleep 0.3; kill -SEGV $$`)
	w.Close()
	assert.NilError(t, err)
	select {
	case <-tr.Exited():
	case <-time.After(20 * time.Second):
		t.Fatal("no exit reported")
	}
	ws, err := tr.Status()
	assert.NilError(t, err)
	assert.Assert(t, ws.Signaled() && ws.Signal() == syscall.SIGSEGV, "status %v", ws)
	others := tr.Others()
	assert.Equal(t, len(others), 1, "%v", others)
	assert.Equal(t, others[0].Comm, "sleep")
	assert.NilError(t, tr.Kill())
	assert.Assert(t, !alive(others[0].Pid), "the daemon outlived its tree")
	// The output's end comes once the tree is gone.
	done := make(chan struct{})
	go func() {
		var b [512]byte
		for {
			if _, err := r.Read(b[:]); err != nil {
				close(done)
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the output stayed open")
	}
}

// Term reaches the program; its exit code is its own.
func TestTreeTermAndExit(t *testing.T) {
	tr, err := proc.StartTree(proc.TreeOptions{Env: []string{"PATH=/usr/bin:/bin"}}, "/bin/sh", "-c", `trap 'exit 7' TERM; while :; do sleep 0.05; done`)
	assert.NilError(t, err)
	time.Sleep(200 * time.Millisecond)
	tr.Term()
	select {
	case <-tr.Exited():
	case <-time.After(20 * time.Second):
		t.Fatal("no exit reported")
	}
	ws, err := tr.Status()
	assert.NilError(t, err)
	assert.Equal(t, ws.ExitStatus(), 7)
	assert.NilError(t, tr.Kill())
}

func TestTreeStartFails(t *testing.T) {
	_, err := proc.StartTree(proc.TreeOptions{}, "/nonexistent/program")
	assert.Assert(t, err != nil && strings.Contains(err.Error(), "no such file"), "%v", err)
}
