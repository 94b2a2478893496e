// Package proc is the one place child processes are set up: nix, the Logos
// host and logoscore, program deciders, build commands. Each child runs in
// a process group (its own, or one it is told to join), dies with
// lambda-check (Pdeathsig), has its whole group killed when its context
// ends, and is waited for a bounded time after that, so a grandchild
// holding its output cannot hang the caller.
package proc

import (
	"context"
	"os/exec"
	"syscall"
	"time"
)

// Options shape a child process.
type Options struct {
	// Pgid is the process group to join; 0 makes the child the leader of
	// a new one.
	Pgid int
	// WaitDelay bounds the wait for the child's output once it exited or
	// was killed (default 2s).
	WaitDelay time.Duration
}

// Command prepares name with args as a contained child: when ctx ends its
// process group is killed.
func Command(ctx context.Context, o Options, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return KillGroup(Group(cmd, o)) }
	return contain(cmd, o)
}

// Detached prepares a contained child whose end the caller decides: it
// kills the group with KillGroup (a deadline of its own, a protocol).
func Detached(o Options, name string, args ...string) *exec.Cmd {
	return contain(exec.Command(name, args...), o)
}

func contain(cmd *exec.Cmd, o Options) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: o.Pgid, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = o.WaitDelay
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = 2 * time.Second
	}
	return cmd
}

// Group is the process group a started child runs in.
func Group(cmd *exec.Cmd, o Options) int {
	if o.Pgid != 0 {
		return o.Pgid
	}
	if cmd.Process == nil {
		return 0
	}
	return cmd.Process.Pid
}

// KillGroup kills every process of the group pgid; a group already gone
// is not an error.
func KillGroup(pgid int) error {
	if pgid <= 1 {
		return nil
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return err
	}
	return nil
}
