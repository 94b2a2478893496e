package cli

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/stage/cycle"
	"github.com/lambda-os/lambda-check/internal/stage/governance"
	"github.com/lambda-os/lambda-check/internal/statedir"
)

// demoStory is the rest of the demo: the cycle with verify on a runtime
// (the real one when given, else the simulated one, said so), an upgrade
// whose build crashes, heal rolling it back, and the report.
type demoStory struct {
	Runtime string           `json:"runtime"`
	Cycles  []*cycle.Summary `json:"cycles"`
	Broke   string           `json:"broke,omitempty"`
	Report  string           `json:"report"`
	lines   []string
}

func (s *demoStory) say(format string, a ...any) {
	s.lines = append(s.lines, fmt.Sprintf(format, a...))
}

func runDemoStory(rt *Runtime, sd *statedir.Dir, dir string, ws *sample.Workspace, keyPath string) (*demoStory, error) {
	st := &demoStory{}
	host, _ := findHost(rt, rt.Env.Getenv("LAMBDA_CHECK_LOGOS_HOST"), "", ws.Root)
	mods := rt.Env.Getenv("LAMBDA_CHECK_MODULES_DIR")
	var planPath string
	var build []string
	simulated := host == "" || mods == ""
	if simulated {
		var err error
		host, mods, planPath, build, err = simulatedRuntime(rt, dir, ws)
		if err != nil {
			return nil, err
		}
		st.Runtime = "SIMULATED: a stand-in host speaking the March logos_host protocol, with stand-in plugins (" + host + ")"
	} else {
		st.Runtime = "the Logos host " + host + " with the modules in " + mods
	}
	cfg := map[string]any{
		"schemaVersion": 1, "governance": map[string]any{"backend": "human"},
		"verify": map[string]any{"modulesDir": mods, "host": host, "deadline": "10s"},
	}
	haveKey := fileExists(keyPath)
	if haveKey {
		cfg["keys"] = "keys.json"
	}
	if simulated && haveKey {
		cfg["verify"].(map[string]any)["build"] = build
		cfg["heal"] = map[string]any{"autoApply": true, "key": keyPath}
	}
	b, err := artifact.Encode(cfg)
	if err != nil {
		return nil, err
	}
	if err := artifact.WriteFile(sd.File("config.json"), b, 0o644); err != nil {
		return nil, err
	}
	rt.cfg = nil
	rt.held = sd
	defer func() { rt.held = nil }()

	runOne := func(title string) (*cycle.Summary, error) {
		sum, err := runCycle(rt, &CycleCmd{})
		if err != nil {
			return nil, err
		}
		st.Cycles = append(st.Cycles, sum)
		var buf bytes.Buffer
		sub := &Runtime{Ctx: rt.Ctx, Env: rt.Env, Globals: rt.Globals, cfg: rt.cfg}
		sub.Env.Stdout = &buf
		renderCycle(sub, sum)
		st.say("== %s", title)
		st.say("%s", strings.TrimRight(buf.String(), "\n"))
		return sum, nil
	}
	if _, err := runOne("cycle 1: the whole round, verify on " + map[bool]string{true: "the SIMULATED runtime", false: "the real runtime"}[simulated]); err != nil {
		return nil, err
	}
	if !simulated {
		st.say("(the break-and-heal part of the demo needs the simulated runtime: it makes a module's new build crash)")
	} else if !haveKey {
		st.say("(no demo key was made, so nothing can be approved: the break-and-heal part is skipped)")
	} else if err := demoBreak(rt, sd, st, ws, planPath, build, keyPath); err != nil {
		return nil, err
	} else if st.Broke != "" {
		if _, err := runOne("cycle 2: " + st.Broke + " crashes; heal rolls it back (heal.autoApply)"); err != nil {
			return nil, err
		}
		if _, err := runOne("cycle 3: after the rollback"); err != nil {
			return nil, err
		}
	}
	st.Report = filepath.Join(dir, "report.html")
	if err := writeReportHTML(rt, st.Report); err != nil {
		return nil, err
	}
	return st, nil
}

// demoBreak approves and applies a pending upgrade of a module with the
// demo key, and "builds" it: the simulated build of that module from its
// new pin crashes on load.
func demoBreak(rt *Runtime, sd *statedir.Dir, st *demoStory, ws *sample.Workspace, planPath string, build []string, keyPath string) error {
	ls, err := listProposals(rt)
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
		st.say("(no pending module upgrade left to break: the break-and-heal part is skipped)")
		return nil
	}
	var buf bytes.Buffer
	mods := ""
	if cfg, err := rt.Config(); err == nil {
		mods = cfg.Verify.ModulesDir
	}
	if err := writeBuildPlan(rt, planPath, mods, ws, sub); err != nil {
		return err
	}
	k, err := sign.ReadPrivateKey(keyPath)
	if err != nil {
		return err
	}
	env, err := govEnv(rt, sd, true)
	if err != nil {
		return err
	}
	if _, err := governance.Record(env, id, governance.Approve, "demo: upgrade "+sub, k); err != nil {
		return err
	}
	if err := rt.record(sd, audit.Event{Stage: governance.Approve, Detail: id + " by " + k.ID}); err != nil {
		return err
	}
	if env, err = govEnv(rt, sd, true); err != nil {
		return err
	}
	sub2 := &Runtime{Ctx: rt.Ctx, Env: rt.Env, Globals: rt.Globals, cfg: rt.cfg, held: sd}
	sub2.Env.Stdout = &buf
	if err := applyLocked(sub2, sd, env, id, false); err != nil {
		return err
	}
	bsub := &Runtime{Ctx: rt.Ctx, Env: rt.Env, Globals: rt.Globals, cfg: rt.cfg}
	bsub.Env.Stdout = &buf
	if err := (&SimulatedBuildCmd{Plan: planPath}).Run(bsub); err != nil {
		return fmt.Errorf("simulated build: %w", err)
	}
	st.say("== an upgrade that breaks a module")
	st.say("approved %s with the demo key and applied it; the modules were rebuilt (simulated, %s):", id, strings.Join(build[1:2], ""))
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		st.say("  %s", l)
	}
	return nil
}
