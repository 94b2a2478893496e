package logos_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lambda-os/lambda-check/internal/proc"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/lambda-os/lambda-check/internal/logos"
	"github.com/lambda-os/lambda-check/internal/logos/standin"
)

// TestMain lets this test binary be the stand-in host: the sandbox passes
// LAMBDA_CHECK_TEST_HOST through its configured variables.
func TestMain(m *testing.M) {
	if proc.IsSupervisor() {
		proc.SuperviseMain()
	}
	if g := os.Getenv("LAMBDA_CHECK_TEST_HOST"); g != "" {
		standin.HostMain(g)
	}
	if g := os.Getenv("LAMBDA_CHECK_TEST_CORE"); g != "" {
		standin.CoreMain(g)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func host(t *testing.T, g logos.Generation) (logos.Host, logos.Sandbox) {
	t.Helper()
	exe, err := os.Executable()
	assert.NilError(t, err)
	return logos.Host{Path: exe, Generation: g}, logos.Sandbox{Env: []string{"LAMBDA_CHECK_TEST_HOST=" + string(g)}}
}

// Every behaviour of a plugin the real March host showed (LOGOS.md),
// played by the stand-in host: its own reason, its detail, no process
// left behind, also under bubblewrap.
func TestLoadVerdicts(t *testing.T) {
	t.Parallel()
	plugin := filepath.Join(t.TempDir(), "x_plugin.so")
	assert.NilError(t, os.WriteFile(plugin, []byte("plugin"), 0o644))
	type want struct{ reason, detail string }
	cases := []struct {
		name          string
		march, august want
		left          bool // processes left running, killed
	}{
		{"chat_module", want{logos.ReasonReady, ""}, want{logos.ReasonReady, ""}, false},
		{"slow_module", want{logos.ReasonReady, ""}, want{logos.ReasonReady, ""}, false},
		{"helper_module", want{logos.ReasonReady, ""}, want{logos.ReasonReady, ""}, false},
		{"segv_module", want{logos.ReasonCrashedInConstructor, "SIGSEGV while the plugin was loaded"}, want{logos.ReasonCrashed, "killed by SIGSEGV"}, false},
		{"segvinit_module", want{logos.ReasonCrashedInInit, "SIGSEGV in the plugin's initLogos"}, want{logos.ReasonCrashed, "killed by SIGSEGV"}, false},
		{"abort_module", want{logos.ReasonCrashedInConstructor, "SIGABRT"}, want{logos.ReasonCrashed, "killed by SIGABRT"}, false},
		{"throw_module", want{logos.ReasonUncaughtException, "std::runtime_error"}, want{logos.ReasonUncaughtException, "what():  fixture"}, false},
		{"exit0_module", want{logos.ReasonExited, "exit status 0"}, want{logos.ReasonExited, "exit status 0"}, false},
		{"exit3_module", want{logos.ReasonExited, "exit status 3"}, want{logos.ReasonExited, "exit status 3"}, false},
		{"hang_module", want{logos.ReasonHang, "no ready line within"}, want{logos.ReasonHang, "no ready line within"}, false},
		{"childhang_module", want{logos.ReasonHang, "outlived the host"}, want{logos.ReasonHang, "outlived the host"}, true},
		{"namemismatch_module", want{logos.ReasonNameMismatch, `name() is "other_module"`}, want{logos.ReasonNameMismatch, "exit status 1"}, false},
		{"missinglib_module", want{logos.ReasonMissingLibrary, "libwaku.so.0 is not found"}, want{logos.ReasonMissingLibrary, "libwaku.so.0"}, false},
		{"qtnewer_module", want{logos.ReasonQtMismatch, "Qt 6.9.0"}, want{logos.ReasonQtMismatch, "Qt 6.9.0"}, false},
		{"nointerface_module", want{logos.ReasonNotPluginInterface, "PluginInterface"}, want{logos.ReasonNotPluginInterface, "PluginInterface"}, false},
		{"notplugin_module", want{logos.ReasonNotPlugin, "exit status 1"}, want{logos.ReasonNotPlugin, "exit status 1"}, false},
		{"fakeready_module", want{logos.ReasonFakeReady, "before the host registered"}, want{logos.ReasonHang, ""}, false},
		{"crashafterready_module", want{logos.ReasonCrashedAfterReady, "SIGSEGV"}, want{logos.ReasonCrashedAfterReady, "SIGSEGV"}, false},
		{"nomodsocket_module", want{logos.ReasonNoSocket, "socket"}, want{logos.ReasonNoSocket, "socket"}, false},
		{"daemonstdio_module", want{logos.ReasonLeftRunning, "sleep"}, want{logos.ReasonLeftRunning, "sleep"}, true},
		{"daemonclosed_module", want{logos.ReasonLeftRunning, "sleep"}, want{logos.ReasonLeftRunning, "sleep"}, true},
		{"blocksignals_module", want{logos.ReasonHang, "outlived the host"}, want{logos.ReasonHang, "outlived the host"}, true},
		{"forkcrash_module", want{logos.ReasonCrashedInConstructor, "outlived the host"}, want{logos.ReasonCrashed, "outlived the host"}, true},
		{"child_module", want{logos.ReasonLeftRunning, "sleep"}, want{logos.ReasonLeftRunning, "sleep"}, true},
	}
	sandboxes := []string{"plain"}
	if bw, err := exec.LookPath("bwrap"); err == nil {
		sandboxes = append(sandboxes, bw)
	} else if os.Getenv("CI") == "true" {
		t.Fatal("bwrap is required in CI (.ci/run installs it)")
	} else {
		t.Log("bubblewrap variants skipped: bwrap is not installed")
	}
	for _, sandbox := range sandboxes {
		for _, g := range []logos.Generation{logos.March, logos.August} {
			for _, tc := range cases {
				w := tc.march
				if g == logos.August {
					w = tc.august
				}
				label := "plain"
				if sandbox != "plain" {
					label = "bwrap"
				}
				t.Run(label+"/"+string(g)+"/"+tc.name, func(t *testing.T) {
					t.Parallel()
					h, sb := host(t, g)
					if sandbox != "plain" {
						sb.Bwrap = sandbox
					}
					marker := fmt.Sprintf("LAMBDA_CHECK_TEST_RUN=%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), os.Getpid())
					sb.Env = append(sb.Env, marker)
					done := make(chan logos.LoadResult, 1)
					go func() { done <- h.Load(context.Background(), tc.name, plugin, 2*time.Second, sb) }()
					var res logos.LoadResult
					select {
					case res = <-done:
					case <-time.After(60 * time.Second):
						t.Fatal("the load did not return")
					}
					assert.Equal(t, res.Reason, w.reason, res.Detail+"\n"+res.Output)
					assert.Check(t, is.Contains(res.Detail, w.detail))
					if w.reason == logos.ReasonReady {
						assert.Equal(t, res.Verdict, "pass")
					} else {
						assert.Equal(t, res.Verdict, "fail")
					}
					assert.Equal(t, len(res.LeftRunning) > 0, tc.left, "%v", res.LeftRunning)
					assert.Check(t, is.Len(survivors(marker), 0), "processes outlived the load")
				})
			}
		}
	}
	// March only: a host that never offers the token socket.
	h, sb := host(t, logos.March)
	res := h.Load(context.Background(), "nosocket_module", plugin, time.Second, sb)
	assert.Equal(t, res.Reason, logos.ReasonNoHandshake, res.Output)
	// A host that does not exist.
	res = logos.Host{Path: "/nonexistent/logos_host", Generation: logos.March}.Load(context.Background(), "x", plugin, time.Second, logos.Sandbox{})
	assert.Equal(t, res.Reason, logos.ReasonStartFailed)
}

// survivors are the live processes whose environment holds marker.
func survivors(marker string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || zombie(pid) {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(b, []byte{0}) {
			if string(kv) == marker {
				out = append(out, pid)
			}
		}
	}
	return out
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

func TestDetectGeneration(t *testing.T) {
	t.Parallel()
	for _, g := range []logos.Generation{logos.March, logos.August} {
		h, sb := host(t, g)
		got, err := logos.DetectGeneration(context.Background(), h.Path, sb)
		assert.NilError(t, err)
		assert.Equal(t, got, g)
	}
	_, err := logos.DetectGeneration(context.Background(), "/bin/true", logos.Sandbox{})
	assert.ErrorContains(t, err, "does not look like a Logos host")
}

func TestPluginMeta(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "chat_module_plugin.so")
	assert.NilError(t, standin.WritePlugin(p, standin.Plugin{Name: "chat_module", QtMajor: 6, QtMinor: 4, IID: "org.logos.ModuleInterface",
		ClassName: "ChatModule", Main: "chat_module_plugin", Dependencies: []string{"waku_module"}}))
	f, err := os.Open(p)
	assert.NilError(t, err)
	defer f.Close()
	m, err := logos.ReadPluginMeta(f)
	assert.NilError(t, err)
	assert.Equal(t, m.QtMajor, 6)
	assert.Equal(t, m.QtMinor, 4)
	assert.Equal(t, m.IID, "org.logos.ModuleInterface")
	assert.Equal(t, m.ClassName, "ChatModule")
	assert.Equal(t, m.Name(), "chat_module")
	assert.Equal(t, m.Main(), "chat_module_plugin")
	assert.DeepEqual(t, m.Dependencies(), []string{"waku_module"})

	np := filepath.Join(dir, "plain.so")
	assert.NilError(t, standin.WritePlugin(np, standin.Plugin{NoNote: true}))
	nf, err := os.Open(np)
	assert.NilError(t, err)
	defer nf.Close()
	_, err = logos.ReadPluginMeta(nf)
	assert.ErrorIs(t, err, logos.ErrNoQtMetadata)
	_, err = logos.ReadPluginMeta(bytes.NewReader([]byte("#!/bin/sh\n")))
	assert.ErrorIs(t, err, logos.ErrNotELF)
}

func TestCoreCalls(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	assert.NilError(t, err)
	calls := []logos.Call{
		{Module: "chat_module", Method: "ping", Expect: "pong"},
		// A comma and a quote inside arguments reach the method as given.
		{Module: "chat_module", Method: "echo", Args: []string{"a,b", `it's "x"`}, Expect: `a,b,it's "x"`},
		{Module: "chat_module", Method: "refuse", Expect: "true"},
		{Module: "chat_module", Method: "fail"},
		{Module: "chat_module", Method: "ping"},
	}
	for _, g := range []logos.Generation{logos.March, logos.August} {
		core := logos.Core{Path: exe, Generation: g}
		sb := logos.Sandbox{Env: []string{"LAMBDA_CHECK_TEST_CORE=" + string(g)}}
		dir := t.TempDir()
		assert.NilError(t, os.MkdirAll(filepath.Join(dir, "chat_module"), 0o755))
		assert.NilError(t, os.WriteFile(filepath.Join(dir, "chat_module", "manifest.json"), []byte(`{"name":"chat_module"}`), 0o644))
		res, err := core.Calls(context.Background(), dir, []string{"chat_module"}, calls, 10*time.Second, sb)
		assert.NilError(t, err, g)
		assert.Check(t, res[0].OK && res[0].Result == "pong", "%s %+v", g, res[0])
		assert.Check(t, res[1].OK && res[1].Result == `a,b,it's "x"`, "%s %+v", g, res[1])
		// Exit 0 and "Result: false" is not a success when true is expected.
		assert.Check(t, !res[2].OK && strings.Contains(res[2].Error, `returned "false", expected "true"`), "%s %+v", g, res[2])
		assert.Check(t, !res[3].OK && strings.Contains(res[3].Error, "method failed"), "%s %+v", g, res[3])
		if g == logos.March {
			assert.Check(t, is.Contains(res[4].Error, "not run"))
		} else {
			assert.Check(t, res[4].OK, "%+v", res[4])
		}
		_, err = core.Calls(context.Background(), t.TempDir(), []string{"broken_module"}, calls[:1], 5*time.Second, sb)
		if g == logos.March {
			// March logoscore finds no module without its manifest.json.
			nm, err := core.Calls(context.Background(), t.TempDir(), []string{"chat_module"}, calls[:1], 5*time.Second, sb)
			assert.NilError(t, err)
			assert.Check(t, is.Contains(nm[0].Error, "Plugin not loaded: chat_module"))
		}
		if g == logos.August {
			assert.ErrorContains(t, err, "load-module broken_module: exit 3")
		}
	}
}

func TestMarchArg(t *testing.T) {
	for in, want := range map[string]string{"a,b": `'a,b'`, `it's`: `'it'"'"'s'`, `say "hi"`: `'say "hi"'`, "x)": `'x)'`} {
		got, err := logos.MarchArg(in)
		assert.NilError(t, err)
		assert.Equal(t, got, want)
	}
	for _, bad := range []string{"", " x", "x ", "@file"} {
		_, err := logos.MarchArg(bad)
		assert.Check(t, err != nil, "%q accepted", bad)
	}
}

func FuzzReadPluginMeta(f *testing.F) {
	dir := f.TempDir()
	p := filepath.Join(dir, "x.so")
	if err := standin.WritePlugin(p, standin.Plugin{Name: "x_module", QtMajor: 6, QtMinor: 4, IID: "i", Dependencies: []string{"y"}}); err != nil {
		f.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	f.Add(b)
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := logos.ReadPluginMeta(bytes.NewReader(b))
		if err == nil && m.Metadata == nil {
			t.Fatal("metadata map missing")
		}
	})
}
