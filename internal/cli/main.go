// Package cli is lambda-check's command line: the kong grammar, one file per
// subcommand. Commands build typed requests, call the stages, write
// artifacts and render results; no stage logic lives here.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/config"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/statedir"
	"github.com/lambda-os/lambda-check/internal/workflow"
)

// version is set at build time with -ldflags "-X .../internal/cli.version=v".
var version = ""

// Version returns the program's version.
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// VersionLine is what --version prints: the version, the commit it was
// built from (when the build recorded it: go build in a checkout, or the
// flake's version), and the Go toolchain and platform.
func VersionLine() string {
	line := "lambda-check " + Version()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return line
	}
	var rev, at, modified string
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.time":
			at = kv.Value
		case "vcs.modified":
			modified = kv.Value
		}
	}
	var parts []string
	if rev != "" {
		c := "commit " + rev
		if at != "" {
			c += " of " + at
		}
		if modified == "true" {
			c += ", with uncommitted changes"
		}
		parts = append(parts, c)
	} else {
		parts = append(parts, "no commit recorded in this build")
	}
	parts = append(parts, bi.GoVersion+" "+runtime.GOOS+"/"+runtime.GOARCH)
	return line + " (" + strings.Join(parts, "; ") + ")"
}

// EnvPrefix starts the environment twin of every flag.
const EnvPrefix = "LAMBDA_CHECK_"

// Env is the process environment, passed in explicitly so the CLI runs
// in-process in tests.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Dir is the working directory relative paths are resolved against.
	Dir string
	// Getenv reads an environment variable.
	Getenv func(string) string
	// Environ is the whole environment, for the subprocesses (nix) the
	// CLI starts.
	Environ func() []string
	// IsTerminal reports whether stderr is a terminal (for progress).
	IsTerminal bool
	// Self is the path that runs this program again (the demo's simulated
	// runtime runs through it).
	Self string
}

// Globals are the flags every command takes.
type Globals struct {
	Workspace   string           `short:"w" default:"." placeholder:"DIR" help:"The workspace: the superproject's directory."`
	StateDir    string           `placeholder:"DIR" help:"Where artifacts, the lock and the audit log live (default: <workspace>/.lambda-check)."`
	Config      string           `placeholder:"FILE" help:"Configuration file (default: <state-dir>/config.json when it exists)."`
	JSON        bool             `name:"json" help:"Print machine-readable JSON on stdout instead of text."`
	LockTimeout time.Duration    `default:"30s" help:"How long to wait for another lambda-check holding the state dir."`
	Now         string           `placeholder:"TIME" help:"The time reports are rendered at and age rules (lock-age) compare with: RFC 3339 or Unix seconds (default: $SOURCE_DATE_EPOCH, else now). Never used for records or trust: audit times, decisions, commits and key validity take the system clock."`
	Version     kong.VersionFlag `help:"Print the version and exit."`
}

// CLI is the whole grammar.
type CLI struct {
	Globals

	Cycle      CycleCmd      `cmd:"" help:"Run one health-and-upgrade round: every stage in order, under the lock; cycle.json."`
	Watch      WatchCmd      `cmd:"" help:"Run cycles in the foreground at an interval (for hosts without systemd)."`
	Report     ReportCmd     `cmd:"" aliases:"dashboard" help:"Show how the node has been doing: health over time, modules, proposals, events (text, JSON, HTML)."`
	Status     StatusCmd     `cmd:"" help:"The node's state in one line (--json: as an object)."`
	Notify     NotifyCmd     `cmd:"" help:"Tell the configured channels what changed (Telegram, webhook, desktop)."`
	Snapshot   SnapshotCmd   `cmd:"" help:"Capture the workspace's exact state into snapshot.json."`
	Diff       DiffCmd       `cmd:"" help:"Tell what changed between two snapshots."`
	Policy     PolicyCmd     `cmd:"" help:"Check the workspace against the node's rules into policy.json."`
	Verify     VerifyCmd     `cmd:"" help:"Load every module through the Logos runtime host; verdicts into verify.json."`
	Heal       HealCmd       `cmd:"" help:"Find modules that regressed since the last verify and propose their rollback."`
	Upgrades   UpgradesCmd   `cmd:"" help:"Find upstream commits beyond each pin (fast-forwards only) into upgrades.json."`
	Propose    ProposeCmd    `cmd:"" help:"Turn each upgrade into a proposal: a patch and a Nix flake."`
	Proposals  ProposalsCmd  `cmd:"" help:"List proposals or show one."`
	Governance GovernanceCmd `cmd:"" help:"Approve, reject and apply proposals with signed decisions."`
	Quarantine QuarantineCmd `cmd:"" help:"List or clear revisions known to be bad (a module failed verify at them)."`
	Audit      AuditCmd      `cmd:"" help:"Verify, read, checkpoint and publish the tamper-evident audit log."`
	Graph      GraphCmd      `cmd:"" help:"Print how the workspace's repositories depend on each other."`
	Plan       PlanCmd       `cmd:"" help:"Order changed inputs by dependency, leaves first, into plan.json."`

	Key          KeyCmd          `cmd:"" help:"Make and inspect ed25519 signing keys."`
	ConfigFile   ConfigCmd       `cmd:"" name:"config" help:"Check a configuration file."`
	SignMetadata SignMetadataCmd `cmd:"" name:"sign-metadata" help:"Sign module metadata.json files with a key."`
	Demo         DemoCmd         `cmd:"" help:"Build a sample Logos workspace and run the stages on it."`
	ExitCodes    ExitCodesCmd    `cmd:"" name:"exit-codes" help:"List the exit codes and what they mean."`
	Completion   CompletionCmd   `cmd:"" help:"Print a shell completion script (bash, zsh, fish): commands, flags, proposal ids."`
	Man          ManCmd          `cmd:"" help:"Print the manual page (roff), generated from the commands."`

	SimulatedHost  SimulatedHostCmd  `cmd:"" name:"simulated-host" hidden:"" help:"The demo's simulated Logos host (not a runtime)."`
	SimulatedBuild SimulatedBuildCmd `cmd:"" name:"simulated-build" hidden:"" help:"The demo's simulated module build."`
}

const description = `lambda-check keeps a Logos workspace healthy and moving forward, without ever
changing it behind the operator's back. Each command is one idempotent stage
that reads the workspace or earlier artifacts and writes one JSON artifact to
the state directory.

Every flag can also be set in the environment as LAMBDA_CHECK_<FLAG>, for
example LAMBDA_CHECK_WORKSPACE=/srv/logos-workspace or LAMBDA_CHECK_JSON=true.
Exit codes: 0 ok, 1 error, 3 verdict is fail, 75 busy (retry later),
80 usage, 82 bad input, 130 cancelled (see 'lambda-check exit-codes').`

// Runtime is what every command's Run receives.
type Runtime struct {
	Ctx     context.Context
	Env     Env
	Globals *Globals
	cfg     *config.Config
	wf      *workflow.Env
	// locked says the command took the state lock (a failure after it is
	// recorded).
	locked bool
	// app is the command model (for the manual page); command is the
	// command being run ("governance show <id>").
	app     *kong.Application
	command string
}

// Abs resolves p against the working directory.
func (rt *Runtime) Abs(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(rt.Env.Dir, p)
}

// AbsOrName resolves a program given as a path; a bare name stays, to be
// looked up on PATH.
func (rt *Runtime) AbsOrName(p string) string {
	if p == "" || !strings.ContainsRune(p, '/') {
		return p
	}
	return rt.Abs(p)
}

// noWorkspace are the commands that never look at a workspace.
var noWorkspace = map[string]bool{"demo": true, "exit-codes": true, "key": true, "config": true, "completion": true, "man": true,
	"sign-metadata": true, "simulated-host": true, "simulated-build": true}

// findWorkspace finds the workspace as git finds a work tree when -w is
// not given (nor LAMBDA_CHECK_WORKSPACE): the nearest ancestor of the
// working directory holding .git. Inside a submodule it refuses, naming
// the superproject: a state directory and a cycle there would be a
// workspace of one repository.
func (rt *Runtime) findWorkspace(command string) error {
	if rt.Globals.Workspace != "." || noWorkspace[strings.Fields(command + " x")[0]] {
		return nil
	}
	root, super, err := gitrepo.FindWorkTree(rt.Env.Dir)
	if err != nil || root == "" {
		return nil // not in a repository: the command says what is missing
	}
	if super != "" {
		rel, _ := filepath.Rel(super, root)
		return exitcode.Input(fmt.Errorf("%s is the submodule %s of the workspace %s, not a workspace", rt.Env.Dir, rel, super),
			fmt.Sprintf("run from the workspace, or give -w %s", super))
	}
	rt.Globals.Workspace = root
	return nil
}

// WorkspaceDir is the absolute workspace directory.
func (rt *Runtime) WorkspaceDir() string { return rt.Abs(rt.Globals.Workspace) }

// StateDirPath is the absolute state directory.
func (rt *Runtime) StateDirPath() string {
	if rt.Globals.StateDir != "" {
		return rt.Abs(rt.Globals.StateDir)
	}
	return filepath.Join(rt.WorkspaceDir(), statedir.DefaultName)
}

// Config loads the configuration once.
func (rt *Runtime) Config() (*config.Config, error) {
	if rt.cfg != nil {
		return rt.cfg, nil
	}
	p, optional := rt.Globals.Config, false
	if p == "" {
		p, optional = filepath.Join(rt.StateDirPath(), "config.json"), true
	} else {
		p = rt.Abs(p)
	}
	cfg, err := config.Load(p, optional)
	if err != nil {
		return nil, exitcode.Input(err, "see docs/artifacts.md for the configuration's keys")
	}
	rt.cfg = cfg
	return cfg, nil
}

// Clock is the time age rules compare with: --now, else
// $SOURCE_DATE_EPOCH, else the system clock (nil).
func (rt *Runtime) Clock() (*time.Time, error) {
	v, name := rt.Globals.Now, "--now"
	if v == "" {
		v, name = rt.Env.Getenv("SOURCE_DATE_EPOCH"), "SOURCE_DATE_EPOCH"
	}
	if v == "" {
		return nil, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		t := time.Unix(n, 0).UTC()
		return &t, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, &exitcode.UsageError{Err: fmt.Errorf("%s %q: want RFC 3339 (2026-11-27T12:00:00Z) or Unix seconds", name, v)}
	}
	t = t.UTC()
	return &t, nil
}

// Workflow is this command's workflow environment; its state directory is
// opened by the workflow, or locked with Lock.
func (rt *Runtime) Workflow() (*workflow.Env, error) {
	if rt.wf != nil {
		return rt.wf, nil
	}
	cfg, err := rt.Config()
	if err != nil {
		return nil, err
	}
	fixed, err := rt.Clock()
	if err != nil {
		return nil, err
	}
	// Records and trust decisions take the system clock; --now and
	// SOURCE_DATE_EPOCH only set the time reports and age rules are as of.
	now := func() time.Time { return time.Now().UTC() }
	asOf := now
	if fixed != nil {
		asOf = func() time.Time { return *fixed }
	}
	var environ []string
	if rt.Env.Environ != nil {
		environ = rt.Env.Environ()
	}
	rt.wf = &workflow.Env{Workspace: rt.WorkspaceDir(), StateDir: rt.StateDirPath(), Config: cfg, Now: now, AsOf: asOf,
		Producer: artifact.Producer{Name: "lambda-check", Version: Version()}, Actor: workflow.Actor(rt.Env.Getenv),
		Log: rt.Logf, Getenv: rt.Env.Getenv, Environ: environ}
	if rt.Env.IsTerminal && !rt.Globals.JSON {
		rt.wf.Progress = func(stage string, done, total int) {
			fmt.Fprintf(rt.Env.Stderr, "\rlambda-check: %s: %d/%d %s", stage, done, total, map[string]string{"upgrades": "remotes", "verify": "modules"}[stage])
			if done == total {
				fmt.Fprintln(rt.Env.Stderr)
			}
		}
	}
	return rt.wf, nil
}

// ReadWorkflow is Workflow for a command that reads the state directory:
// one that does not exist is an error (a mistyped --state-dir would
// otherwise read as "nothing here").
func (rt *Runtime) ReadWorkflow() (*workflow.Env, error) {
	e, err := rt.Workflow()
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(e.StateDir); err != nil || !st.IsDir() {
		hint := "nothing has run in this workspace yet: run lambda-check cycle (or a stage) first"
		if rt.Globals.StateDir != "" {
			hint = "check --state-dir: it names no state directory (lambda-check makes one when a stage first runs)"
		}
		return nil, exitcode.Input(fmt.Errorf("no state directory %s", e.StateDir), hint)
	}
	return e, nil
}

// Lock is the workflow environment with the state directory's writer
// lock held until release.
func (rt *Runtime) Lock() (*workflow.Env, func(), error) {
	e, err := rt.Workflow()
	if err != nil {
		return nil, nil, err
	}
	release, err := e.Lock(rt.Ctx, rt.Globals.LockTimeout)
	if err != nil {
		return nil, nil, err
	}
	rt.locked = true
	return e, release, nil
}

// Printf writes to stdout.
func (rt *Runtime) Printf(format string, a ...any) { fmt.Fprintf(rt.Env.Stdout, format, a...) }

// Logf writes a line to stderr.
func (rt *Runtime) Logf(format string, a ...any) {
	fmt.Fprintf(rt.Env.Stderr, "lambda-check: "+format+"\n", a...)
}

// PrintJSON writes v canonically to stdout.
// Every --json output is one object with a kind and a schemaVersion: an
// artifact's envelope as it is, anything else under the kind
// lambda-check/<command> (an array as its "items").
func (rt *Runtime) PrintJSON(v any) error {
	b, err := artifact.Encode(v)
	if err != nil {
		return err
	}
	b, err = envelope(b, rt.command)
	if err != nil {
		return err
	}
	_, err = rt.Env.Stdout.Write(b)
	return err
}

// envelope gives a JSON value the kind and schemaVersion of command's
// output unless it has a kind already.
func envelope(b []byte, command string) ([]byte, error) {
	var words []string
	for _, w := range strings.Fields(command) {
		if !strings.HasPrefix(w, "<") {
			words = append(words, w)
		}
	}
	kind, _ := json.Marshal("lambda-check/" + strings.Join(words, "-"))
	head := `{"kind":` + string(kind) + `,"schemaVersion":1`
	t := bytes.TrimSpace(b)
	var out []byte
	switch {
	case len(t) > 0 && t[0] == '{':
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(t, &probe); err != nil {
			return nil, err
		}
		if _, ok := probe["kind"]; ok {
			return b, nil
		}
		rest := bytes.TrimSpace(t[1:])
		if len(rest) > 0 && rest[0] == '}' {
			out = []byte(head + "}")
		} else {
			out = []byte(head + "," + string(rest))
		}
	default:
		out = []byte(head + `,"items":` + string(t) + "}")
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out, "", "  "); err != nil {
		return nil, err
	}
	pretty.WriteByte('\n')
	return pretty.Bytes(), nil
}

// PrintData writes v as JSON as it is: a record other programs take as
// input (a key registry entry, an audit event), never enveloped.
func (rt *Runtime) PrintData(v any) error {
	b, err := artifact.Encode(v)
	if err != nil {
		return err
	}
	_, err = rt.Env.Stdout.Write(b)
	return err
}

// Print writes bytes as they are (an artifact, exactly as written).
func (rt *Runtime) Print(b []byte) error {
	_, err := rt.Env.Stdout.Write(b)
	return err
}

// Main runs the command line and returns the exit code.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	var c CLI
	exited := -1
	parser, err := kong.New(&c,
		kong.Name("lambda-check"),
		kong.Description(description),
		kong.Writers(env.Stdout, env.Stderr),
		kong.Exit(func(code int) { exited = code }),
		kong.Vars{"version": VersionLine()},
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Resolvers(envResolver(env.Getenv)),
	)
	if err != nil {
		fmt.Fprintf(env.Stderr, "lambda-check: error: %v\n", err)
		return exitcode.Error
	}
	if len(args) > 0 && args[0] == completeArg {
		complete(env.Stdout, parser.Model, args[1:], env.Getenv, env.Dir)
		return exitcode.OK
	}
	if len(args) == 0 {
		// No command: show what there is, as a usage error.
		parser.Stdout = env.Stderr
		_, _ = parser.Parse([]string{"--help"})
		return exitcode.Usage
	}
	kctx, err := parser.Parse(args)
	if exited >= 0 {
		// --help or --version: kong printed and asked to exit.
		if exited != 0 {
			return exitcode.Usage
		}
		return exitcode.OK
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "lambda-check: error: %v\n", err)
		return exitcode.Usage
	}
	rt := &Runtime{Ctx: ctx, Env: env, Globals: &c.Globals, app: parser.Model, command: kctx.Command()}
	if err := rt.findWorkspace(kctx.Command()); err != nil {
		return report(env.Stderr, err)
	}
	err = kctx.Run(rt)
	rt.recordFailure(kctx.Command(), err)
	if c.Globals.JSON && err != nil {
		return reportJSON(env.Stderr, err)
	}
	return report(env.Stderr, err)
}

// recordFailure records in the audit log a command that took the state
// lock and then broke (an error or bad input, not a verdict): every stage
// that ran leaves an event, also one that failed.
func (rt *Runtime) recordFailure(command string, err error) {
	code := exitcode.Of(err)
	if rt.wf == nil || !rt.locked || code == exitcode.OK || code == exitcode.Fail || code == exitcode.Busy || code == exitcode.Cancelled {
		return
	}
	release, lerr := rt.wf.Lock(context.Background(), time.Second)
	if lerr != nil {
		return
	}
	defer release()
	stage := strings.Fields(command)
	name := "command"
	if len(stage) > 0 {
		name = stage[0]
	}
	_ = rt.wf.Record(audit.Event{Stage: name, Result: audit.ResultError, Detail: command + ": " + err.Error()})
}

// report prints err in the house grammar and returns its exit code.
func report(w io.Writer, err error) int {
	code := exitcode.Of(err)
	switch code {
	case exitcode.OK:
	case exitcode.Fail:
		// The artifact and the rendered result say why; one line suffices.
		fmt.Fprintf(w, "lambda-check: fail: %v\n", err)
	case exitcode.Cancelled:
		fmt.Fprintln(w, "lambda-check: cancelled")
	default:
		fmt.Fprintf(w, "lambda-check: error: %v\n", err)
		if h := exitcode.Hint(err); h != "" {
			fmt.Fprintf(w, "lambda-check: hint: %s\n", h)
		}
	}
	return code
}

// reportJSON writes err as one JSON object on stderr (with --json, a
// program reads the error as it reads the output) and returns its code.
func reportJSON(w io.Writer, err error) int {
	code := exitcode.Of(err)
	kind := map[int]string{exitcode.Fail: "fail", exitcode.Cancelled: "cancelled", exitcode.Usage: "usage",
		exitcode.BadInput: "bad-input", exitcode.Busy: "busy"}[code]
	if kind == "" {
		kind = "error"
	}
	b, _ := json.Marshal(struct {
		Kind          string `json:"kind"`
		SchemaVersion int    `json:"schemaVersion"`
		Code          int    `json:"code"`
		Class         string `json:"class"`
		Message       string `json:"message"`
		Hint          string `json:"hint,omitempty"`
	}{"lambda-check/error", 1, code, kind, err.Error(), exitcode.Hint(err)})
	fmt.Fprintf(w, "%s\n", b)
	return code
}

var camel = regexp.MustCompile(`[^A-Za-z0-9]+`)

// EnvName returns the environment twin of a flag name.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(camel.ReplaceAllString(flag, "_"))
}

// envResolver gives every flag an environment twin, read through the
// injected Getenv (never os.Getenv) so tests control it.
func envResolver(getenv func(string) string) kong.Resolver {
	return kong.ResolverFunc(func(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
		if flag.Name == "help" || flag.Name == "version" {
			return nil, nil
		}
		v := getenv(EnvName(flag.Name))
		if v == "" {
			return nil, nil
		}
		return v, nil
	})
}

// errUsage wraps a command-line mistake found after parsing.
func errUsage(format string, a ...any) error {
	return &exitcode.UsageError{Err: fmt.Errorf(format, a...)}
}
