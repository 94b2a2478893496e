package cli

import (
	"os"
	"time"

	"github.com/lambda-os/lambda-check/internal/demo"
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
a shared SDK, and a flake.lock with one entry drifted from its gitlink (so
policy fails on purpose). Then it tells the whole story: snapshot, policy,
graph, upgrades and proposals; a proposal approved with a demo key made here
and applied; a cycle with verify; an upgrade whose new build crashes, found
by verify and rolled back by heal; and the HTML report. It prints what each
step found and where everything is, and exits 0.

Verify needs a Logos runtime. With a host on PATH (or LAMBDA_CHECK_LOGOS_HOST)
and LAMBDA_CHECK_MODULES_DIR set to built modules, the demo verifies those;
otherwise it uses a SIMULATED runtime, labelled so everywhere: a stand-in host
speaking the March logos_host protocol and stand-in plugins with Qt metadata
but no code (in <dir>/simulated-runtime).`
}

// Run builds the workspace and runs the stages.
func (c *DemoCmd) Run(rt *Runtime) error {
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
	e, err := rt.Workflow()
	if err != nil {
		return err
	}
	res, err := demo.Run(rt.Ctx, e, demo.Options{Dir: dir, Modules: c.Modules, Self: rt.Env.Self,
		StateDirGiven: rt.Globals.StateDir != "", ConfigGiven: rt.Globals.Config != "",
		Host: rt.Env.Getenv("LAMBDA_CHECK_LOGOS_HOST"), ModulesDir: rt.Env.Getenv("LAMBDA_CHECK_MODULES_DIR"),
		LockTimeout: rt.Globals.LockTimeout})
	if err != nil {
		return err
	}
	if rt.Globals.JSON {
		return rt.PrintJSON(res)
	}
	took := func(n string) string { return res.Took[n].Round(time.Microsecond).String() }
	rt.Printf("== snapshot (%s)\n", took("snapshot"))
	renderSnapshot(rt, res.Snap.Snapshot)
	rt.Printf("\n== policy (%s)\n", took("policy"))
	renderPolicy(rt, res.PolicyReport)
	rt.Printf("\n== graph (%s)\n", took("graph"))
	renderGraph(rt, res.Graph, res.Order)
	rt.Printf("\n== upgrades (%s)\n", took("upgrades"))
	renderUpgrades(rt, res.Found)
	rt.Printf("\n== propose (%s)\n", took("propose"))
	renderOutcomes(rt, res.Proposals, res.ProposalsDir)
	rt.Printf("\n== governance and audit (%s)\n", took("governance"))
	printLines(rt, "", res.Governance)
	rt.Printf("\nruntime for verify: %s\n", res.Story.Runtime)
	for _, ch := range res.Story.Chapters {
		if ch.Title != "" {
			rt.Printf("\n== %s\n", ch.Title)
		}
		printLines(rt, "", ch.Lines)
		if ch.Cycle != nil {
			renderCycle(rt, ch.Cycle)
		}
	}
	rt.Printf("\nreport:    %s\n", res.Story.Report)
	rt.Printf("\nartifacts: %s, %s, %s\n", res.Snapshot, res.Policy, res.Upgrades)
	rt.Printf("workspace: %s\n", res.Workspace)
	rt.Printf("remotes:   %s\n", res.Remotes)
	rt.Printf("\nproposals now:\n")
	printLines(rt, "  ", res.Now)
	rt.Printf("\nTry next%s:\n", res.TryNextNote)
	printLines(rt, "  ", res.TryNext)
	return nil
}

func printLines(rt *Runtime, indent string, lines []string) {
	for _, l := range lines {
		rt.Printf("%s%s\n", indent, l)
	}
}
