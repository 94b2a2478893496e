package cli

import (
	"fmt"

	"github.com/lambda-os/lambda-check/internal/config"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/stage/governance"
)

// ConfigCmd is "lambda-check config".
type ConfigCmd struct {
	Check ConfigCheckCmd `cmd:"" help:"Check a configuration file: strict decoding, every value valid."`
}

// ConfigCheckCmd is "lambda-check config check".
type ConfigCheckCmd struct {
	File      string `arg:"" placeholder:"FILE" help:"The configuration file."`
	SkipFiles bool   `help:"Do not check the files the configuration names (the key registry): for a check at build time, before they are in place."`
}

// Help is shown by "lambda-check config check --help".
func (c *ConfigCheckCmd) Help() string {
	return `Reads the file as lambda-check reads its configuration (an unknown key is an
error naming it, with its line and column; every duration, pattern, channel
and stage name is checked; duplicate keys are refused) and says whether it is
valid: exit 0, or 82 with the problem. The key registry it names must exist
and agree with governance's signers and threshold, unless --skip-files (the
Nix library's mkConfig and the NixOS module run it so at build time).`
}

// Run checks.
func (c *ConfigCheckCmd) Run(rt *Runtime) error {
	p := rt.Abs(c.File)
	cfg, err := config.Load(p, false)
	if err != nil {
		return exitcode.Input(err, "docs/artifacts.md lists the configuration's keys")
	}
	// What the file names must be there and agree with it: the key
	// registry, and governance's signers and threshold against it.
	if kp := cfg.KeysPath(); kp != "" && !c.SkipFiles {
		reg, err := sign.ReadRegistry(kp)
		if err != nil {
			return exitcode.Input(fmt.Errorf("%s: keys: %w", p, err), "\"keys\" names the key registry, relative to the configuration file")
		}
		g := cfg.Governance
		gc := &governance.Config{Backend: g.Backend, Threshold: g.Threshold, Signers: g.Signers, Program: g.Program}
		if gc.Backend == "" {
			gc.Backend = governance.Human
		}
		if err := gc.Validate(reg); err != nil {
			return exitcode.Input(fmt.Errorf("%s: %w", p, err), "see docs/governance.md")
		}
	}
	if rt.Globals.JSON {
		return rt.PrintJSON(cfg)
	}
	rt.Printf("%s: valid (schemaVersion %d)\n", p, cfg.SchemaVersion)
	return nil
}
