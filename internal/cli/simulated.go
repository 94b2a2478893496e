package cli

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/lambda-os/lambda-check/internal/demo"
	"github.com/lambda-os/lambda-check/internal/logos/standin"
)

// The demo's simulated runtime. When no real Logos host is at hand, the
// demo still shows verify and heal working, against a stand-in that
// speaks the March host's documented protocol (token socket, ready line)
// and tiny ELF "plugins" that carry Qt metadata but no code. It is named
// "simulated" wherever it appears; it is never used outside the demo.

// SimulatedHostCmd is the hidden "lambda-check simulated-host".
type SimulatedHostCmd struct {
	Args []string `arg:"" optional:"" passthrough:"" help:"The host's arguments."`
}

// Run becomes the stand-in host; it does not return.
func (c *SimulatedHostCmd) Run(rt *Runtime) error {
	args := c.Args
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	os.Args = append([]string{"logos_host"}, args...)
	// A host dies on SIGTERM: undo main's graceful handling.
	signal.Reset(os.Interrupt, syscall.SIGTERM)
	standin.HostMain("march")
	return nil
}

// SimulatedBuildCmd is the hidden "lambda-check simulated-build": it
// "builds" the demo's modules from the workspace's current pins.
type SimulatedBuildCmd struct {
	Plan string `required:"" placeholder:"FILE" help:"The demo's build plan (simulated-build.json)."`
}

// Run writes each module's plugin for its current pin.
func (c *SimulatedBuildCmd) Run(rt *Runtime) error {
	return demo.SimulatedBuild(rt.Ctx, rt.Abs(c.Plan), rt.WorkspaceDir(), rt.StateDirPath(), rt.Env.Stdout)
}
