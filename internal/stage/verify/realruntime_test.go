package verify

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/logos"
)

// TestRealRuntime runs verify on the real Logos runtime with a fixture
// module for every failure class (internal/logos/testdata/fixtures, built
// against the same runtime's SDK). Opt-in, since the runtime is built from
// the workspace's pins (../shared/testbed/logos-runtime/build.sh), which
// CI cannot fetch:
//
//	LAMBDA_CHECK_REAL_HOST      the March logos_host (logoscore beside it)
//	LAMBDA_CHECK_REAL_FIXTURES  the fixtures' build dir (its modules/)
//	LAMBDA_CHECK_REAL_MODULES   optional: real modules, each <dir>/<name>/
func TestRealRuntime(t *testing.T) {
	hostPath, fixtures := os.Getenv("LAMBDA_CHECK_REAL_HOST"), os.Getenv("LAMBDA_CHECK_REAL_FIXTURES")
	if hostPath == "" || fixtures == "" {
		t.Skip("skipped: LAMBDA_CHECK_REAL_HOST and LAMBDA_CHECK_REAL_FIXTURES are not set (the real March runtime and the fixtures built against it; CI cannot build them)")
	}
	dir := realModules(t, fixtures, os.Getenv("LAMBDA_CHECK_REAL_MODULES"))
	want := map[string]string{
		"fx_good":            "pass ready",
		"fx_dep":             "fail call-failed", // loads (its dependency is there); its call names no method
		"fx_segvctor":        "fail crashed-in-constructor",
		"fx_segvinit":        "fail crashed-in-init",
		"fx_abort":           "fail crashed-in-constructor",
		"fx_throw":           "fail uncaught-exception",
		"fx_exit0":           "fail exited-before-ready",
		"fx_exit3":           "fail exited-before-ready",
		"fx_hang":            "fail hang",
		"fx_fakeready":       "fail fake-ready",
		"fx_crashafterready": "fail crashed-after-ready",
		"fx_badname":         "fail name-mismatch",
		"fx_nointerface":     "fail not-plugin-interface",
		"fx_missinglib":      "fail missing-library",
		"fx_qtnewer":         "fail qt-mismatch",
		"fx_daemonstdio":     "fail left-running",
		"fx_daemonclosed":    "fail left-running",
		"fx_blocksignals":    "fail hang",
		"fx_forkcrash":       "fail crashed-in-constructor",
		"fx_nomanifest":      "fail not-discoverable",
		"fx_notplugin":       "fail not-a-plugin",
	}
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			if _, ok := want[e.Name()]; !ok {
				want[e.Name()] = "pass ready"
			}
		}
	}
	sandboxes := []string{""}
	if bw, err := exec.LookPath("bwrap"); err == nil {
		sandboxes = append(sandboxes, bw)
	}
	for _, bw := range sandboxes {
		name := "plain"
		if bw != "" {
			name = "bwrap"
		}
		t.Run(name, func(t *testing.T) {
			marker := fmt.Sprintf("LAMBDA_CHECK_REAL_RUN=%s-%d", name, os.Getpid())
			sb := logos.Sandbox{Bwrap: bw, Env: []string{marker}}
			core := &logos.Core{Path: filepath.Join(filepath.Dir(hostPath), "logoscore")}
			req := Request{ModulesDir: dir, Host: logos.Host{Path: hostPath}, Sandbox: sb, Deadline: 5 * time.Second, Core: core,
				Calls: []logos.Call{
					{Module: "fx_good", Method: "echo", Args: []string{`a,b 'c' "d"`}, Expect: `a,b 'c' "d"`},
					{Module: "fx_good", Method: "hello", Expect: "hello from fx_good"},
					{Module: "fx_dep", Method: "noSuchMethod"},
				}}
			res := runWatched(t, req)
			got := map[string]string{}
			for _, m := range res.Report.Modules {
				got[m.Name] = m.Verdict + " " + m.Reason
				d := m.Static.Detail
				if m.Load != nil {
					d = fmt.Sprintf("%s [phase %s] left %v", m.Load.Detail, m.Load.Phase, m.Load.LeftRunning)
				}
				t.Logf("%-20s %-32s %s", m.Name, m.Verdict+" "+m.Reason, d)
				for _, c := range m.Calls {
					t.Logf("%-20s   call %s.%s → ok=%v %q %s", "", c.Call.Module, c.Call.Method, c.OK, c.Result, c.Error)
				}
			}
			assert.DeepEqual(t, got, want)
			assert.Equal(t, len(survivors(marker)), 0, "processes outlived verify")

			// --module: a dependency in the modules dir counts.
			only := runWatched(t, Request{ModulesDir: dir, Host: logos.Host{Path: hostPath}, Sandbox: sb, Deadline: 5 * time.Second, Only: []string{"fx_dep"}})
			assert.Equal(t, only.Report.Modules[0].Verdict+" "+only.Report.Modules[0].Reason, "pass ready")
		})
	}
}

func runWatched(t *testing.T, req Request) *Result {
	t.Helper()
	type out struct {
		r   *Result
		err error
	}
	done := make(chan out, 1)
	start := time.Now()
	go func() {
		r, err := Run(context.Background(), req)
		done <- out{r, err}
	}()
	select {
	case o := <-done:
		assert.NilError(t, o.err)
		t.Logf("verify of %d modules returned in %s", len(o.r.Report.Modules), time.Since(start).Round(time.Millisecond))
		return o.r
	case <-time.After(5 * time.Minute):
		t.Fatal("verify did not return")
	}
	return nil
}

// realModules copies the fixtures (and real modules) into a modules dir
// and makes the classes a build cannot: no manifest.json, a Qt version
// newer than the host's in the metadata note, a library that is no plugin.
func realModules(t *testing.T, fixtures, realDir string) string {
	dir := t.TempDir()
	assert.NilError(t, exec.Command("cp", "-a", filepath.Join(fixtures, "modules")+"/.", dir).Run())
	if realDir != "" {
		assert.NilError(t, exec.Command("cp", "-a", realDir+"/.", dir).Run())
	}
	assert.NilError(t, os.Remove(filepath.Join(dir, "fx_nomanifest", "manifest.json")))
	p := filepath.Join(dir, "fx_qtnewer", "fx_qtnewer_plugin.so")
	b, err := os.ReadFile(p)
	assert.NilError(t, err)
	i := bytes.Index(b, []byte("qt-project!\x00"))
	assert.Assert(t, i > 4 && binary.LittleEndian.Uint32(b[i-4:]) == 0x74510001, "no Qt metadata note")
	b[i+12+2] = 9 // [format, major, minor, arch]: Qt 6.9
	assert.NilError(t, os.WriteFile(p, b, 0o755))
	np := filepath.Join(dir, "fx_notplugin")
	assert.NilError(t, os.MkdirAll(np, 0o755))
	lib, err := os.ReadFile(filepath.Join(fixtures, "deplib", "libfixture_dependency.so"))
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(filepath.Join(np, "fx_notplugin_plugin.so"), lib, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(np, "manifest.json"), []byte(`{"name":"fx_notplugin","version":"0.0.1","main":{"linux-amd64":"fx_notplugin_plugin.so","linux-x86_64":"fx_notplugin_plugin.so"}}`), 0o644))
	return dir
}

// survivors are the live processes whose environment holds marker.
func survivors(marker string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && (st[i+2] == 'Z' || st[i+2] == 'X') {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if string(kv) == marker {
				out = append(out, pid)
			}
		}
	}
	return out
}
