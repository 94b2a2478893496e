// Package logos speaks the Logos runtime's protocol: it loads a module's
// plugin in a host process (logos_host), sends the auth token the host
// waits for, and gives a verdict only on the host's positive readiness
// signal; it tells every way of failing apart, and leaves nothing running.
// It also reads a plugin's Qt metadata note without loading it.
package logos

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lambda-os/lambda-check/internal/proc"
)

// Generation is a generation of the Logos runtime.
type Generation string

// The two generations (see LOGOS.md): March 2026's logos_host takes the
// token on a local socket; August 2026's logos_host_qt on stdin.
const (
	March  Generation = "march"
	August Generation = "august"
)

// Ready lines.
const (
	marchReady  = "Logos host ready, entering event loop..."
	augustReady = "LogosAPIProvider: successfully published "
)

// Reasons of a load result.
const (
	ReasonReady          = "ready"
	ReasonCrashed        = "crashed"             // killed by a signal
	ReasonExited         = "exited-before-ready" // an exit, any code, before the ready line
	ReasonHang           = "hang"                // alive, no ready line by the deadline
	ReasonNoHandshake    = "no-token-handshake"  // the host never took the token
	ReasonNotPlugin      = "not-a-plugin"
	ReasonQtMismatch     = "qt-mismatch"
	ReasonNameMismatch   = "name-mismatch"
	ReasonMissingLibrary = "missing-library"
	ReasonStartFailed    = "start-failed"
	ReasonLeftRunning    = "left-running" // processes survived the cleanup
)

// Host is a runtime host binary.
type Host struct {
	Path       string     `json:"path"`
	Generation Generation `json:"generation"`
}

// DetectGeneration asks a host for its usage (with the sandbox's extra
// variables): August's mentions --token-source.
func DetectGeneration(ctx context.Context, path string, sb Sandbox) (Generation, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cmd := proc.Command(ctx, proc.Options{WaitDelay: time.Second}, path, "--help")
	cmd.Env = minimalEnv(os.TempDir(), sb)
	out, err := cmd.CombinedOutput()
	s := string(out)
	switch {
	case strings.Contains(s, "--token-source"):
		return August, nil
	case strings.Contains(s, "--name") || strings.Contains(s, "-n"):
		return March, nil
	}
	if err != nil {
		return "", fmt.Errorf("%s --help: %w", path, err)
	}
	return "", fmt.Errorf("%s --help does not look like a Logos host", path)
}

// Sandbox shapes each load.
type Sandbox struct {
	// Env are variables added to the minimal environment.
	Env []string
	// Path is the PATH the host runs with (default: the system's
	// directories).
	Path string
	// Bwrap runs the host under bubblewrap: no network, the filesystem
	// read-only but for the private TMPDIR.
	Bwrap string
	// StderrLimit bounds the output kept (default 16 KiB).
	StderrLimit int
	// Track, when set, records each process group while it runs.
	Track *Tracker
}

// LoadResult is the outcome of one load.
type LoadResult struct {
	Verdict string `json:"verdict"` // pass or fail
	Reason  string `json:"reason"`
	Detail  string `json:"detail,omitempty"`
	// ReadyMillis is how long the ready line took.
	ReadyMillis int64 `json:"readyMillis,omitempty"`
	// Output is the host's output (stderr and stdout), its end when long.
	Output string `json:"output,omitempty"`
}

// defaultPath is the PATH of a child given none.
const defaultPath = "/usr/local/bin:/usr/bin:/bin"

func minimalEnv(tmp string, sb Sandbox) []string {
	path := sb.Path
	if path == "" {
		path = defaultPath
	}
	env := []string{
		"PATH=" + path,
		"HOME=" + tmp, "TMPDIR=" + tmp, "XDG_RUNTIME_DIR=" + tmp,
		"LANG=C.UTF-8", "QT_QPA_PLATFORM=offscreen",
	}
	return append(env, sb.Env...)
}

// Load runs the host on one plugin: a fresh private TMPDIR, a minimal
// environment, its own process group; the token handshake of the host's
// generation; PASS only on the ready line while the process lives, within
// the deadline. The whole process group is killed afterwards and checked
// gone.
func (h Host) Load(ctx context.Context, name, plugin string, deadline time.Duration, sb Sandbox) LoadResult {
	limit := sb.StderrLimit
	if limit <= 0 {
		limit = 16 << 10
	}
	tmp, err := os.MkdirTemp("", fmt.Sprintf("lcl%d-", os.Getpid()))
	if err != nil {
		return LoadResult{Verdict: "fail", Reason: ReasonStartFailed, Detail: err.Error()}
	}
	defer os.RemoveAll(tmp)
	args := []string{"-n", name, "-p", plugin}
	if h.Generation == August {
		args = []string{"--name", name, "--path", plugin, "--token-source", "stdin"}
	}
	bin := h.Path
	if sb.Bwrap != "" {
		args = append([]string{"--unshare-net", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
			"--bind", tmp, tmp, "--die-with-parent", "--", h.Path}, args...)
		bin = sb.Bwrap
	}
	// The load's deadline and its end kill the group (below).
	cmd := proc.Detached(proc.Options{}, bin, args...)
	cmd.Env = minimalEnv(tmp, sb)
	cmd.Dir = tmp
	out := &tail{limit: limit}
	pr, pw := io.Pipe()
	cmd.Stderr, cmd.Stdout = pw, pw
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return LoadResult{Verdict: "fail", Reason: ReasonStartFailed, Detail: err.Error()}
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return LoadResult{Verdict: "fail", Reason: ReasonStartFailed, Detail: err.Error()}
	}
	pgid := cmd.Process.Pid
	sb.Track.Add(pgid)
	defer killGroup(pgid)

	ready := make(chan time.Duration, 1)
	readyLine := marchReady
	if h.Generation == August {
		readyLine = augustReady + strconv.Quote(name)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			out.add(line)
			if strings.TrimSpace(line) == readyLine {
				select {
				case ready <- time.Since(start):
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		exited <- err
	}()
	token := newToken()
	handshake := make(chan error, 1)
	if h.Generation == August {
		go func() {
			_, err := io.WriteString(stdin, token+"\n")
			handshake <- err
		}()
	} else {
		stdin.Close()
		go func() {
			handshake <- sendToken(ctx, filepath.Join(tmp, "logos_token_"+name), token, start.Add(deadline))
		}()
	}

	timer := time.NewTimer(deadline)
	defer timer.Stop()
	shook := false
	var res LoadResult
wait:
	for {
		select {
		case err := <-handshake:
			shook = err == nil
			handshake = nil
		case d := <-ready:
			res = LoadResult{Verdict: "pass", Reason: ReasonReady, ReadyMillis: d.Milliseconds()}
			break wait
		case err := <-exited:
			select { // the output's end, for the reason
			case <-readDone:
			case <-time.After(time.Second):
			}
			res = classifyExit(err, out.String())
			exited = nil
			break wait
		case <-timer.C:
			if h.Generation == March && !shook {
				res = LoadResult{Verdict: "fail", Reason: ReasonNoHandshake, Detail: fmt.Sprintf("the host offered no token socket within %s", deadline)}
			} else {
				res = LoadResult{Verdict: "fail", Reason: ReasonHang, Detail: fmt.Sprintf("no ready line within %s", deadline)}
			}
			break wait
		case <-ctx.Done():
			res = LoadResult{Verdict: "fail", Reason: ReasonHang, Detail: "cancelled"}
			break wait
		}
	}
	// Stop the host (a ready one gets SIGTERM first), then the group.
	if exited != nil {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-exited:
			exited = nil
		case <-time.After(2 * time.Second):
		}
	}
	killGroup(pgid)
	if exited != nil {
		<-exited
	}
	if groupAlive(pgid, 2*time.Second) {
		res = LoadResult{Verdict: "fail", Reason: ReasonLeftRunning, Detail: fmt.Sprintf("processes of group %d survived SIGKILL", pgid)}
	} else {
		sb.Track.Done(pgid)
	}
	res.Output = out.String()
	return res
}

// classifyExit says why a host ended before the ready line.
func classifyExit(err error, output string) LoadResult {
	res := LoadResult{Verdict: "fail", Reason: ReasonExited, Detail: "exit status 0"}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return LoadResult{Verdict: "fail", Reason: ReasonCrashed, Detail: "killed by " + signalName(ws.Signal())}
		}
		res.Detail = fmt.Sprintf("exit status %d", ee.ExitCode())
	} else if err != nil {
		res.Detail = err.Error()
	}
	low := strings.ToLower(output)
	switch {
	case strings.Contains(low, "cannot open shared object file"), strings.Contains(low, "error while loading shared libraries"):
		res.Reason = ReasonMissingLibrary
	case strings.Contains(low, "name mismatch"), strings.Contains(low, "does not match the module name"):
		res.Reason = ReasonNameMismatch
	case strings.Contains(low, "uses incompatible qt library"), strings.Contains(low, "built with a newer qt"), strings.Contains(low, "qt version mismatch"):
		res.Reason = ReasonQtMismatch
	case strings.Contains(low, "not a valid qt plugin"), strings.Contains(low, "is not a qt plugin"), strings.Contains(low, "not a plugin"):
		res.Reason = ReasonNotPlugin
	}
	return res
}

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGSEGV:
		return "SIGSEGV"
	case syscall.SIGABRT:
		return "SIGABRT"
	case syscall.SIGBUS:
		return "SIGBUS"
	case syscall.SIGILL:
		return "SIGILL"
	case syscall.SIGFPE:
		return "SIGFPE"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return fmt.Sprintf("signal %d", int(s))
}

// sendToken connects to the host's token socket when it appears and
// writes the token.
func sendToken(ctx context.Context, path, token string, until time.Time) error {
	for {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			_, err = io.WriteString(c, token)
			c.Close()
			return err
		}
		if time.Now().After(until) || ctx.Err() != nil {
			return fmt.Errorf("no token socket %s", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func killGroup(pgid int) { _ = proc.KillGroup(pgid) }

// groupAlive reports whether a live (not zombie) process of the group
// remains after waiting up to d.
func groupAlive(pgid int, d time.Duration) bool {
	until := time.Now().Add(d)
	for {
		if !anyInGroup(pgid) {
			return false
		}
		if time.Now().After(until) {
			return true
		}
		killGroup(pgid)
		time.Sleep(20 * time.Millisecond)
	}
}

func anyInGroup(pgid int) bool {
	if syscall.Kill(-pgid, 0) == syscall.ESRCH {
		return false // nothing at all, not even a zombie
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 3 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

// tail keeps the end of a process's output.
type tail struct {
	mu    sync.Mutex
	limit int
	buf   []byte
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, line...)
	t.buf = append(t.buf, '\n')
	if len(t.buf) > t.limit {
		t.buf = t.buf[len(t.buf)-t.limit:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// SweepTemp removes the private TMPDIRs of loads and calls whose
// lambda-check process is gone (killed before it could clean up). Each is
// named after its owner's pid (lcl<pid>-*, lcc<pid>-*: short, as the host's
// token socket inside must fit a socket path's 108 bytes), so a live one, of this process or another,
// is never touched. It returns the directories removed.
func SweepTemp() []string {
	base := os.TempDir()
	ents, err := os.ReadDir(base)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range ents {
		n := e.Name()
		rest, ok := strings.CutPrefix(n, "lcl")
		if !ok {
			rest, ok = strings.CutPrefix(n, "lcc")
		}
		if !ok || !e.IsDir() {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // alive
		}
		p := filepath.Join(base, n)
		if os.RemoveAll(p) == nil {
			removed = append(removed, p)
		}
	}
	return removed
}
