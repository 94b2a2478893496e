// Package nixcli is the only place lambda-check runs nix. It runs the nix
// command with an explicit environment, in its own process group, and
// returns stdout, with stderr in the error.
package nixcli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/proc"
)

// Nix runs one nix binary.
type Nix struct {
	// Bin is the nix executable.
	Bin string
	// Env is the complete environment nix runs with.
	Env []string
	// Timeout bounds one nix run (0: DefaultTimeout): an evaluation that
	// hangs (an import from a slow mount, an infinite recursion Nix does
	// not catch) fails the stage with a clear error instead of holding
	// the state lock for ever.
	Timeout time.Duration
}

// DefaultTimeout bounds a nix run when Nix.Timeout is 0.
const DefaultTimeout = 2 * time.Minute

// Find locates nix on PATH.
func Find(env []string) (*Nix, error) {
	p, err := exec.LookPath("nix")
	if err != nil {
		return nil, fmt.Errorf("nix is not installed: %w", err)
	}
	return &Nix{Bin: p, Env: env}, nil
}

// Run runs "nix args..." in dir and returns its stdout.
func (n *Nix) Run(ctx context.Context, dir string, args ...string) ([]byte, error) {
	return n.run(ctx, n.Bin, dir, args)
}

func (n *Nix) run(ctx context.Context, bin, dir string, args []string) ([]byte, error) {
	timeout := n.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := proc.Command(tctx, proc.Options{WaitDelay: 5 * time.Second}, bin, args...)
	cmd.Dir = dir
	cmd.Env = n.Env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(tctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			return stdout.Bytes(), fmt.Errorf("nix %s: no answer within %s (killed)", strings.Join(args, " "), timeout)
		}
		return stdout.Bytes(), fmt.Errorf("nix %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// FlakeInputs evaluates the inputs attribute of a flake.nix and returns it
// as JSON. It fetches nothing and writes nothing to the store: the inputs
// of a flake are plain data, so evaluating them is safe and exact where a
// text match over flake.nix is not.
func (n *Nix) FlakeInputs(ctx context.Context, flakeNix string) ([]byte, error) {
	bin := filepath.Join(filepath.Dir(n.Bin), "nix-instantiate")
	return n.run(ctx, bin, filepath.Dir(flakeNix), []string{
		"--eval", "--strict", "--json", "--readonly-mode",
		"--argstr", "file", flakeNix,
		"-E", "{ file }: (import (/. + file)).inputs or { }",
	})
}
