// Package verify is the verify stage: every module in a modules directory
// is checked statically (its Qt plugin metadata: a plugin at all, the Qt
// version against the host's, the module name, the plugin file name, its
// dependencies present) and then loaded through the Logos runtime host,
// in parallel, each in its own sandbox. A module passes only on the host's
// readiness signal; no module found is "unknown", never healthy.
package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/logos"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// Spec identifies the verify artifact.
var Spec = artifact.Spec{Kind: artifact.KindPrefix + "verify", Version: 1}

// Verdicts.
const (
	Pass    = "pass"
	Fail    = "fail"
	Unknown = "unknown"
)

// Static reasons (before any process runs), and a failed call.
const (
	ReasonCallFailed        = "call-failed"
	ReasonMainMismatch      = "main-mismatch"
	ReasonMissingDependency = "missing-dependency"
	ReasonNoPlugin          = "no-plugin"
	// ReasonNotDiscoverable: the module has no manifest.json, and March
	// logoscore finds modules by their manifest.json only.
	ReasonNotDiscoverable = "not-discoverable"
)

// Request says what to verify.
type Request struct {
	// Progress, when set, is called after each module (from the loads'
	// goroutines, one call at a time).
	Progress func(done, total int)

	ModulesDir string
	Host       logos.Host // Generation "" is detected
	Sandbox    logos.Sandbox
	// Only, when set, limits the run to these module names.
	Only []string
	// Deadline bounds each load (default 10 s).
	Deadline    time.Duration
	Parallelism int
	// QtMajor and QtMinor are the host's Qt version; a plugin built
	// against a newer minor is refused statically. Zero: not checked.
	QtMajor, QtMinor int
	// Snapshot and Registry map modules to the submodules (and gitlinks)
	// they come from, for heal; nil leaves them unmapped.
	Registry *workspace.Registry
	Snapshot *workspace.Snapshot
	// Core and Calls: after the loads, these calls are made through
	// logoscore on the modules that loaded, and their results checked.
	Core  *logos.Core
	Calls []logos.Call
}

// Report is the payload of verify.json.
type Report struct {
	Host       logos.Host `json:"host"`
	ModulesDir string     `json:"modulesDir"`
	Modules    []Module   `json:"modules"`
	Summary    Summary    `json:"summary"`
}

// Summary counts verdicts; Verdict is fail when any module fails, unknown
// when there was none.
type Summary struct {
	Modules int    `json:"modules"`
	Pass    int    `json:"pass"`
	Fail    int    `json:"fail"`
	Verdict string `json:"verdict"`
	Reason  string `json:"reason,omitempty"`
}

// Module is one module's result.
type Module struct {
	Name         string `json:"name"`
	Dir          string `json:"dir"`
	Plugin       string `json:"plugin"`
	PluginDigest string `json:"pluginDigest,omitempty"`
	// Submodule and Gitlink: where the module's source is pinned.
	Submodule string             `json:"submodule,omitempty"`
	Gitlink   string             `json:"gitlink,omitempty"`
	Static    Static             `json:"static"`
	Load      *logos.LoadResult  `json:"load,omitempty"`
	Calls     []logos.CallResult `json:"calls,omitempty"`
	Verdict   string             `json:"verdict"`
	Reason    string             `json:"reason"`

	// undiscoverable says why logoscore would not find the module (no
	// manifest.json); it fails once the plugin's own checks pass.
	undiscoverable string
}

// Static is the check of the plugin file.
type Static struct {
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
	Qt     string `json:"qt,omitempty"`
	IID    string `json:"iid,omitempty"`
}

// Result is the stage's outcome.
type Result struct {
	Report Report
}

type manifest struct {
	Name string          `json:"name"`
	Main json.RawMessage `json:"main"`
}

// variants are the manifest "main" keys for this machine.
func variants() []string {
	arch := map[string][]string{"amd64": {"x86_64", "amd64"}, "arm64": {"aarch64", "arm64"}}[runtime.GOARCH]
	if arch == nil {
		arch = []string{runtime.GOARCH}
	}
	var out []string
	for _, a := range arch {
		out = append(out, runtime.GOOS+"-"+a)
	}
	return out
}

// Discover finds the modules of a modules directory: <dir>/<x>/manifest.json
// (main per platform variant) or the <x>/<x>_plugin.so layout.
func Discover(dir string) ([]Module, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Module
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		mdir := filepath.Join(dir, e.Name())
		m := Module{Name: e.Name(), Dir: mdir}
		b, err := os.ReadFile(filepath.Join(mdir, "manifest.json"))
		switch {
		case err == nil:
			var mf manifest
			if err := json.Unmarshal(b, &mf); err != nil {
				m.Static = Static{Reason: ReasonNoPlugin, Detail: "manifest.json: " + err.Error()}
				out = append(out, m)
				continue
			}
			if mf.Name != "" {
				m.Name = mf.Name
			}
			var main string
			var byVariant map[string]string
			if json.Unmarshal(mf.Main, &main) != nil && json.Unmarshal(mf.Main, &byVariant) == nil {
				for _, v := range variants() {
					if p, ok := byVariant[v]; ok {
						main = p
						break
					}
				}
			}
			if main == "" {
				m.Static = Static{Reason: ReasonNoPlugin, Detail: fmt.Sprintf("manifest.json names no plugin for %s", strings.Join(variants(), " or "))}
				out = append(out, m)
				continue
			}
			if filepath.Base(main) != main {
				m.Static = Static{Reason: ReasonNoPlugin, Detail: fmt.Sprintf("manifest.json main %q is not a file name", main)}
				out = append(out, m)
				continue
			}
			m.Plugin = filepath.Join(mdir, main)
		case errors.Is(err, os.ErrNotExist):
			p := filepath.Join(mdir, e.Name()+"_plugin.so")
			if _, err := os.Stat(p); err != nil {
				continue // not a module directory
			}
			m.Plugin = p
			m.undiscoverable = fmt.Sprintf("%s has no manifest.json: logoscore finds a module only by <modules dir>/<module>/manifest.json naming its plugin (%s)", mdir, filepath.Base(p))
		default:
			return nil, err
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Run verifies the modules.
func Run(ctx context.Context, req Request) (*Result, error) {
	if req.Deadline <= 0 {
		req.Deadline = 10 * time.Second
	}
	if req.Parallelism <= 0 {
		req.Parallelism = 2 * runtime.GOMAXPROCS(0)
	}
	if req.Host.Generation == "" {
		g, err := logos.DetectGeneration(ctx, req.Host.Path, req.Sandbox)
		if err != nil {
			return nil, err
		}
		req.Host.Generation = g
	}
	if req.Core != nil && req.Core.Generation == "" {
		c := *req.Core
		c.Generation = req.Host.Generation // logoscore comes with its host
		req.Core = &c
	}
	mods, err := Discover(req.ModulesDir)
	if err != nil {
		return nil, fmt.Errorf("modules dir: %w", err)
	}
	// Dependencies count when they are in the modules dir, also those
	// --module leaves out.
	names := map[string]bool{}
	for _, m := range mods {
		names[m.Name] = true
	}
	if len(req.Only) > 0 {
		want := map[string]bool{}
		for _, n := range req.Only {
			want[n] = true
		}
		kept := mods[:0]
		for _, m := range mods {
			if want[m.Name] {
				kept = append(kept, m)
				delete(want, m.Name)
			}
		}
		if len(want) > 0 {
			var missing []string
			for n := range want {
				missing = append(missing, n)
			}
			sort.Strings(missing)
			return nil, fmt.Errorf("no module %s in %s", strings.Join(missing, ", "), req.ModulesDir)
		}
		mods = kept
	}
	source := map[string]*workspace.Repo{}
	if req.Registry != nil {
		for i, r := range req.Registry.Repos {
			if r.Module != nil {
				source[r.Module.Name] = &req.Registry.Repos[i]
			}
		}
	}
	// Parallelism bounds the loads that start at once (CPU work: a process
	// and Qt's start-up); a ready load's settle time and stop are waiting,
	// so four times as many may be in flight.
	if req.Sandbox.Starting == nil {
		req.Sandbox.Starting = make(chan struct{}, req.Parallelism)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4 * req.Parallelism)
	var progressMu sync.Mutex
	progressDone := 0
	for i := range mods {
		m := &mods[i]
		if r := source[m.Name]; r != nil {
			m.Submodule = r.Path
			if req.Snapshot != nil {
				if s := req.Snapshot.Submodule(r.Path); s != nil {
					m.Gitlink = s.Gitlink
				}
			}
		}
		g.Go(func() error {
			verifyOne(gctx, req, m, names)
			if req.Progress != nil {
				progressMu.Lock()
				progressDone++
				req.Progress(progressDone, len(mods))
				progressMu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := runCalls(ctx, req, mods); err != nil {
		return nil, err
	}
	rep := Report{Host: req.Host, ModulesDir: req.ModulesDir, Modules: mods}
	if rep.Modules == nil {
		rep.Modules = []Module{}
	}
	for _, m := range mods {
		rep.Summary.Modules++
		if m.Verdict == Pass {
			rep.Summary.Pass++
		} else {
			rep.Summary.Fail++
		}
	}
	switch {
	case rep.Summary.Modules == 0:
		rep.Summary.Verdict, rep.Summary.Reason = Unknown, "no module found: nothing verified is never healthy"
	case rep.Summary.Fail > 0:
		rep.Summary.Verdict = Fail
	default:
		rep.Summary.Verdict = Pass
	}
	return &Result{Report: rep}, nil
}

func verifyOne(ctx context.Context, req Request, m *Module, names map[string]bool) {
	fail := func(reason, detail string) {
		m.Static.OK, m.Static.Reason, m.Static.Detail = false, reason, detail
		m.Verdict, m.Reason = Fail, reason
	}
	if m.Static.Reason != "" {
		m.Verdict, m.Reason = Fail, m.Static.Reason
		return
	}
	if d, err := artifact.DigestFile(m.Plugin); err == nil {
		m.PluginDigest = d
	} else {
		fail(ReasonNoPlugin, err.Error())
		return
	}
	f, err := os.Open(m.Plugin)
	if err != nil {
		fail(ReasonNoPlugin, err.Error())
		return
	}
	meta, err := logos.ReadPluginMeta(f)
	f.Close()
	if err != nil {
		fail(logos.ReasonNotPlugin, err.Error())
		return
	}
	m.Static.Qt = fmt.Sprintf("%d.%d", meta.QtMajor, meta.QtMinor)
	m.Static.IID = meta.IID
	switch {
	case req.QtMajor > 0 && (meta.QtMajor != req.QtMajor || meta.QtMinor > req.QtMinor):
		fail(logos.ReasonQtMismatch, fmt.Sprintf("built against Qt %d.%d; the host has Qt %d.%d", meta.QtMajor, meta.QtMinor, req.QtMajor, req.QtMinor))
		return
	case meta.Name() != m.Name:
		fail(logos.ReasonNameMismatch, fmt.Sprintf("the plugin's metadata names %q, the module is %q", meta.Name(), m.Name))
		return
	case meta.Main() != "" && meta.Main() != strings.TrimSuffix(filepath.Base(m.Plugin), ".so"):
		fail(ReasonMainMismatch, fmt.Sprintf("metadata main is %q, the file is %s", meta.Main(), filepath.Base(m.Plugin)))
		return
	}
	var missing []string
	for _, d := range meta.Dependencies() {
		if !names[d] {
			missing = append(missing, d)
		}
	}
	if len(missing) > 0 {
		fail(ReasonMissingDependency, "needs "+strings.Join(missing, ", ")+", not in the modules dir")
		return
	}
	if m.undiscoverable != "" {
		fail(ReasonNotDiscoverable, m.undiscoverable)
		return
	}
	m.Static.OK = true
	res := req.Host.Load(ctx, m.Name, m.Plugin, req.Deadline, req.Sandbox)
	if res.Reason == logos.ReasonQtMismatch && req.QtMajor > 0 {
		res.Detail += fmt.Sprintf("; the host's Qt is %d.%d (verify.qt)", req.QtMajor, req.QtMinor)
	}
	m.Load = &res
	m.Verdict, m.Reason = res.Verdict, res.Reason
}

// runCalls makes the configured calls through logoscore on the modules
// that loaded; a call that fails or returns another result fails its
// module.
func runCalls(ctx context.Context, req Request, mods []Module) error {
	if req.Core == nil || len(req.Calls) == 0 {
		return nil
	}
	byName := map[string]*Module{}
	for i := range mods {
		byName[mods[i].Name] = &mods[i]
	}
	var calls []logos.Call
	var load []string
	seen := map[string]bool{}
	for _, c := range req.Calls {
		m := byName[c.Module]
		if m == nil {
			return fmt.Errorf("a call names module %s, which is not in the modules dir", c.Module)
		}
		if m.Verdict != Pass {
			continue
		}
		calls = append(calls, c)
		if !seen[c.Module] {
			seen[c.Module] = true
			load = append(load, c.Module)
		}
	}
	if len(calls) == 0 {
		return nil
	}
	// One logoscore run per module: a failing call fails its own module,
	// never another's.
	results := make([][]logos.CallResult, len(load))
	errs := make([]error, len(load))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(req.Parallelism)
	for i, name := range load {
		var mine []logos.Call
		for _, c := range calls {
			if c.Module == name {
				mine = append(mine, c)
			}
		}
		g.Go(func() error {
			results[i], errs[i] = req.Core.Calls(gctx, req.ModulesDir, []string{name}, mine, 2*req.Deadline+5*time.Second, req.Sandbox)
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, name := range load {
		m := byName[name]
		if errs[i] != nil {
			m.Verdict, m.Reason = Fail, ReasonCallFailed
			m.Calls = append(m.Calls, logos.CallResult{Error: "logoscore: " + errs[i].Error()})
			continue
		}
		for _, r := range results[i] {
			m.Calls = append(m.Calls, r)
			if !r.OK {
				m.Verdict, m.Reason = Fail, ReasonCallFailed
			}
		}
	}
	return nil
}
