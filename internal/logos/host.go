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
	"path/filepath"
	"regexp"
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
	ReasonReady = "ready"
	// A signal ended the host: while the plugin was loaded (its
	// constructor, a static initializer), in its initLogos, after the
	// ready line, or at another point (ReasonCrashed).
	ReasonCrashed              = "crashed"
	ReasonCrashedInConstructor = "crashed-in-constructor"
	ReasonCrashedInInit        = "crashed-in-init"
	ReasonCrashedAfterReady    = "crashed-after-ready"
	ReasonUncaughtException    = "uncaught-exception"  // SIGABRT from std::terminate
	ReasonExited               = "exited-before-ready" // an exit, any code, before the ready line
	ReasonExitedAfterReady     = "exited-after-ready"  // ready, then gone within the settle time
	ReasonHang                 = "hang"                // alive, no ready line by the deadline
	ReasonNoHandshake          = "no-token-handshake"  // the host never took the token
	ReasonNotPlugin            = "not-a-plugin"
	ReasonNotPluginInterface   = "not-plugin-interface" // a Qt plugin, not a Logos module
	ReasonQtMismatch           = "qt-mismatch"
	ReasonNameMismatch         = "name-mismatch"
	ReasonMissingLibrary       = "missing-library"
	ReasonFakeReady            = "fake-ready" // a ready line out of the host's protocol
	ReasonNoSocket             = "no-socket"  // ready, but the module's socket is not there
	ReasonStartFailed          = "start-failed"
	ReasonLeftRunning          = "left-running" // processes the load started outlived the host
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
	// Supervisor is the binary that runs proc.SuperviseMain (default:
	// this one).
	Supervisor string
	// Settle is how long a ready host must stay alive (default 300 ms).
	Settle time.Duration
	// Starting, when set, bounds the loads that start at once: a load
	// holds one of its slots from its start until its ready line, its end
	// or its deadline (the settle time and the stop only wait).
	Starting chan struct{}
}

// LoadResult is the outcome of one load.
type LoadResult struct {
	Verdict string `json:"verdict"` // pass or fail
	Reason  string `json:"reason"`
	Detail  string `json:"detail,omitempty"`
	// ReadyMillis is how long the ready line took.
	ReadyMillis int64 `json:"readyMillis,omitempty"`
	// Signal, ExitCode and Phase: how the host ended before it passed,
	// and where in the host's protocol it was (see docs/verify.md).
	Signal   string `json:"signal,omitempty"`
	ExitCode *int   `json:"exitCode,omitempty"`
	Phase    string `json:"phase,omitempty"`
	// LeftRunning are the processes the load started that outlived the
	// host; they were killed.
	LeftRunning []proc.Process `json:"leftRunning,omitempty"`
	// Output is the host's output (stderr and stdout), its end when long.
	Output string `json:"output,omitempty"`
}

// tree is how a load or a logoscore run in the private directory tmp is
// contained: the minimal environment, under bubblewrap when set (no
// network, read-only / but tmp).
func (sb Sandbox) tree(tmp string) proc.TreeOptions {
	opts := proc.TreeOptions{Self: sb.Supervisor, Env: minimalEnv(tmp, sb), Dir: tmp}
	if sb.Bwrap != "" {
		opts.Bwrap = sb.Bwrap
		opts.BwrapArgs = []string{"--unshare-net", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--bind", tmp, tmp}
	}
	return opts
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

// Phases of the March host's protocol, as its output shows them.
const (
	PhaseHandshake = "handshake"   // waiting for the auth token
	PhaseLoading   = "loading"     // the plugin library loaded and constructed
	PhaseSetup     = "setup"       // the host registers the module
	PhaseInit      = "initLogos"   // the plugin's initLogos runs
	PhaseReady     = "after-ready" // the ready line was printed
)

// March host lines that mark its protocol (logos_host.cpp and
// plugin_initializer.cpp of logos-liblogos; LogosAPIProvider of the SDK).
const (
	marchTokenReceived = "Auth token received securely"
	marchLoaded        = "Plugin loaded successfully"
	marchInitStart     = "LogosAPIProvider: Calling initLogos on object before wrapping"
	marchInitDone      = "LogosAPIProvider: Successfully called initLogos on object"
	marchRegistered    = "Plugin registered for remote access with name: "
	marchMismatch      = "Plugin name mismatch!"
	marchNoInterface   = "Plugin does not implement the PluginInterface"
)

// protocol follows a host's output: the phase it is in, the name it
// registered the module under, and whether its ready line came where the
// protocol puts it.
type protocol struct {
	mu sync.Mutex
	protoState
}

type protoState struct {
	gen        Generation
	name       string
	phase      string
	shook      bool   // the token was delivered
	registered string // March: the name the host registered
	mismatch   string // March: the host's name mismatch warning
	ready      bool
	fake       string // why a ready line did not count
}

// line takes one output line; it reports a ready line (genuine or not).
func (p *protocol) line(l string) (ready bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := strings.TrimSpace(l)
	if p.gen == August {
		if t == augustReady+strconv.Quote(p.name) {
			if !p.shook {
				p.fake = "a ready line before the host was given its token"
			}
			p.ready, p.phase = true, PhaseReady
			return true
		}
		return false
	}
	switch {
	case t == marchTokenReceived:
		p.phase = PhaseLoading
	case t == marchLoaded:
		p.phase = PhaseSetup
	case t == marchInitStart:
		p.phase = PhaseInit
	case t == marchInitDone:
		p.phase = PhaseSetup
	case strings.HasPrefix(t, marchMismatch):
		p.mismatch = t
	case strings.HasPrefix(t, marchRegistered):
		p.registered = unquote(strings.TrimPrefix(t, marchRegistered))
	case t == marchReady:
		switch {
		case !p.shook:
			p.fake = "a ready line before the host was given its token"
		case p.registered == "":
			p.fake = "a ready line before the host registered the module: not the host's own"
		}
		p.ready, p.phase = true, PhaseReady
		return true
	}
	return false
}

// delivering marks the token as being written: the host can go on from
// here, not before, so a ready line seen earlier is not the host's.
func (p *protocol) delivering() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shook = true
	if p.gen == August {
		p.phase = "" // August's host marks no phases
	}
}

func (p *protocol) snapshot() protoState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.protoState
}

func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return strings.Trim(s, `"`)
}

// Load runs the host on one plugin, contained (proc.StartTree: a PID
// namespace with a supervisor; under bubblewrap when set): a fresh private
// TMPDIR, a minimal environment; the token handshake of the host's
// generation. PASS only when the ready line comes where the host's
// protocol puts it, the host is still alive after the settle time, the
// module's socket is there and the host registered it under its own
// name. Then the host is stopped; whatever it started that is still
// running fails the module (left-running), and the whole tree is killed.
func (h Host) Load(ctx context.Context, name, plugin string, deadline time.Duration, sb Sandbox) LoadResult {
	limit := sb.StderrLimit
	if limit <= 0 {
		limit = 16 << 10
	}
	settle := sb.Settle
	if settle <= 0 {
		settle = 300 * time.Millisecond
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
	opts := sb.tree(tmp)
	pr, pw, err := os.Pipe()
	if err != nil {
		return LoadResult{Verdict: "fail", Reason: ReasonStartFailed, Detail: err.Error()}
	}
	defer pr.Close()
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		pw.Close()
		return LoadResult{Verdict: "fail", Reason: ReasonStartFailed, Detail: err.Error()}
	}
	defer stdinW.Close()
	opts.Stdin, opts.Stdout, opts.Stderr = stdinR, pw, pw
	release := func() {}
	if sb.Starting != nil {
		select {
		case sb.Starting <- struct{}{}:
		case <-ctx.Done():
			pw.Close()
			stdinR.Close()
			return LoadResult{Verdict: "fail", Reason: ReasonHang, Detail: "cancelled"}
		}
		var once sync.Once
		release = func() { once.Do(func() { <-sb.Starting }) }
		defer release()
	}
	start := time.Now()
	tr, err := proc.StartTree(opts, h.Path, args...)
	pw.Close()
	stdinR.Close()
	if err != nil {
		return LoadResult{Verdict: "fail", Reason: ReasonStartFailed, Detail: err.Error()}
	}
	sb.Track.Add(tr.Pid())

	pro := &protocol{protoState: protoState{gen: h.Generation, name: name, phase: PhaseHandshake}}
	out := &tail{limit: limit}
	ready := make(chan time.Duration, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			out.add(line)
			if pro.line(line) {
				select {
				case ready <- time.Since(start):
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	token := newToken()
	handshake := make(chan error, 1)
	if h.Generation == August {
		go func() {
			pro.delivering()
			_, err := io.WriteString(stdinW, token+"\n")
			handshake <- err
		}()
	} else {
		stdinW.Close()
		go func() {
			handshake <- sendToken(ctx, filepath.Join(tmp, "logos_token_"+name), token, start.Add(deadline), pro.delivering)
		}()
	}
	// The output written before an exit, read to its end or for a moment
	// (a process the plugin started may hold it open).
	drain := func() {
		select {
		case <-readDone:
		case <-time.After(300 * time.Millisecond):
		}
	}

	timer := time.NewTimer(deadline)
	defer timer.Stop()
	var res LoadResult
	exited := tr.Exited()
wait:
	for {
		select {
		case <-handshake:
			handshake = nil
		case d := <-ready:
			release()
			st := pro.snapshot()
			if st.fake != "" {
				res = LoadResult{Verdict: "fail", Reason: ReasonFakeReady, Detail: st.fake, Phase: st.phase}
				break wait
			}
			// Alive after the settle time, or it did not really serve.
			select {
			case <-exited:
				drain()
				res = classifyExit(tr, pro.snapshot(), out.String())
				exited = nil
				break wait
			case <-time.After(settle):
			case <-ctx.Done():
				res = LoadResult{Verdict: "fail", Reason: ReasonHang, Detail: "cancelled"}
				break wait
			}
			res = h.serving(tmp, pro.snapshot())
			res.ReadyMillis = d.Milliseconds()
			break wait
		case <-exited:
			drain()
			res = classifyExit(tr, pro.snapshot(), out.String())
			exited = nil
			break wait
		case <-timer.C:
			if h.Generation == March && !pro.snapshot().shook {
				res = LoadResult{Verdict: "fail", Reason: ReasonNoHandshake, Detail: fmt.Sprintf("the host offered no token socket within %s", deadline)}
			} else {
				res = LoadResult{Verdict: "fail", Reason: ReasonHang, Detail: fmt.Sprintf("no ready line within %s", deadline), Phase: pro.snapshot().phase}
			}
			break wait
		case <-ctx.Done():
			res = LoadResult{Verdict: "fail", Reason: ReasonHang, Detail: "cancelled"}
			break wait
		}
	}
	// Stop the host: a serving one is asked with SIGTERM first, so that
	// what it started has the chance to end with it; whatever still runs
	// then was started to outlive it.
	if exited != nil && res.Verdict == "pass" {
		tr.Term()
		select {
		case <-exited:
		case <-time.After(2 * time.Second):
		}
	}
	left := tr.Others()
	for until := time.Now().Add(500 * time.Millisecond); len(left) > 0 && time.Now().Before(until) && ctx.Err() == nil; {
		time.Sleep(20 * time.Millisecond)
		left = tr.Others()
	}
	killErr := tr.Kill()
	if len(left) > 0 {
		res.LeftRunning = left
		names := make([]string, len(left))
		for i, p := range left {
			names[i] = p.String()
		}
		msg := fmt.Sprintf("started %d process(es) that outlived the host, killed: %s", len(left), strings.Join(names, ", "))
		if res.Verdict == "pass" {
			res.Verdict, res.Reason, res.Detail = "fail", ReasonLeftRunning, msg
		} else {
			res.Detail = strings.TrimPrefix(res.Detail+"; "+msg, "; ")
		}
	}
	if killErr != nil {
		res.Verdict, res.Reason, res.Detail = "fail", ReasonLeftRunning, killErr.Error()
	} else {
		sb.Track.Done(tr.Pid())
	}
	drain()
	res.Output = out.String()
	return res
}

// serving checks a host that printed its ready line and stayed alive: the
// module's socket is there, and (March) the host registered the module
// under its own name.
func (h Host) serving(tmp string, st protoState) LoadResult {
	if h.Generation == March {
		switch {
		case st.mismatch != "":
			return LoadResult{Verdict: "fail", Reason: ReasonNameMismatch, Phase: st.phase,
				Detail: fmt.Sprintf("the plugin's name() is %q, not %q: the host registered it under that name, so every call to %s fails (%s)", st.registered, st.name, st.name, st.mismatch)}
		case st.registered != st.name:
			return LoadResult{Verdict: "fail", Reason: ReasonNameMismatch, Phase: st.phase,
				Detail: fmt.Sprintf("the host registered the module as %q, not %q", st.registered, st.name)}
		}
		if !isSocket(filepath.Join(tmp, "logos_"+st.name)) {
			return LoadResult{Verdict: "fail", Reason: ReasonNoSocket, Phase: st.phase, Detail: "ready, but the module's socket logos_" + st.name + " is not there"}
		}
	} else {
		found := isSocket(filepath.Join(tmp, "logos_"+st.name))
		if ms, _ := filepath.Glob(filepath.Join(tmp, "logos_"+st.name+"_*")); !found {
			for _, m := range ms {
				found = found || isSocket(m)
			}
		}
		if !found {
			return LoadResult{Verdict: "fail", Reason: ReasonNoSocket, Phase: st.phase, Detail: "ready, but no socket logos_" + st.name + "_<instance> is there"}
		}
	}
	return LoadResult{Verdict: "pass", Reason: ReasonReady}
}

func isSocket(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}

var (
	missingLib = regexp.MustCompile(`([^\s:()"']+): cannot open shared object file`)
	qtVersion  = regexp.MustCompile(`incompatible Qt library\.? \(([0-9.]+)\)`)
)

// classifyExit says why a host ended before it passed, from its exact wait
// status (the supervisor's), the protocol phase and the output.
func classifyExit(tr *proc.Tree, st protoState, output string) LoadResult {
	ws, lost := tr.Status()
	res := LoadResult{Verdict: "fail", Reason: ReasonExited, Phase: st.phase}
	if lost != nil {
		res.Detail = lost.Error()
		return res
	}
	if ws.Signaled() {
		sig := signalName(ws.Signal())
		res.Signal = sig
		res.Detail = "killed by " + sig
		switch {
		case ws.Signal() == syscall.SIGABRT && strings.Contains(output, "terminate called after throwing"):
			res.Reason = ReasonUncaughtException
			res.Detail = "std::terminate: " + terminateLine(output)
		case st.ready:
			res.Reason = ReasonCrashedAfterReady
			res.Detail = sig + " within the settle time after the ready line"
		case st.phase == PhaseLoading:
			res.Reason = ReasonCrashedInConstructor
			res.Detail = sig + " while the plugin was loaded (its constructor or a static initializer)"
		case st.phase == PhaseInit:
			res.Reason = ReasonCrashedInInit
			res.Detail = sig + " in the plugin's initLogos"
		default:
			res.Reason = ReasonCrashed
			if st.phase != "" {
				res.Detail = sig + " during " + st.phase
			}
		}
		return res
	}
	code := ws.ExitStatus()
	res.ExitCode = &code
	res.Detail = fmt.Sprintf("exit status %d", code)
	if st.ready {
		res.Reason = ReasonExitedAfterReady
		res.Detail = fmt.Sprintf("exit status %d within the settle time after the ready line", code)
		return res
	}
	low := strings.ToLower(output)
	switch {
	case missingLib.MatchString(output):
		res.Reason = ReasonMissingLibrary
		res.Detail = fmt.Sprintf("%s is not found (exit status %d)", missingLib.FindStringSubmatch(output)[1], code)
	case strings.Contains(low, "error while loading shared libraries"):
		res.Reason = ReasonMissingLibrary
	case strings.Contains(output, marchMismatch), strings.Contains(low, "name mismatch"), strings.Contains(low, "does not match the module name"):
		res.Reason = ReasonNameMismatch
	case qtVersion.MatchString(output):
		res.Reason = ReasonQtMismatch
		res.Detail = fmt.Sprintf("the plugin was built against Qt %s, newer than the host's (exit status %d)", qtVersion.FindStringSubmatch(output)[1], code)
	case strings.Contains(low, "uses incompatible qt library"), strings.Contains(low, "built with a newer qt"), strings.Contains(low, "qt version mismatch"):
		res.Reason = ReasonQtMismatch
	case strings.Contains(output, marchNoInterface):
		res.Reason = ReasonNotPluginInterface
		res.Detail = fmt.Sprintf("a Qt plugin that does not implement the Logos PluginInterface (exit status %d)", code)
	case strings.Contains(low, "not a valid qt plugin"), strings.Contains(low, "is not a qt plugin"), strings.Contains(low, "not a plugin"):
		res.Reason = ReasonNotPlugin
	}
	return res
}

// terminateLine is std::terminate's message: the exception's type and its
// what().
func terminateLine(output string) string {
	var parts []string
	for _, l := range strings.Split(output, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "terminate called after throwing") || strings.HasPrefix(t, "what():") {
			parts = append(parts, t)
		}
	}
	return strings.Join(parts, " ")
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
func sendToken(ctx context.Context, path, token string, until time.Time, connected func()) error {
	for {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			connected()
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
