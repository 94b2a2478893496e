package logos_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/lambda-os/lambda-check/internal/logos"
	"github.com/lambda-os/lambda-check/internal/logos/standin"
)

// TestMain lets this test binary be the stand-in host: the sandbox passes
// LAMBDA_CHECK_TEST_HOST through its configured variables.
func TestMain(m *testing.M) {
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

func TestLoadVerdicts(t *testing.T) {
	t.Parallel()
	plugin := filepath.Join(t.TempDir(), "x_plugin.so")
	assert.NilError(t, os.WriteFile(plugin, []byte("plugin"), 0o644))
	for _, g := range []logos.Generation{logos.March, logos.August} {
		for _, tc := range []struct {
			name, reason, detail string
		}{
			{"chat_module", logos.ReasonReady, ""},
			{"slow_module", logos.ReasonReady, ""},
			{"segv_module", logos.ReasonCrashed, "killed by SIGSEGV"},
			{"abort_module", logos.ReasonCrashed, "killed by SIGABRT"},
			{"exit0_module", logos.ReasonExited, "exit status 0"},
			{"hang_module", logos.ReasonHang, "no ready line within"},
			{"namemismatch_module", logos.ReasonNameMismatch, "exit status 1"},
			{"missinglib_module", logos.ReasonMissingLibrary, "exit status 127"},
			{"child_module", logos.ReasonReady, ""},
		} {
			t.Run(string(g)+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				h, sb := host(t, g)
				res := h.Load(context.Background(), tc.name, plugin, 2*time.Second, sb)
				assert.Equal(t, res.Reason, tc.reason, res.Output)
				assert.Check(t, is.Contains(res.Detail, tc.detail))
				if tc.reason == logos.ReasonReady {
					assert.Equal(t, res.Verdict, "pass")
				} else {
					assert.Equal(t, res.Verdict, "fail")
				}
				if tc.name == "child_module" {
					// The host's child is gone with the group.
					m := regexp.MustCompile(`started child pid (\d+)`).FindStringSubmatch(res.Output)
					assert.Assert(t, m != nil, res.Output)
					pid, _ := strconv.Atoi(m[1])
					alive := syscall.Kill(pid, 0) == nil && !zombie(pid)
					assert.Check(t, !alive, "child %d still running", pid)
				}
			})
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
		{Module: "chat_module", Method: "echo", Args: []string{"a", "b"}, Expect: "a,b"},
		{Module: "chat_module", Method: "refuse", Expect: "true"},
		{Module: "chat_module", Method: "fail"},
		{Module: "chat_module", Method: "ping"},
	}
	for _, g := range []logos.Generation{logos.March, logos.August} {
		core := logos.Core{Path: exe, Generation: g}
		sb := logos.Sandbox{Env: []string{"LAMBDA_CHECK_TEST_CORE=" + string(g)}}
		res, err := core.Calls(context.Background(), t.TempDir(), []string{"chat_module"}, calls, 10*time.Second, sb)
		assert.NilError(t, err, g)
		assert.Check(t, res[0].OK && res[0].Result == "pong", "%s %+v", g, res[0])
		assert.Check(t, res[1].OK && res[1].Result == "a,b", "%s %+v", g, res[1])
		// Exit 0 and "Result: false" is not a success when true is expected.
		assert.Check(t, !res[2].OK && strings.Contains(res[2].Error, `returned "false", expected "true"`), "%s %+v", g, res[2])
		assert.Check(t, !res[3].OK && strings.Contains(res[3].Error, "method failed"), "%s %+v", g, res[3])
		if g == logos.March {
			assert.Check(t, is.Contains(res[4].Error, "not run"))
		} else {
			assert.Check(t, res[4].OK, "%+v", res[4])
		}
		_, err = core.Calls(context.Background(), t.TempDir(), []string{"broken_module"}, calls[:1], 5*time.Second, sb)
		if g == logos.August {
			assert.ErrorContains(t, err, "load-module broken_module: exit 3")
		}
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
