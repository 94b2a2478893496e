package demo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/stage/cycle"
	"github.com/lambda-os/lambda-check/internal/stage/governance"
	"github.com/lambda-os/lambda-check/internal/workflow"
)

// Story is the rest of the demo: the cycle with verify on a runtime (the
// real one when given, else the simulated one, said so), an upgrade whose
// build crashes, heal rolling it back, and the report.
type Story struct {
	Runtime string           `json:"runtime"`
	Cycles  []*cycle.Summary `json:"cycles"`
	Broke   string           `json:"broke,omitempty"`
	Report  string           `json:"report"`
	// Chapters tell it in order, for people.
	Chapters []Chapter `json:"-"`
}

// Chapter is a part of the story: a title, what happened, and the cycle
// it ran, if any.
type Chapter struct {
	Title string
	Lines []string
	Cycle *cycle.Summary
}

// note adds lines to the story, in a chapter of their own when titled.
func (s *Story) note(title string, lines ...string) {
	s.Chapters = append(s.Chapters, Chapter{Title: title, Lines: lines})
}

func runStory(ctx context.Context, e *workflow.Env, o Options, ws *sample.Workspace, keyPath string) (*Story, error) {
	st := &Story{}
	host, _ := workflow.FindHost(o.Host, "", ws.Root)
	mods := o.ModulesDir
	real := host != "" && mods != ""
	var sim *simulated
	if real {
		st.Runtime = "the Logos host " + host + " with the modules in " + mods
	} else {
		var err error
		if sim, err = simulatedRuntime(ctx, o.Self, o.Dir, e.StateDir, ws); err != nil {
			return nil, err
		}
		host, mods = sim.host, sim.modules
		st.Runtime = "SIMULATED: a stand-in host speaking the March logos_host protocol, with stand-in plugins (" + host + ")"
	}
	verify := map[string]any{"modulesDir": mods, "host": host, "deadline": "10s"}
	cfg := map[string]any{"schemaVersion": 1, "governance": map[string]any{"backend": "human"}, "verify": verify}
	haveKey := fileExists(keyPath)
	if haveKey {
		cfg["keys"] = "keys.json"
	}
	if sim != nil && haveKey {
		verify["build"] = sim.build
		cfg["heal"] = map[string]any{"autoApply": true, "key": keyPath}
	}
	if err := writeConfig(e, cfg); err != nil {
		return nil, err
	}
	runOne := func(title string) error {
		sum, err := workflow.Cycle(ctx, e, workflow.CycleOptions{})
		if err != nil {
			return err
		}
		st.Cycles = append(st.Cycles, sum)
		st.Chapters = append(st.Chapters, Chapter{Title: title, Cycle: sum})
		return nil
	}
	if err := runOne("cycle 1: the whole round, verify on " + map[bool]string{false: "the SIMULATED runtime", true: "the real runtime"}[real]); err != nil {
		return nil, err
	}
	switch {
	case real:
		st.note("", "(the break-and-heal part of the demo needs the simulated runtime: it makes a module's new build crash)")
	case !haveKey:
		st.note("", "(no demo key was made, so nothing can be approved: the break-and-heal part is skipped)")
	default:
		if err := breakModule(ctx, e, st, sim, ws, keyPath); err != nil {
			return nil, err
		}
		if st.Broke != "" {
			if err := runOne("cycle 2: " + st.Broke + " crashes; heal rolls it back (heal.autoApply)"); err != nil {
				return nil, err
			}
			if err := runOne("cycle 3: after the rollback"); err != nil {
				return nil, err
			}
		}
	}
	st.Report = filepath.Join(o.Dir, "report.html")
	r, err := workflow.Report(ctx, e, 25)
	if err != nil {
		return nil, err
	}
	if err := workflow.WriteReportHTML(r, st.Report); err != nil {
		return nil, err
	}
	return st, nil
}

// breakModule approves and applies a pending upgrade of a module with the
// demo key, and "builds" it: the simulated build of that module from its
// new pin crashes on load.
func breakModule(ctx context.Context, e *workflow.Env, st *Story, sim *simulated, ws *sample.Workspace, keyPath string) error {
	ls, err := workflow.Proposals(ctx, e, nil)
	if err != nil {
		return err
	}
	var id, sub string
	for _, l := range ls {
		if l.Proposal == nil || l.Status != "pending" || l.Proposal.Kind != "upgrade" {
			continue
		}
		for _, r := range ws.Repos {
			if r.Path == l.Proposal.Submodule && r.Module != nil && r.Module.Type == "core" {
				id, sub = l.Proposal.ID, r.Path
				st.Broke = r.Module.Name
				break
			}
		}
		if id != "" {
			break
		}
	}
	if id == "" {
		st.note("", "(no pending module upgrade left to break: the break-and-heal part is skipped)")
		return nil
	}
	if err := writeBuildPlan(ctx, sim, e.StateDir, ws, sub); err != nil {
		return err
	}
	k, err := sign.ReadPrivateKey(keyPath)
	if err != nil {
		return err
	}
	if _, err := workflow.Decision(ctx, e, id, governance.Approve, "demo: upgrade "+sub, k); err != nil {
		return err
	}
	applied, err := apply(ctx, e, id)
	if err != nil {
		return err
	}
	var built bytes.Buffer
	if err := SimulatedBuild(ctx, sim.plan, ws.Root, e.StateDir, &built); err != nil {
		return fmt.Errorf("simulated build: %w", err)
	}
	lines := []string{fmt.Sprintf("approved %s with the demo key and applied it; the modules were rebuilt (simulated, %s):", id, strings.Join(sim.build[1:2], ""))}
	for _, l := range append([]string{applied}, strings.Split(strings.TrimSpace(built.String()), "\n")...) {
		lines = append(lines, "  "+l)
	}
	st.note("an upgrade that breaks a module", lines...)
	return nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
