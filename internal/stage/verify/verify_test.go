package verify

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambda-os/lambda-check/internal/proc"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/logos"
	"github.com/lambda-os/lambda-check/internal/logos/standin"
)

func TestMain(m *testing.M) {
	if proc.IsSupervisor() {
		proc.SuperviseMain()
	}
	// (The core's sandbox carries both variables: it is asked first.)
	if g := os.Getenv("LAMBDA_CHECK_TEST_CORE"); g != "" && !strings.Contains(strings.Join(os.Args, " "), "--name") && !strings.Contains(strings.Join(os.Args, " "), "-n ") && !isHelp() {
		standin.CoreMain(g)
		os.Exit(0)
	}
	if g := os.Getenv("LAMBDA_CHECK_TEST_HOST"); g != "" {
		standin.HostMain(g)
	}
	os.Exit(m.Run())
}

func host(t testing.TB, g logos.Generation) (logos.Host, logos.Sandbox) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return logos.Host{Path: exe, Generation: g}, logos.Sandbox{Env: []string{"LAMBDA_CHECK_TEST_HOST=" + string(g)}}
}

// module writes a module directory: manifest layout when manifest, else
// <name>/<name>_plugin.so.
func module(t testing.TB, dir string, p standin.Plugin, manifest bool) {
	md := filepath.Join(dir, p.Name)
	if err := os.MkdirAll(md, 0o755); err != nil {
		t.Fatal(err)
	}
	if p.Main == "" {
		p.Main = p.Name + "_plugin"
	}
	if p.QtMajor == 0 {
		p.QtMajor, p.QtMinor = 6, 4
	}
	file := p.Name + "_plugin.so"
	if manifest {
		file = p.Main + ".so"
		m := fmt.Sprintf(`{"name": %q, "version": "0.0.1", "main": {"linux-amd64": %q, "linux-x86_64": %q, "linux-arm64": %q, "linux-aarch64": %q}}`, p.Name, file, file, file, file)
		if err := os.WriteFile(filepath.Join(md, "manifest.json"), []byte(m), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := standin.WritePlugin(filepath.Join(md, file), p); err != nil {
		t.Fatal(err)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	module(t, dir, standin.Plugin{Name: "chat_module", Dependencies: []string{"waku_module"}}, true)
	module(t, dir, standin.Plugin{Name: "waku_module"}, true)
	module(t, dir, standin.Plugin{Name: "nomanifest_module"}, false)
	module(t, dir, standin.Plugin{Name: "segv_module"}, true)
	module(t, dir, standin.Plugin{Name: "hang_module"}, true)
	module(t, dir, standin.Plugin{Name: "newqt_module", QtMajor: 6, QtMinor: 8}, true)
	module(t, dir, standin.Plugin{Name: "plain_module", NoNote: true}, false)
	module(t, dir, standin.Plugin{Name: "lonely_module", Dependencies: []string{"gone_module"}}, true)
	module(t, dir, standin.Plugin{Name: "renamed_module", Main: "other_plugin"}, false)
	// A plugin whose embedded metadata names another module.
	md := filepath.Join(dir, "wallet_module")
	assert.NilError(t, os.MkdirAll(md, 0o755))
	assert.NilError(t, standin.WritePlugin(filepath.Join(md, "wallet_module_plugin.so"), standin.Plugin{Name: "accounts_module", QtMajor: 6, QtMinor: 4}))
	assert.NilError(t, os.MkdirAll(filepath.Join(dir, "docs"), 0o755)) // not a module

	for _, g := range []logos.Generation{logos.March, logos.August} {
		h, sb := host(t, g)
		h.Generation = "" // detected
		res, err := Run(context.Background(), Request{ModulesDir: dir, Host: h, Sandbox: sb, QtMajor: 6, QtMinor: 4, Deadline: 2 * time.Second})
		assert.NilError(t, err)
		assert.Equal(t, res.Report.Host.Generation, g)
		got := map[string]string{}
		for _, m := range res.Report.Modules {
			got[m.Name] = m.Verdict + " " + m.Reason
		}
		// The March host's output says where it crashed; August's does not.
		segv := "fail crashed-in-constructor"
		if g == logos.August {
			segv = "fail crashed"
		}
		assert.DeepEqual(t, got, map[string]string{
			"chat_module":    "pass ready",
			"waku_module":    "pass ready",
			"segv_module":    segv,
			"hang_module":    "fail hang",
			"newqt_module":   "fail qt-mismatch",
			"plain_module":   "fail not-a-plugin",
			"lonely_module":  "fail missing-dependency",
			"renamed_module": "fail main-mismatch",
			"wallet_module":  "fail name-mismatch",
			// Good, but March logoscore would not find it.
			"nomanifest_module": "fail not-discoverable",
		})
		assert.DeepEqual(t, res.Report.Summary, Summary{Modules: 10, Pass: 2, Fail: 8, Verdict: Fail})
		// --module: its dependency is in the modules dir, not in the run.
		res, err = Run(context.Background(), Request{ModulesDir: dir, Host: h, Sandbox: sb, Only: []string{"chat_module"}, Deadline: 2 * time.Second})
		assert.NilError(t, err)
		assert.Equal(t, len(res.Report.Modules), 1)
		assert.Equal(t, res.Report.Modules[0].Verdict+" "+res.Report.Modules[0].Reason, "pass ready", "%+v", res.Report.Modules[0].Static)
	}

	res, err := Run(context.Background(), Request{ModulesDir: t.TempDir(), Host: logos.Host{Path: "/bin/true", Generation: logos.March}})
	assert.NilError(t, err)
	assert.Equal(t, res.Report.Summary.Verdict, Unknown)

	h, sb := host(t, logos.March)
	_, err = Run(context.Background(), Request{ModulesDir: dir, Host: h, Sandbox: sb, Only: []string{"nope"}})
	assert.ErrorContains(t, err, "no module nope")
}

// Calls through logoscore: a wrong result fails its module, and only
// its module (the failing call comes first, as on the real workspace).
func TestCalls(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	module(t, dir, standin.Plugin{Name: "chat_module"}, true)
	module(t, dir, standin.Plugin{Name: "waku_module"}, true)
	for _, g := range []logos.Generation{logos.March, logos.August} {
		h, sb := host(t, g)
		exe, _ := os.Executable()
		sb.Env = append(sb.Env, "LAMBDA_CHECK_TEST_CORE="+string(g))
		res, err := Run(context.Background(), Request{ModulesDir: dir, Host: h, Sandbox: sb,
			Core: &logos.Core{Path: exe, Generation: g},
			Calls: []logos.Call{{Module: "waku_module", Method: "refuse", Expect: "true"},
				{Module: "chat_module", Method: "ping", Expect: "pong"},
				{Module: "chat_module", Method: "echo", Args: []string{"a,b"}, Expect: "a,b"}}})
		assert.NilError(t, err)
		got := map[string]string{}
		for _, m := range res.Report.Modules {
			got[m.Name] = m.Verdict + " " + m.Reason
		}
		assert.DeepEqual(t, got, map[string]string{"chat_module": "pass ready", "waku_module": "fail call-failed"})
	}
}

// Fifty modules load in a small multiple of one load: parallel loads and
// readiness detection, no sleeps.
func BenchmarkVerify50(b *testing.B) {
	dir := b.TempDir()
	for i := range 50 {
		module(b, dir, standin.Plugin{Name: fmt.Sprintf("m%02d_module", i)}, true)
	}
	h, sb := host(b, logos.August)
	for b.Loop() {
		res, err := Run(context.Background(), Request{ModulesDir: dir, Host: h, Sandbox: sb})
		if err != nil || res.Report.Summary.Pass != 50 {
			b.Fatalf("%v %+v", err, res.Report.Summary)
		}
	}
}

func isHelp() bool { return len(os.Args) == 2 && os.Args[1] == "--help" }

// TestBenchReport prints the figure docs/performance.md records: fifty
// modules verified against one, with the stand-in host (a real process per
// load, the protocol's handshake and ready line). It runs only when
// LAMBDA_CHECK_BENCH=1, and asserts nothing about time.
func TestBenchReport(t *testing.T) {
	if os.Getenv("LAMBDA_CHECK_BENCH") != "1" {
		t.Skip("skipped: set LAMBDA_CHECK_BENCH=1 to measure (see docs/performance.md)")
	}
	fmt.Printf("| generation | 1 module | 50 modules | ratio | earlier tool, 50 modules |\n|---|---|---|---|---|\n")
	for _, g := range []logos.Generation{logos.March, logos.August} {
		one, fifty := t.TempDir(), t.TempDir()
		module(t, one, standin.Plugin{Name: "m00_module"}, true)
		for i := range 50 {
			module(t, fifty, standin.Plugin{Name: fmt.Sprintf("m%02d_module", i)}, true)
		}
		h, sb := host(t, g)
		run := func(dir string) time.Duration {
			var best time.Duration
			for i := range 3 {
				start := time.Now()
				res, err := Run(context.Background(), Request{ModulesDir: dir, Host: h, Sandbox: sb})
				d := time.Since(start)
				if err != nil || res.Report.Summary.Fail > 0 {
					t.Fatalf("%v %+v", err, res.Report.Summary)
				}
				if i == 0 || d < best {
					best = d
				}
			}
			return best
		}
		a, b := run(one), run(fifty)
		fmt.Printf("| %s | %.0f ms | %.0f ms | %.1fx | 250 s (5 s per module) |\n", g, float64(a.Microseconds())/1000, float64(b.Microseconds())/1000, float64(b)/float64(a))
	}
}
