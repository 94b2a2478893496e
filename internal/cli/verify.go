package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/logos"
	"github.com/lambda-os/lambda-check/internal/stage/policy"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/stage/verify"
	"github.com/lambda-os/lambda-check/internal/statedir"
	"github.com/lambda-os/lambda-check/internal/workspace"
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
	sd, unlock, err := rt.LockState()
	if err != nil {
		return err
	}
	defer unlock()
	rep, _, err := verifyLocked(rt, sd, c)
	if err != nil {
		return err
	}
	if rt.Globals.JSON {
		if err := rt.PrintJSON(rep); err != nil {
			return err
		}
	} else {
		renderVerify(rt, rep)
	}
	if rep.Summary.Verdict != verify.Pass {
		return &exitcode.FailError{Reason: fmt.Sprintf("verify: %s (%d of %d modules fail)", rep.Summary.Verdict, rep.Summary.Fail, rep.Summary.Modules)}
	}
	return nil
}

// verifyLocked runs the stage, writes verify.json, appends the history
// and the audit event; the caller holds the lock.
func verifyLocked(rt *Runtime, sd *statedir.Dir, c *VerifyCmd) (*verify.Report, string, error) {
	cfg, err := rt.Config()
	if err != nil {
		return nil, "", err
	}
	ws := rt.WorkspaceDir()
	// What a killed lambda-check left behind: private TMPDIRs, and the
	// orphans of its hosts' process groups.
	logos.SweepTemp()
	track := &logos.Tracker{Dir: sd.File("running")}
	if killed := logos.KillLeftovers(track.Dir); len(killed) > 0 {
		rt.Logf("killed the leftover process groups %v of an earlier, interrupted verify", killed)
		if err := rt.record(sd, audit.Event{Stage: "verify", Result: audit.ResultFail,
			Detail: fmt.Sprintf("killed leftover process groups %v of an interrupted verify", killed)}); err != nil {
			return nil, "", err
		}
	}
	req := verify.Request{Only: c.Module, Deadline: c.Deadline, Parallelism: cfg.Verify.Parallelism}
	if req.Deadline == 0 && cfg.Verify.Deadline != "" {
		req.Deadline, _ = time.ParseDuration(cfg.Verify.Deadline)
	}
	if cfg.Verify.Qt != "" {
		fmt.Sscanf(cfg.Verify.Qt, "%d.%d", &req.QtMajor, &req.QtMinor)
	}
	req.ModulesDir = firstOf(cfg.Path(cfg.Verify.ModulesDir), filepath.Join(ws, "result", "modules"))
	if c.ModulesDir != "" {
		req.ModulesDir = rt.Abs(c.ModulesDir)
	}
	if st, err := os.Stat(req.ModulesDir); err != nil || !st.IsDir() {
		return nil, "", exitcode.Input(fmt.Errorf("no modules directory %s", req.ModulesDir), "build the workspace's modules, or give --modules-dir (verify.modulesDir in the config)")
	}
	configuredHost := cfg.Verify.Host
	if strings.ContainsRune(configuredHost, '/') {
		configuredHost = cfg.Path(configuredHost)
	} else if p, err := exec.LookPath(configuredHost); configuredHost != "" && err == nil {
		configuredHost = p
	}
	hostPath, err := findHost(rt, c.Host, configuredHost, ws)
	if err != nil {
		return nil, "", err
	}
	req.Host = logos.Host{Path: hostPath, Generation: logos.Generation(cfg.Verify.Generation)}
	req.Sandbox.Env = cfg.Verify.Env
	req.Sandbox.Track = track
	if c.Bwrap || cfg.Verify.Bwrap {
		p, err := exec.LookPath("bwrap")
		if err != nil {
			return nil, "", exitcode.Input(errors.New("--bwrap: bubblewrap (bwrap) is not installed"), "install bubblewrap, or verify without it")
		}
		req.Sandbox.Bwrap = p
	}
	// Map modules to the pins they come from, when this is a workspace.
	var snapDigest string
	if snapshot.CheckWorkspace(ws) == nil {
		w, err := snapshotLocked(rt, sd, "")
		if err != nil {
			return nil, "", err
		}
		snapDigest = w.digest
		if lock, err := workspace.ReadLock(w.snapshot); err == nil {
			reg, err := workspace.BuildRegistry(rt.Ctx, workspace.RegistryRequest{Snapshot: w.snapshot, Lock: lock,
				ReadMetadata: policy.MetadataReader(w.snapshot.Root, true)})
			if err == nil {
				req.Registry, req.Snapshot = reg, w.snapshot
			}
		}
	}
	if len(cfg.Verify.Calls) > 0 {
		core := firstOf(c.Logoscore, cfg.Verify.Logoscore, "logoscore")
		if !strings.ContainsRune(core, '/') {
			p, err := exec.LookPath(core)
			if err != nil {
				return nil, "", exitcode.Input(fmt.Errorf("verify.calls need logoscore: %w", err), "give --logoscore or verify.logoscore")
			}
			core = p
		} else {
			core = rt.Abs(core)
		}
		req.Core = &logos.Core{Path: core, Generation: req.Host.Generation}
		for _, cl := range cfg.Verify.Calls {
			req.Calls = append(req.Calls, logos.Call{Module: cl.Module, Method: cl.Method, Args: cl.Args, Expect: cl.Expect})
		}
	}
	if rt.Env.IsTerminal && !rt.Globals.JSON {
		req.Progress = func(done, total int) {
			fmt.Fprintf(rt.Env.Stderr, "\rlambda-check: verify: %d/%d modules", done, total)
			if done == total {
				fmt.Fprintln(rt.Env.Stderr)
			}
		}
	}
	res, err := verify.Run(rt.Ctx, req)
	if err != nil {
		return nil, "", exitcode.Input(err, "")
	}
	rep := &res.Report
	b, digest, err := artifact.Write(sd.File("verify.json"), &artifact.Envelope[*verify.Report]{
		Kind: verify.Spec.Kind, SchemaVersion: verify.Spec.Version, Producer: rt.Producer(),
		Inputs: inputsOf(workspace.SnapshotSpec.Kind, snapDigest), Payload: rep,
	})
	if err != nil {
		return nil, "", err
	}
	if err := appendHistory(rt, sd, rep, digest); err != nil {
		return nil, "", err
	}
	result := audit.ResultOK
	if rep.Summary.Verdict != verify.Pass {
		result = audit.ResultFail
	}
	if err := rt.record(sd, audit.Event{Stage: "verify", Inputs: inputsOf(workspace.SnapshotSpec.Kind, snapDigest),
		Output: output(verify.Spec.Kind, sd.File("verify.json"), b), Result: result,
		Detail: fmt.Sprintf("%s: %d pass, %d fail", rep.Summary.Verdict, rep.Summary.Pass, rep.Summary.Fail)}); err != nil {
		return nil, "", err
	}
	return rep, digest, nil
}

func inputsOf(kind, digest string) []artifact.Input {
	if digest == "" {
		return nil
	}
	return []artifact.Input{{Kind: kind, Digest: digest}}
}

func firstOf(ps ...string) string {
	for _, p := range ps {
		if p != "" {
			return p
		}
	}
	return ""
}

// findHost resolves the host binary: --host, the config, PATH, the
// workspace's result/bin.
func findHost(rt *Runtime, flag, configured, ws string) (string, error) {
	// A bare name is looked up on PATH, as a shell does.
	bare := func(p string) (string, bool) {
		if p == "" || strings.ContainsRune(p, '/') {
			return "", false
		}
		found, err := exec.LookPath(p)
		return found, err == nil
	}
	if flag != "" {
		if p, ok := bare(flag); ok {
			return p, nil
		}
		return rt.Abs(flag), nil
	}
	if configured != "" {
		return configured, nil
	}
	for _, name := range []string{"logos_host_qt", "logos_host"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		if p := filepath.Join(ws, "result", "bin", name); fileExists(p) {
			return p, nil
		}
	}
	return "", exitcode.Input(errors.New("no Logos host: not given (--host, verify.host), not on PATH, not in <workspace>/result/bin"), "build logos-liblogos (logos_host) and point --host at it")
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// HistoryEntry is one module's verdict in one verify run, kept in
// <state-dir>/verify-history.jsonl for heal.
type HistoryEntry struct {
	Run       string `json:"run"` // the verify.json digest
	Time      string `json:"time"`
	Module    string `json:"module"`
	Submodule string `json:"submodule,omitempty"`
	Gitlink   string `json:"gitlink,omitempty"`
	Verdict   string `json:"verdict"`
	Reason    string `json:"reason"`
}

const historyFile = "verify-history.jsonl"

func appendHistory(rt *Runtime, sd *statedir.Dir, rep *verify.Report, digest string) error {
	now, err := rt.Clock()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, m := range rep.Modules {
		b, err := json.Marshal(HistoryEntry{Run: digest, Time: now.UTC().Format(time.RFC3339), Module: m.Name,
			Submodule: m.Submodule, Gitlink: m.Gitlink, Verdict: m.Verdict, Reason: m.Reason})
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	f, err := os.OpenFile(sd.File(historyFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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
