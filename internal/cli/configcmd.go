package cli

import (
	"github.com/lambda-os/lambda-check/internal/config"
	"github.com/lambda-os/lambda-check/internal/exitcode"
)

// ConfigCmd is "lambda-check config".
type ConfigCmd struct {
	Check ConfigCheckCmd `cmd:"" help:"Check a configuration file: strict decoding, every value valid."`
}

// ConfigCheckCmd is "lambda-check config check".
type ConfigCheckCmd struct {
	File string `arg:"" placeholder:"FILE" help:"The configuration file."`
}

// Help is shown by "lambda-check config check --help".
func (c *ConfigCheckCmd) Help() string {
	return `Reads the file as lambda-check reads its configuration (an unknown key is an
error naming it, with its line and column; every duration, pattern, channel
and stage name is checked) and says whether it is valid: exit 0, or 82 with
the problem. The Nix library's mkConfig runs it at build time.`
}

// Run checks.
func (c *ConfigCheckCmd) Run(rt *Runtime) error {
	p := rt.Abs(c.File)
	cfg, err := config.Load(p, false)
	if err != nil {
		return exitcode.Input(err, "docs/artifacts.md lists the configuration's keys")
	}
	if rt.Globals.JSON {
		return rt.PrintJSON(cfg)
	}
	rt.Printf("%s: valid (schemaVersion %d)\n", p, cfg.SchemaVersion)
	return nil
}
