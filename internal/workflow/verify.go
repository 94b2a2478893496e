package workflow

import (
	"context"
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
	"github.com/lambda-os/lambda-check/internal/stage/heal"
	"github.com/lambda-os/lambda-check/internal/stage/policy"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/stage/verify"
	"github.com/lambda-os/lambda-check/internal/statedir"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// VerifyOptions override the configuration's verify section. Paths are
// absolute; a host or logoscore given as a bare name is looked up on PATH.
type VerifyOptions struct {
	ModulesDir string
	Host       string
	Modules    []string
	Deadline   time.Duration
	Bwrap      bool
	Logoscore  string
	// Snap maps modules to their pins; nil takes a new snapshot when the
	// workspace is one.
	Snap *Snap
}

// VerifyResult is a verify run as written.
type VerifyResult struct {
	Report *verify.Report
	Written
}

// ModulesDir is where the built modules are: verify.modulesDir, else
// <workspace>/result/modules.
func ModulesDir(e *Env) string {
	return firstOf(e.Config.Path(e.Config.Verify.ModulesDir), filepath.Join(e.Workspace, "result", "modules"))
}

// Verify loads every module through the Logos host and writes verify.json,
// the per-module history heal reads, and the audit event.
func Verify(ctx context.Context, e *Env, o VerifyOptions) (*VerifyResult, error) {
	if err := e.mustHold(); err != nil {
		return nil, err
	}
	cfg := e.Config
	// What a killed lambda-check left behind: private TMPDIRs, and the
	// orphans of its hosts' process groups.
	logos.SweepTemp()
	track := &logos.Tracker{Dir: e.File("running")}
	if killed := logos.KillLeftovers(track.Dir); len(killed) > 0 {
		e.Logf("killed the leftover process groups %v of an earlier, interrupted verify", killed)
		if err := e.Record(audit.Event{Stage: "verify", Result: audit.ResultFail,
			Detail: fmt.Sprintf("killed leftover process groups %v of an interrupted verify", killed)}); err != nil {
			return nil, err
		}
	}
	req := verify.Request{Only: o.Modules, Deadline: o.Deadline, Parallelism: cfg.Verify.Parallelism,
		ModulesDir: firstOf(o.ModulesDir, ModulesDir(e))}
	if req.Deadline == 0 {
		req.Deadline = cfg.VerifyDeadline()
	}
	if cfg.Verify.Qt != "" {
		fmt.Sscanf(cfg.Verify.Qt, "%d.%d", &req.QtMajor, &req.QtMinor)
	}
	if st, err := os.Stat(req.ModulesDir); err != nil || !st.IsDir() {
		return nil, exitcode.Input(fmt.Errorf("no modules directory %s", req.ModulesDir), "build the workspace's modules, or give --modules-dir (verify.modulesDir in the config)")
	}
	configured := cfg.Verify.Host
	if strings.ContainsRune(configured, '/') {
		configured = cfg.Path(configured)
	} else if p, err := exec.LookPath(configured); configured != "" && err == nil {
		configured = p
	}
	hostPath, err := FindHost(o.Host, configured, e.Workspace)
	if err != nil {
		return nil, err
	}
	req.Host = logos.Host{Path: hostPath, Generation: logos.Generation(cfg.Verify.Generation)}
	req.Sandbox.Env = cfg.Verify.Env
	req.Sandbox.Path = e.getenv("PATH")
	req.Sandbox.Track = track
	req.Sandbox.Settle = cfg.VerifySettle()
	if o.Bwrap || cfg.Verify.Bwrap {
		p, err := exec.LookPath("bwrap")
		if err != nil {
			return nil, exitcode.Input(errors.New("--bwrap: bubblewrap (bwrap) is not installed"), "install bubblewrap, or verify without it")
		}
		req.Sandbox.Bwrap = p
	}
	// Map modules to the pins they come from, when this is a workspace.
	snap := o.Snap
	if snap == nil && snapshot.CheckWorkspace(e.Workspace) == nil {
		if snap, err = TakeSnapshot(ctx, e, ""); err != nil {
			return nil, err
		}
	}
	if snap != nil {
		if lock, err := workspace.ReadLock(snap.Snapshot); err == nil {
			reg, err := workspace.BuildRegistry(ctx, workspace.RegistryRequest{Snapshot: snap.Snapshot, Lock: lock,
				ReadMetadata: policy.MetadataReader(snap.Snapshot.Root, true)})
			if err == nil {
				req.Registry, req.Snapshot = reg, snap.Snapshot
			}
		}
	}
	if len(cfg.Verify.Calls) > 0 {
		core := firstOf(o.Logoscore, cfg.Verify.Logoscore, "logoscore")
		if !strings.ContainsRune(core, '/') {
			p, err := exec.LookPath(core)
			if err != nil {
				return nil, exitcode.Input(fmt.Errorf("verify.calls need logoscore: %w", err), "give --logoscore or verify.logoscore")
			}
			core = p
		}
		req.Core = &logos.Core{Path: core, Generation: req.Host.Generation}
		for _, cl := range cfg.Verify.Calls {
			req.Calls = append(req.Calls, logos.Call{Module: cl.Module, Method: cl.Method, Args: cl.Args, Expect: cl.Expect})
		}
	}
	req.Progress = func(done, total int) { e.progress("verify", done, total) }
	res, err := verify.Run(ctx, req)
	if err != nil {
		return nil, exitcode.Input(err, "")
	}
	rep := &res.Report
	var inputs []artifact.Input
	if snap != nil {
		inputs = snap.Inputs()
	}
	ev := audit.Event{Stage: "verify", Detail: fmt.Sprintf("%s: %d pass, %d fail", rep.Summary.Verdict, rep.Summary.Pass, rep.Summary.Fail)}
	if rep.Summary.Verdict != verify.Pass {
		ev.Result = audit.ResultFail
	}
	w, err := writeArtifact(e, verify.Spec, e.File("verify.json"), inputs, rep, ev)
	if err != nil {
		return nil, err
	}
	if err := appendHistory(e, rep, w.Digest); err != nil {
		return nil, err
	}
	return &VerifyResult{Report: rep, Written: w}, nil
}

// VerifyVerdict fails when a module fails, or when there is none.
func VerifyVerdict(r *verify.Report) error {
	if r.Summary.Verdict != verify.Pass {
		return &exitcode.FailError{Reason: fmt.Sprintf("verify: %s (%d of %d modules fail)", r.Summary.Verdict, r.Summary.Fail, r.Summary.Modules)}
	}
	return nil
}

// FindHost resolves the host binary: the flag (a bare name is looked up
// on PATH), the configured one, PATH, the workspace's result/bin.
func FindHost(flag, configured, ws string) (string, error) {
	if flag != "" {
		if !strings.ContainsRune(flag, '/') {
			if p, err := exec.LookPath(flag); err == nil {
				return p, nil
			}
		}
		return flag, nil
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
// <state-dir>/verify-history.jsonl for heal and the report.
type HistoryEntry struct {
	Run       string `json:"run"` // the verify.json digest
	Time      string `json:"time"`
	Module    string `json:"module"`
	Submodule string `json:"submodule,omitempty"`
	Gitlink   string `json:"gitlink,omitempty"`
	Verdict   string `json:"verdict"`
	Reason    string `json:"reason"`
}

func appendHistory(e *Env, rep *verify.Report, digest string) error {
	now := e.Now().UTC().Format(time.RFC3339)
	recs := make([]any, len(rep.Modules))
	for i, m := range rep.Modules {
		recs[i] = HistoryEntry{Run: digest, Time: now, Module: m.Name,
			Submodule: m.Submodule, Gitlink: m.Gitlink, Verdict: m.Verdict, Reason: m.Reason}
	}
	if len(recs) == 0 {
		return nil
	}
	return statedir.Journal{Path: e.File(HistoryFile)}.Append(recs...)
}

// ReadHistory reads the verify history; lines that do not decode (torn by
// a crash) are skipped and counted.
func ReadHistory(p string) ([]HistoryEntry, int, error) {
	return statedir.ReadJournal(statedir.Journal{Path: p}, func(h *HistoryEntry) bool { return h.Module != "" })
}

// healEntries are the history as heal reads it.
func healEntries(h []HistoryEntry) []heal.Entry {
	out := make([]heal.Entry, len(h))
	for i, e := range h {
		out[i] = heal.Entry{Run: e.Run, Module: e.Module, Submodule: e.Submodule, Gitlink: e.Gitlink, Verdict: e.Verdict, Reason: e.Reason}
	}
	return out
}
