package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/logos/standin"
	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
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

// buildPlan says which module is built from which submodule, the pin each
// was generated at, and which module's build crashes when its pin moves.
type buildPlan struct {
	Modules string        `json:"modules"`
	Entries []buildModule `json:"entries"`
}

type buildModule struct {
	Name      string `json:"name"`
	Submodule string `json:"submodule"`
	Good      string `json:"good"`
	// CrashWhenMoved: the build from any other pin crashes on load.
	CrashWhenMoved bool `json:"crashWhenMoved"`
}

// Run writes each module's plugin for its current pin.
func (c *SimulatedBuildCmd) Run(rt *Runtime) error {
	b, err := os.ReadFile(rt.Abs(c.Plan))
	if err != nil {
		return exitcode.Input(err, "")
	}
	var p buildPlan
	if err := json.Unmarshal(b, &p); err != nil {
		return exitcode.Input(fmt.Errorf("%s: %w", c.Plan, err), "")
	}
	res, err := snapshot.Run(rt.Ctx, snapshot.Request{Workspace: rt.WorkspaceDir(), Exclude: []string{rt.StateDirPath()}})
	if err != nil {
		return err
	}
	pins := map[string]string{}
	for _, s := range res.Snapshot.Submodules {
		pins[s.Path] = s.Gitlink
	}
	for _, m := range p.Entries {
		mode := ""
		if m.CrashWhenMoved && pins[m.Submodule] != m.Good {
			mode = "segv"
		}
		if err := writeSimulatedModule(p.Modules, m.Name, mode); err != nil {
			return err
		}
		rt.Printf("built %s from %s @ %s %s(simulated)\n", m.Name, m.Submodule, short(pins[m.Submodule]), strings.TrimPrefix(paren(mode)+" ", " "))
	}
	return nil
}

func writeSimulatedModule(dir, name, mode string) error {
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	so := name + "_plugin.so"
	manifest := fmt.Sprintf(`{"name": %q, "version": "0.1.0", "main": {"linux-amd64": %q, "linux-x86_64": %q, "linux-arm64": %q, "linux-aarch64": %q}}`, name, so, so, so, so)
	if err := artifact.WriteFile(filepath.Join(d, "manifest.json"), []byte(manifest+"\n"), 0o644); err != nil {
		return err
	}
	return standin.WritePlugin(filepath.Join(d, so), standin.Plugin{Name: name, QtMajor: 6, QtMinor: 4, Main: name + "_plugin",
		IID: "org.logos.ModuleInterface", Mode: mode})
}

// simulatedRuntime sets up the simulated host and the modules built from
// the workspace's current pins; it returns the host wrapper, the modules
// directory, the build plan's path and the build command.
func simulatedRuntime(rt *Runtime, dir string, ws *sample.Workspace) (host, mods, planPath string, build []string, err error) {
	if rt.Env.Self == "" {
		return "", "", "", nil, fmt.Errorf("the simulated runtime needs the path of lambda-check itself")
	}
	rdir := filepath.Join(dir, "simulated-runtime")
	mods = filepath.Join(rdir, "modules")
	if err := os.MkdirAll(mods, 0o755); err != nil {
		return "", "", "", nil, err
	}
	// A copy of this program, so the simulated runtime outlives a
	// 'go run' binary and the demo directory stands on its own.
	self := filepath.Join(rdir, "lambda-check")
	if err := copyExecutable(rt.Env.Self, self); err != nil {
		return "", "", "", nil, fmt.Errorf("copy lambda-check for the simulated runtime: %w", err)
	}
	host = filepath.Join(rdir, "logos_host")
	script := fmt.Sprintf("#!/bin/sh\n# SIMULATED Logos host for 'lambda-check demo': it speaks the March host's\n# protocol but loads nothing. Not a runtime.\nexec %q simulated-host -- \"$@\"\n", self)
	if err := artifact.WriteFile(host, []byte(script), 0o755); err != nil {
		return "", "", "", nil, err
	}
	planPath = filepath.Join(rdir, "simulated-build.json")
	if err := writeBuildPlan(rt, planPath, mods, ws, ""); err != nil {
		return "", "", "", nil, err
	}
	build = []string{self, "simulated-build", "-w", ws.Root, "--plan", planPath}
	return host, mods, planPath, build, nil
}

// writeBuildPlan records the workspace's current pins as the good ones;
// the module of submodule crash (if any) crashes when built from another.
// It builds every module from those pins.
func writeBuildPlan(rt *Runtime, planPath, mods string, ws *sample.Workspace, crash string) error {
	res, err := snapshot.Run(rt.Ctx, snapshot.Request{Workspace: ws.Root, Exclude: []string{rt.StateDirPath()}})
	if err != nil {
		return err
	}
	pins := map[string]string{}
	for _, s := range res.Snapshot.Submodules {
		pins[s.Path] = s.Gitlink
	}
	p := buildPlan{Modules: mods}
	for _, r := range ws.Repos {
		if r.Module == nil || r.Module.Type != "core" {
			continue
		}
		p.Entries = append(p.Entries, buildModule{Name: r.Module.Name, Submodule: r.Path, Good: pins[r.Path], CrashWhenMoved: r.Path == crash})
		if err := writeSimulatedModule(mods, r.Module.Name, ""); err != nil {
			return err
		}
	}
	b, err := artifact.Encode(p)
	if err != nil {
		return err
	}
	return artifact.WriteFile(planPath, b, 0o644)
}

func copyExecutable(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
