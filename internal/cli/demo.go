package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/gittest"
	"github.com/lambda-os/lambda-check/internal/stage/plan"
	"github.com/lambda-os/lambda-check/internal/stage/policy"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
	"github.com/lambda-os/lambda-check/internal/stage/upgrades"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// DemoCmd is "lambda-check demo".
type DemoCmd struct {
	Dir     string `placeholder:"DIR" help:"Build the sample workspace here (must be empty or absent; default: a new temporary directory, kept)."`
	Modules int    `default:"10" help:"How many Logos module repositories the sample workspace has."`
}

// Help is shown by "lambda-check demo --help".
func (c *DemoCmd) Help() string {
	return `Builds a realistic Logos-like workspace: a superproject with module
submodules under repos/ (each with metadata.json and a flake), local bare
remotes of which some are ahead of their pins, a flake.nix whose inputs follow
a shared SDK, and a flake.lock with one entry drifted from its gitlink. Then it
runs the stages that exist on it (snapshot, policy, graph, upgrades, propose)
and prints what it found and where things are. The demo exits 0 even though its workspace breaks
the policy on purpose.`
}

// Run builds the workspace and runs the stages.
func (c *DemoCmd) Run(rt *Runtime) error {
	if c.Modules < 1 || c.Modules > 5000 {
		return errUsage("--modules must be between 1 and 5000, got %d", c.Modules)
	}
	dir := c.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "lambda-check-demo-")
		if err != nil {
			return err
		}
		dir = d
	} else {
		dir = rt.Abs(dir)
	}
	opts := gittest.DemoOptions()
	opts.Modules = c.Modules
	if c.Modules < 10 {
		// Keep only the ahead and drift repositories the smaller catalog has.
		opts.Ahead = map[string]int{"logos-capability-module": 1}
		opts.Drift = []string{"logos-liblogos"}
	}
	start := time.Now()
	rt.Logf("building a sample workspace with %d modules in %s", c.Modules, dir)
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return exitcode.Input(fmt.Errorf("demo directory %q is not empty", dir), "give --dir a new or empty directory; nothing in an existing one is overwritten")
	}
	ws, err := gittest.Generate(rt.Ctx, dir, opts)
	if err != nil {
		return fmt.Errorf("build demo workspace: %w", err)
	}
	rt.Logf("built in %s: %d repositories, remotes ahead of their pins: %d, lock entries drifted from their gitlinks: %d",
		time.Since(start).Round(time.Millisecond), len(ws.Repos), len(opts.Ahead), len(opts.Drift))

	// The demo's own workspace; a --state-dir the user gave still applies.
	rt.Globals.Workspace = ws.Root
	sd, unlock, err := rt.LockState()
	if err != nil {
		return err
	}
	defer unlock()
	start = time.Now()
	w, err := snapshotLocked(rt, sd, "")
	if err != nil {
		return fmt.Errorf("snapshot of the demo workspace: %w", err)
	}
	snapTook := time.Since(start)

	start = time.Now()
	pcfg, err := policy.LoadConfig(filepath.Join(ws.Root, "policy.json"), false)
	if err != nil {
		return err
	}
	now, err := rt.Clock()
	if err != nil {
		return err
	}
	pw, err := checkPolicy(rt, sd, w.snapshot, w.digest, true, pcfg, now, false, sd.File("policy.json"))
	if err != nil {
		return fmt.Errorf("policy of the demo workspace: %w", err)
	}
	policyTook := time.Since(start)

	start = time.Now()
	gv, err := loadGraph(rt, false, false)
	if err != nil {
		return fmt.Errorf("graph of the demo workspace: %w", err)
	}
	order, err := plan.Run(rt.Ctx, plan.Request{Graph: &gv.Graph, Changes: gv.RootInputs()})
	if err != nil {
		return err
	}
	graphTook := time.Since(start)

	start = time.Now()
	ures, err := upgrades.Run(rt.Ctx, upgrades.Request{Snapshot: w.snapshot, Store: sd.File("remotes")})
	if err != nil {
		return fmt.Errorf("upgrades of the demo workspace: %w", err)
	}
	upPath := sd.File("upgrades.json")
	if _, _, err := artifact.Write(upPath, &artifact.Envelope[*upgrades.Upgrades]{
		Kind: upgrades.Spec.Kind, SchemaVersion: upgrades.Spec.Version, Producer: rt.Producer(),
		Inputs:  []artifact.Input{{Kind: workspace.SnapshotSpec.Kind, Digest: w.digest}},
		Payload: &ures.Upgrades,
	}); err != nil {
		return err
	}
	upTook := time.Since(start)
	start = time.Now()
	props, err := proposeLocked(rt, sd, w.snapshot, &ures.Upgrades, pcfg, "")
	if err != nil {
		return fmt.Errorf("proposals for the demo workspace: %w", err)
	}
	proposeTook := time.Since(start)

	if rt.Globals.JSON {
		return rt.PrintJSON(struct {
			Workspace string            `json:"workspace"`
			Remotes   string            `json:"remotes"`
			Snapshot  string            `json:"snapshot"`
			Digest    string            `json:"digest"`
			Policy    string            `json:"policy"`
			Summary   policy.Summary    `json:"policySummary"`
			Levels    [][]plan.Step     `json:"order"`
			Upgrades  string            `json:"upgrades"`
			Proposals []propose.Outcome `json:"proposals"`
		}{ws.Root, ws.Remotes, w.path, w.digest, pw.path, pw.report.Summary, order.Plan.Levels, upPath, props.Outcomes})
	}
	rt.Printf("== snapshot (%s)\n", snapTook.Round(time.Microsecond))
	renderSnapshot(rt, w.snapshot)
	rt.Printf("\n== policy (%s)\n", policyTook.Round(time.Microsecond))
	renderPolicy(rt, pw.report)
	rt.Printf("\n== graph (%s)\n", graphTook.Round(time.Microsecond))
	renderGraph(rt, gv, &order.Plan)
	rt.Printf("\n== upgrades (%s)\n", upTook.Round(time.Microsecond))
	renderUpgrades(rt, &ures.Upgrades)
	rt.Printf("\n== propose (%s)\n", proposeTook.Round(time.Microsecond))
	renderOutcomes(rt, props.Outcomes, sd.File("proposals"))
	rt.Printf("\nartifacts: %s, %s, %s\n", w.path, pw.path, upPath)
	rt.Printf("workspace: %s\n", ws.Root)
	rt.Printf("remotes:   %s\n", ws.Remotes)
	rt.Printf("\nTry next:\n")
	rt.Printf("  echo change >> %s\n", filepath.Join(ws.Root, "repos", ws.Repos[2].Name, "README.md"))
	rt.Printf("  lambda-check snapshot -w %s --compare %s\n", ws.Root, w.path)
	rt.Printf("  lambda-check policy -w %s\n", ws.Root)
	rt.Printf("  lambda-check plan -w %s --input logos-cpp-sdk --input logos-chat-module\n", ws.Root)
	rt.Printf("  lambda-check graph -w %s --format dot | dot -Tsvg > graph.svg\n", ws.Root)
	rt.Printf("  lambda-check proposals -w %s\n", ws.Root)
	if len(props.Outcomes) > 0 {
		o := props.Outcomes[len(props.Outcomes)-1]
		rt.Printf("  lambda-check proposals -w %s show %s --patch\n", ws.Root, o.ID)
		rt.Printf("  nix build %s#packages.%s.%s\n", "path:"+filepath.Join(sd.File("proposals"), o.ID), ws.System, filepath.Base(o.Submodule))
	}
	rt.Printf("\nNot yet in this build: verify, heal, governance, notify, audit, report.\n")
	return nil
}
