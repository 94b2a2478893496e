package verify

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/logos"
	"github.com/lambda-os/lambda-check/internal/logos/standin"
)

func TestMain(m *testing.M) {
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
	module(t, dir, standin.Plugin{Name: "waku_module"}, false)
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
		assert.DeepEqual(t, got, map[string]string{
			"chat_module":    "pass ready",
			"waku_module":    "pass ready",
			"segv_module":    "fail crashed",
			"hang_module":    "fail hang",
			"newqt_module":   "fail qt-mismatch",
			"plain_module":   "fail not-a-plugin",
			"lonely_module":  "fail missing-dependency",
			"renamed_module": "fail main-mismatch",
			"wallet_module":  "fail name-mismatch",
		})
		assert.DeepEqual(t, res.Report.Summary, Summary{Modules: 9, Pass: 2, Fail: 7, Verdict: Fail})
	}

	res, err := Run(context.Background(), Request{ModulesDir: t.TempDir(), Host: logos.Host{Path: "/bin/true", Generation: logos.March}})
	assert.NilError(t, err)
	assert.Equal(t, res.Report.Summary.Verdict, Unknown)

	h, sb := host(t, logos.March)
	_, err = Run(context.Background(), Request{ModulesDir: dir, Host: h, Sandbox: sb, Only: []string{"nope"}})
	assert.ErrorContains(t, err, "no module nope")
}

// Calls through logoscore: a wrong result fails the module.
func TestCalls(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	module(t, dir, standin.Plugin{Name: "chat_module"}, true)
	module(t, dir, standin.Plugin{Name: "waku_module"}, true)
	h, sb := host(t, logos.August)
	exe, _ := os.Executable()
	sb.Env = append(sb.Env, "LAMBDA_CHECK_TEST_CORE=august")
	res, err := Run(context.Background(), Request{ModulesDir: dir, Host: h, Sandbox: sb,
		Core:  &logos.Core{Path: exe, Generation: logos.August},
		Calls: []logos.Call{{Module: "chat_module", Method: "ping", Expect: "pong"}, {Module: "waku_module", Method: "refuse", Expect: "true"}}})
	assert.NilError(t, err)
	got := map[string]string{}
	for _, m := range res.Report.Modules {
		got[m.Name] = m.Verdict + " " + m.Reason
	}
	assert.DeepEqual(t, got, map[string]string{"chat_module": "pass ready", "waku_module": "fail call-failed"})
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

// TestRealRuntime verifies the modules of LAMBDA_CHECK_MODULES_DIR with
// the real host of LAMBDA_CHECK_LOGOS_HOST. It is skipped with the reason
// when they are not set: the runtime is not built here.
func TestRealRuntime(t *testing.T) {
	hostPath, mods := os.Getenv("LAMBDA_CHECK_LOGOS_HOST"), os.Getenv("LAMBDA_CHECK_MODULES_DIR")
	if hostPath == "" || mods == "" {
		t.Skip("skipped: set LAMBDA_CHECK_LOGOS_HOST to a real logos_host or logos_host_qt and LAMBDA_CHECK_MODULES_DIR to built modules to verify them")
	}
	res, err := Run(context.Background(), Request{ModulesDir: mods, Host: logos.Host{Path: hostPath}})
	assert.NilError(t, err)
	for _, m := range res.Report.Modules {
		t.Logf("%s: %s %s", m.Name, m.Verdict, m.Reason)
	}
	assert.Assert(t, res.Report.Summary.Modules > 0)
	// Nothing of the host is left running.
	out, _ := exec.Command("pgrep", "-f", hostPath).Output()
	assert.Equal(t, strings.TrimSpace(string(out)), "", "host processes left running")
}
