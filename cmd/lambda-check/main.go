// Command lambda-check is the control plane for a Logos node's workspace.
// main only wires the process (signals, stdio, environment) and the exit code;
// everything else is in internal/cli.
package main

import (
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"

	"golang.org/x/term"

	"github.com/lambda-os/lambda-check/internal/cli"
	"github.com/lambda-os/lambda-check/internal/proc"
)

func main() {
	if proc.IsSupervisor() { // a verify load's supervisor (internal/proc)
		proc.SuperviseMain()
	}
	tuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	dir, err := os.Getwd()
	if err != nil {
		dir = "."
	}
	code := cli.Main(ctx, os.Args[1:], cli.Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Dir: dir, Getenv: os.Getenv, Environ: os.Environ, Self: self(),
		IsTerminal: term.IsTerminal(int(os.Stderr.Fd())),
	})
	stop()
	os.Exit(code)
}

// self is how to run this program again: its path as started, else the
// executable's.
func self() string {
	if p, err := exec.LookPath(os.Args[0]); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	p, _ := os.Executable()
	return p
}

// tuneGC lets a command's heap grow to five times its live size before the
// collector runs (GOGC=400) under a soft limit of 256 MiB: most commands
// finish in tens of milliseconds, and the default first collection at 4 MiB
// was a sixth of a snapshot of the real workspace. GOGC or GOMEMLIMIT in
// the environment win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(256 << 20)
	}
}
