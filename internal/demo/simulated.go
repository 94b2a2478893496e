package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/logos/standin"
	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/workflow"
)

// The demo's simulated runtime. When no real Logos host is at hand, the
// demo still shows verify and heal working, against a stand-in that
// speaks the March host's documented protocol (token socket, ready line)
// and tiny ELF "plugins" that carry Qt metadata but no code. It is named
// "simulated" wherever it appears; it is never used outside the demo.

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

// SimulatedBuild "builds" the demo's modules from the workspace's current
// pins as its build plan says, one line per module on out.
func SimulatedBuild(ctx context.Context, planPath, ws, stateDir string, out io.Writer) error {
	b, err := os.ReadFile(planPath)
	if err != nil {
		return err
	}
	var p buildPlan
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("%s: %w", planPath, err)
	}
	pins, err := pinsOf(ctx, ws, stateDir)
	if err != nil {
		return err
	}
	for _, m := range p.Entries {
		mode, note := "", ""
		if m.CrashWhenMoved && pins[m.Submodule] != m.Good {
			mode, note = "segv", "(segv) "
		}
		if err := writeSimulatedModule(p.Modules, m.Name, mode); err != nil {
			return err
		}
		fmt.Fprintf(out, "built %s from %s @ %s %s(simulated)\n", m.Name, m.Submodule, workflow.Short(pins[m.Submodule]), note)
	}
	return nil
}

func pinsOf(ctx context.Context, ws, stateDir string) (map[string]string, error) {
	res, err := snapshot.Run(ctx, snapshot.Request{Workspace: ws, Exclude: []string{stateDir}})
	if err != nil {
		return nil, err
	}
	pins := map[string]string{}
	for _, s := range res.Snapshot.Submodules {
		pins[s.Path] = s.Gitlink
	}
	return pins, nil
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

// simulated is the demo's simulated runtime as set up.
type simulated struct {
	host, modules, plan string
	// build is the command that rebuilds the modules (verify.build).
	build []string
}

// simulatedRuntime sets up the simulated host and the modules built from
// the workspace's current pins.
func simulatedRuntime(ctx context.Context, self, dir, stateDir string, ws *sample.Workspace) (*simulated, error) {
	if self == "" {
		return nil, fmt.Errorf("the simulated runtime needs the path of lambda-check itself")
	}
	rdir := filepath.Join(dir, "simulated-runtime")
	s := &simulated{modules: filepath.Join(rdir, "modules"), plan: filepath.Join(rdir, "simulated-build.json"), host: filepath.Join(rdir, "logos_host")}
	if err := os.MkdirAll(s.modules, 0o755); err != nil {
		return nil, err
	}
	// A copy of this program, so the simulated runtime outlives a
	// 'go run' binary and the demo directory stands on its own.
	bin := filepath.Join(rdir, "lambda-check")
	if err := copyExecutable(self, bin); err != nil {
		return nil, fmt.Errorf("copy lambda-check for the simulated runtime: %w", err)
	}
	script := fmt.Sprintf("#!/bin/sh\n# SIMULATED Logos host for 'lambda-check demo': it speaks the March host's\n# protocol but loads nothing. Not a runtime.\nexec %q simulated-host -- \"$@\"\n", bin)
	if err := artifact.WriteFile(s.host, []byte(script), 0o755); err != nil {
		return nil, err
	}
	if err := writeBuildPlan(ctx, s, stateDir, ws, ""); err != nil {
		return nil, err
	}
	s.build = []string{bin, "simulated-build", "-w", ws.Root, "--plan", s.plan}
	return s, nil
}

// writeBuildPlan records the workspace's current pins as the good ones;
// the module of submodule crash (if any) crashes when built from another.
// It builds every module from those pins.
func writeBuildPlan(ctx context.Context, s *simulated, stateDir string, ws *sample.Workspace, crash string) error {
	pins, err := pinsOf(ctx, ws.Root, stateDir)
	if err != nil {
		return err
	}
	p := buildPlan{Modules: s.modules}
	for _, r := range ws.Repos {
		if r.Module == nil || r.Module.Type != "core" {
			continue
		}
		p.Entries = append(p.Entries, buildModule{Name: r.Module.Name, Submodule: r.Path, Good: pins[r.Path], CrashWhenMoved: r.Path == crash})
		if err := writeSimulatedModule(s.modules, r.Module.Name, ""); err != nil {
			return err
		}
	}
	b, err := artifact.Encode(p)
	if err != nil {
		return err
	}
	return artifact.WriteFile(s.plan, b, 0o644)
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
