package cli

import (
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/logos"
	"github.com/lambda-os/lambda-check/internal/stage/verify"
	"github.com/lambda-os/lambda-check/internal/workflow"
)

// VerifyCmd is "lambda-check verify".
type VerifyCmd struct {
	ModulesDir string        `placeholder:"DIR" help:"The built modules (default: verify.modulesDir in the config, else <workspace>/result/modules)."`
	Host       string        `placeholder:"PATH" help:"The Logos host binary (default: verify.host, then logos_host_qt or logos_host on PATH, then <workspace>/result/bin)."`
	Module     []string      `placeholder:"NAME" help:"Verify only these modules (repeatable)."`
	Deadline   time.Duration `placeholder:"DURATION" help:"Time a module has to become ready (default: verify.deadline, else 10s)."`
	Bwrap      bool          `help:"Load each module under bubblewrap: no network, read-only filesystem (needs bwrap)."`
	Logoscore  string        `placeholder:"PATH" help:"logoscore, for the calls in verify.calls (default: verify.logoscore, else logoscore on PATH)."`
}

// Help is shown by "lambda-check verify --help".
func (c *VerifyCmd) Help() string {
	return `Checks that every module really loads in the Logos runtime. Each plugin is
first read without running anything (its Qt metadata note: a plugin at all,
its Qt version against the host's verify.qt, the module name, the plugin
file name, its dependencies present), then loaded by the host in a private
TMPDIR with a minimal environment in its own process group: the auth token
is sent as the host's generation expects (token socket for the March
logos_host, stdin for the August logos_host_qt) and a module passes only on
the host's ready line within the deadline. Crashes (with the signal), early
exits (with the code), hangs, missing token handshakes, missing libraries,
name and Qt mismatches are told apart. The process group is killed and
checked gone after every load. Writes verify.json and appends to the
per-module history heal reads. Exit 3 when a module fails, or when there is
no module at all (nothing verified is never healthy).`
}

// Run verifies.
func (c *VerifyCmd) Run(rt *Runtime) error {
	e, release, err := rt.Lock()
	if err != nil {
		return err
	}
	defer release()
	host := rt.AbsOrName(c.Host)
	if _, err := exec.LookPath(host); host != "" && !strings.ContainsRune(host, '/') && err != nil {
		host = rt.Abs(host) // not on PATH: a file here
	}
	res, err := workflow.Verify(rt.Ctx, e, workflow.VerifyOptions{ModulesDir: absIf(rt, c.ModulesDir), Host: host,
		Modules: c.Module, Deadline: c.Deadline, Bwrap: c.Bwrap, Logoscore: rt.AbsOrName(c.Logoscore)})
	if err != nil {
		return err
	}
	if rt.Globals.JSON {
		if err := rt.PrintJSON(res.Report); err != nil {
			return err
		}
	} else {
		renderVerify(rt, res.Report)
	}
	return workflow.VerifyVerdict(res.Report)
}

func renderVerify(rt *Runtime, r *verify.Report) {
	rt.Printf("verify: %s — %d pass, %d fail (%d modules; host %s, %s)\n", r.Summary.Verdict, r.Summary.Pass, r.Summary.Fail, r.Summary.Modules, r.Host.Path, r.Host.Generation)
	if r.Summary.Reason != "" {
		rt.Printf("  %s\n", r.Summary.Reason)
	}
	for _, m := range r.Modules {
		detail := m.Static.Detail
		if m.Load != nil {
			detail = m.Load.Detail
			if m.Load.Reason == logos.ReasonReady {
				detail = fmt.Sprintf("ready in %d ms", m.Load.ReadyMillis)
			}
		}
		from := ""
		if m.Submodule != "" {
			from = fmt.Sprintf(" [%s @ %s]", m.Submodule, short(m.Gitlink))
		}
		rt.Printf("  %-4s %-24s %s %s%s\n", m.Verdict, m.Name, m.Reason, strings.TrimSpace(detail), from)
	}
}
