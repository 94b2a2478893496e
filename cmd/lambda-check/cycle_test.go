package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/cli"
	"github.com/lambda-os/lambda-check/internal/logos/standin"
	"github.com/lambda-os/lambda-check/internal/requires"
	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/stage/cycle"
)

// cycleFixture is a workspace with built stand-in modules, a config that
// verifies them with the stand-in host, and a webhook that counts.
type cycleFixture struct {
	ws      *sample.Workspace
	mods    string
	config  string
	state   string
	mu      sync.Mutex
	hooks   [][]byte
	gitEnv  []string
	modules []string
}

func newCycleFixture(t *testing.T, modules int) *cycleFixture {
	t.Helper()
	requires.Tool(t, "git")
	dir := t.TempDir()
	o := sample.DemoOptions()
	o.Modules, o.Drift, o.Ahead = modules, nil, map[string]int{}
	ws, err := sample.Generate(context.Background(), filepath.Join(dir, "ws"), o)
	assert.NilError(t, err)
	f := &cycleFixture{ws: ws, mods: filepath.Join(dir, "mods"), state: filepath.Join(ws.Root, ".lambda-check"),
		gitEnv: append(os.Environ(), "GIT_AUTHOR_NAME=Up", "GIT_AUTHOR_EMAIL=up@logos.invalid", "GIT_COMMITTER_NAME=Up", "GIT_COMMITTER_EMAIL=up@logos.invalid")}
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("m%d_module", i)
		f.modules = append(f.modules, name)
		f.plugin(t, name, "")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.hooks = append(f.hooks, b)
		f.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	f.config = filepath.Join(dir, "config.json")
	cfg := fmt.Sprintf(`{"schemaVersion": 1, "verify": {"modulesDir": %q, "host": "logos_host", "deadline": "5s"},
		"notify": {"channels": [{"name": "hook", "type": "webhook", "url": %q, "timeout": "5s"}]}}`, f.mods, srv.URL)
	assert.NilError(t, os.WriteFile(f.config, []byte(cfg), 0o644))
	return f
}

func (f *cycleFixture) plugin(t *testing.T, name, mode string) {
	t.Helper()
	dir := filepath.Join(f.mods, name)
	assert.NilError(t, os.MkdirAll(dir, 0o755))
	so := name + "_plugin.so"
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "manifest.json"),
		[]byte(fmt.Sprintf(`{"name": %q, "version": "0.1.0", "main": {"linux-amd64": %q, "linux-x86_64": %q, "linux-arm64": %q, "linux-aarch64": %q}}`, name, so, so, so, so)), 0o644))
	assert.NilError(t, standin.WritePlugin(filepath.Join(dir, so), standin.Plugin{Name: name, QtMajor: 6, QtMinor: 4, Main: name + "_plugin", IID: "org.logos.ModuleInterface", Mode: mode}))
}

// advance puts a new commit on a repository's remote branch.
func (f *cycleFixture) advance(t *testing.T, repo string, n int) {
	t.Helper()
	r := f.ws.Repo(repo)
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"--git-dir", r.Remote}, args...)...)
		cmd.Env = f.gitEnv
		out, err := cmd.CombinedOutput()
		assert.NilError(t, err, string(out))
		return strings.TrimSpace(string(out))
	}
	head := git("rev-parse", "refs/heads/"+r.Branch)
	c := git("commit-tree", head+"^{tree}", "-p", head, "-m", fmt.Sprintf("upstream change %d", n))
	git("update-ref", "refs/heads/"+r.Branch, c)
}

func (f *cycleFixture) hookCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.hooks)
}

// run runs the CLI in-process.
func (f *cycleFixture) run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), append(args, "-w", f.ws.Root, "--config", f.config), cli.Env{
		Stdout: &out, Stderr: &errb, Dir: f.ws.Root, Getenv: func(k string) string {
			if k == "PATH" || k == "HOME" {
				return os.Getenv(k)
			}
			return ""
		}, Environ: os.Environ})
	return code, out.String(), errb.String()
}

// processesUsing lists live processes whose command line mentions s.
func processesUsing(s string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(s)) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			// A zombie waiting for its parent's wait is gone already.
			if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				continue
			}
		}
		out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
	}
	return out
}

// leftoverTemps lists load and call TMPDIRs whose owner is dead.
func leftoverTemps() []string {
	var out []string
	ents, _ := os.ReadDir(os.TempDir())
	for _, e := range ents {
		var pid int
		n := e.Name()
		if !(strings.HasPrefix(n, "lcl") || strings.HasPrefix(n, "lcc")) || !e.IsDir() {
			continue
		}
		if _, err := fmt.Sscanf(n[3:], "%d-", &pid); err != nil {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			out = append(out, n)
		}
	}
	return out
}

// checkState asserts the state directory is whole: the audit chain
// verifies, every JSON artifact decodes, nothing half-written is left.
func checkState(t *testing.T, f *cycleFixture) {
	t.Helper()
	code, out, errs := f.run("audit", "verify")
	assert.Equal(t, code, 0, "audit verify: %s%s", out, errs)
	err := filepath.WalkDir(f.state, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("left behind: %s", p)
		}
		if !d.IsDir() && strings.HasSuffix(p, ".json") {
			b, err := os.ReadFile(p)
			assert.NilError(t, err)
			if !json.Valid(b) {
				t.Errorf("%s is not whole JSON", p)
			}
		}
		return nil
	})
	assert.NilError(t, err)
	_, bad, err := cycle.ReadHistory(filepath.Join(f.state, "cycles.jsonl"))
	assert.NilError(t, err)
	assert.Equal(t, bad, 0)
}

// TestCycleSurvivesKill kills a cycle process with SIGKILL at many points
// of its run and checks after each that the next cycle runs (no lock held
// forever), and at the end that nothing is corrupt or left behind.
func TestCycleSurvivesKill(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("lambda-check")
	assert.NilError(t, err)
	f := newCycleFixture(t, 4)
	f.advance(t, "logos-chat-module", 1)
	code, out, errs := f.run("cycle")
	assert.Assert(t, code == 0 || code == 3, "first cycle: %d\n%s%s", code, out, errs)
	// How long a quiet cycle takes as a process, start-up included: the
	// kill points are spread over that, so they land in its stages.
	start := time.Now()
	first := exec.Command(bin, "cycle", "-w", f.ws.Root, "--config", f.config)
	first.Env = os.Environ()
	_ = first.Run()
	took := time.Since(start)
	points, midway := 24, 0
	if testing.Short() {
		points = 6
	}
	for i := 0; i < points; i++ {
		// Spread the kills over a cycle's run, a little beyond its end.
		at := time.Duration(float64(took) * 1.2 * float64(i) / float64(points))
		if i%4 == 3 {
			// Change what the cycle sees now and then: new work mid-kill.
			f.advance(t, "logos-waku-module", i)
		}
		linesBefore := auditLines(t, f)
		cmd := exec.Command(bin, "cycle", "-w", f.ws.Root, "--config", f.config)
		cmd.Env = os.Environ()
		assert.NilError(t, cmd.Start())
		time.Sleep(at)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if n := auditLines(t, f); n > linesBefore && !strings.Contains(lastAuditLine(t, f), `"stage":"cycle"`) {
			midway++
		}

		next := exec.Command(bin, "cycle", "-w", f.ws.Root, "--config", f.config, "--lock-timeout", "10s")
		next.Env = os.Environ()
		outb, err := next.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			assert.NilError(t, err)
		}
		assert.Assert(t, code == 0 || code == 3, "cycle after a kill at %s: exit %d\n%s", at, code, outb)
	}
	t.Logf("%d kills, %d of them in the middle of a cycle's stages", points, midway)
	assert.Assert(t, midway >= points/4, "too few kills landed mid-cycle (%d of %d): the kill points miss the work", midway, points)
	checkState(t, f)
	// The stand-in hosts of killed cycles died with them; their TMPDIRs
	// were swept by the next cycle.
	deadline := time.Now().Add(3 * time.Second)
	for len(processesUsing(f.mods)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	assert.DeepEqual(t, processesUsing(f.mods), []string(nil))
	assert.DeepEqual(t, leftoverTemps(), []string(nil))
}

// TestSoak runs hundreds of cycles on a workspace that keeps changing and
// checks the chain, the files and processes left, and that notifications
// come exactly on changes.
func TestSoak(t *testing.T) {
	t.Parallel()
	f := newCycleFixture(t, 3)
	cycles := 200
	if testing.Short() {
		cycles = 40
	}
	fds := func() int { e, _ := os.ReadDir("/proc/self/fd"); return len(e) }
	var fdsAfterFirst, expected int
	budget := time.Now().Add(3 * time.Minute)
	for i := 0; i < cycles && time.Now().Before(budget); i++ {
		changed := i == 0
		switch {
		case i > 0 && i%25 == 5:
			f.advance(t, "logos-chat-module", i) // a new proposal
			changed = true
		case i > 0 && i%25 == 12:
			f.plugin(t, f.modules[1], "segv") // a module starts failing
			changed = true
		case i > 0 && i%25 == 18:
			f.plugin(t, f.modules[1], "") // and recovers
			changed = true
		}
		before := f.hookCount()
		code, out, errs := f.run("cycle")
		assert.Assert(t, code == 0 || code == 3, "cycle %d: exit %d\n%s%s", i, code, out, errs)
		got := f.hookCount() - before
		if changed {
			expected++
			assert.Equal(t, got, 1, "cycle %d: a change is told once\n%s", i, out)
		} else {
			assert.Equal(t, got, 0, "cycle %d: nothing changed, nothing told\n%s", i, out)
		}
		if i == 0 {
			fdsAfterFirst = fds()
		}
	}
	assert.Equal(t, f.hookCount(), expected)
	assert.Assert(t, fds() <= fdsAfterFirst+2, "file descriptors leak: %d after the first cycle, %d now", fdsAfterFirst, fds())
	checkState(t, f)
	assert.DeepEqual(t, processesUsing(f.mods), []string(nil))
	assert.DeepEqual(t, leftoverTemps(), []string(nil))
	h, _, err := cycle.ReadHistory(filepath.Join(f.state, "cycles.jsonl"))
	assert.NilError(t, err)
	t.Logf("%d cycles, %d notifications", len(h), expected)
}

func auditLines(t *testing.T, f *cycleFixture) int {
	b, err := os.ReadFile(filepath.Join(f.state, "audit.jsonl"))
	assert.NilError(t, err)
	return bytes.Count(b, []byte("\n"))
}

func lastAuditLine(t *testing.T, f *cycleFixture) string {
	b, err := os.ReadFile(filepath.Join(f.state, "audit.jsonl"))
	assert.NilError(t, err)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return lines[len(lines)-1]
}

// TestWatchStopsOnSignal: watch runs cycles at its interval and stops
// cleanly on SIGTERM between cycles and on SIGINT during one.
func TestWatchStopsOnSignal(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("lambda-check")
	assert.NilError(t, err)
	f := newCycleFixture(t, 2)
	start := func(interval string) (*exec.Cmd, *syncBuffer) {
		cmd := exec.Command(bin, "watch", "--interval", interval, "-w", f.ws.Root, "--config", f.config)
		var errb syncBuffer
		cmd.Stderr, cmd.Env = &errb, os.Environ()
		assert.NilError(t, cmd.Start())
		return cmd, &errb
	}
	waitFor := func(b *syncBuffer, s string) {
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(b.String(), s) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in:\n%s", s, b.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	exit := func(cmd *exec.Cmd) int {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode()
			}
			assert.NilError(t, err)
			return 0
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("watch did not stop")
			return -1
		}
	}

	// Between cycles: the interval leaves seconds idle after cycle 2 even
	// on a loaded machine, so the signal cannot land in cycle 3.
	cmd, errb := start("4s")
	waitFor(errb, "cycle 2: ")
	assert.NilError(t, cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, exit(cmd), 0)
	assert.Assert(t, strings.Contains(errb.String(), "lambda-check: stopped"), errb.String())

	// During a cycle: the hosts are slow to load, the signal lands in verify.
	f.plugin(t, f.modules[0], "hang")
	cmd, errb = start("1s")
	time.Sleep(300 * time.Millisecond)
	assert.NilError(t, cmd.Process.Signal(syscall.SIGINT))
	assert.Equal(t, exit(cmd), 130)
	checkState(t, f)
	h, _, err := cycle.ReadHistory(filepath.Join(f.state, "cycles.jsonl"))
	assert.NilError(t, err)
	assert.Assert(t, len(h) >= 3)
	last := h[len(h)-1]
	assert.Equal(t, last.Exit, 130, "%+v", last)
	assert.DeepEqual(t, processesUsing(f.mods), []string(nil))
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLeftoversOfKilledVerify: lambda-check is killed while a host's child
// runs; the load's PID namespace ends with lambda-check, so nothing is
// orphaned, and the next verify forgets the record of the dead load.
func TestLeftoversOfKilledVerify(t *testing.T) {
	t.Parallel()
	requires.Tool(t, "sleep")
	bin, err := exec.LookPath("lambda-check")
	assert.NilError(t, err)
	f := newCycleFixture(t, 2)
	f.plugin(t, f.modules[0], "childhang")
	running := filepath.Join(f.state, "running")
	cmd := exec.Command(bin, "verify", "-w", f.ws.Root, "--config", f.config, "--deadline", "30s")
	cmd.Env = os.Environ()
	assert.NilError(t, cmd.Start())
	// Wait until the host's group is recorded and its child is up.
	var pgid int
	deadline := time.Now().Add(20 * time.Second)
	for pgid == 0 || len(groupMembers(pgid)) < 2 {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no host group with a child appeared (group %d)", pgid)
		}
		if ents, _ := os.ReadDir(running); len(ents) > 0 {
			for _, e := range ents {
				if n, err := strconv.Atoi(e.Name()); err == nil && len(groupMembers(n)) >= 2 {
					pgid = n
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	assert.NilError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	// The load's supervisor died with lambda-check, and its PID namespace
	// with it: the host's child too, although nothing killed it by name.
	deadline = time.Now().Add(5 * time.Second)
	for len(groupMembers(pgid)) != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	assert.Equal(t, len(groupMembers(pgid)), 0, "a process of the killed load survived")

	// The next verify forgets the dead record (and its own loads are
	// tracked and gone).
	f.plugin(t, f.modules[0], "")
	code, out, errs := f.run("verify")
	assert.Equal(t, code, 0, out+errs)
	assert.Equal(t, len(groupMembers(pgid)), 0)
	ents, err := os.ReadDir(running)
	assert.NilError(t, err)
	assert.Equal(t, len(ents), 0, "nothing left recorded")
}

// groupMembers lists the live processes of a process group.
func groupMembers(pgid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			out = append(out, pid)
		}
	}
	return out
}
