package proc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A Tree is a program (a Logos host, logoscore) run with everything it
// starts contained in a PID namespace of its own. A supervisor (this
// binary again, see SuperviseMain) is the namespace's first process
// and the program's parent: it reaps whatever is orphaned there, tells the
// caller the program's exact wait status, and forwards the caller's
// SIGTERM. Killing the supervisor makes the kernel kill every other
// process of the namespace, whatever it did with its session, process
// group, signal mask or output; nothing can leave a PID namespace.
//
// Why a PID namespace: a process group or session is left by one setsid
// call; a subreaper keeps the orphans but must chase a forking tree with
// signals; a cgroup needs a delegated cgroup v2 hierarchy, which neither
// this machine kind (cgroup v1) nor an unprivileged service has. A PID
// namespace needs only root or unprivileged user namespaces (a user
// namespace mapping the caller's own uid is created with it when not
// root), and its end is atomic.
type Tree struct {
	outer   *os.Process
	ns      string // "pid:[inode]"
	selfPid int    // the supervisor's pid inside the namespace
	hostPid int    // the program's pid inside the namespace
	control *os.File

	exited chan struct{}
	status syscall.WaitStatus
	lost   error // the supervisor ended without reporting the program's end

	waitOnce sync.Once
}

// TreeOptions shape a contained program.
type TreeOptions struct {
	// Self is the binary that runs SuperviseMain (default: this one).
	Self string
	// Bwrap, when set, is bubblewrap: the supervisor runs inside it, with
	// BwrapArgs before the command and bubblewrap's own PID namespace.
	Bwrap     string
	BwrapArgs []string
	Env       []string
	Dir       string
	Stdin     *os.File // nil: /dev/null
	Stdout    *os.File // the program's output (a pipe's write end)
	Stderr    *os.File
}

// superviseArg is argv[1] of a supervisor.
const superviseArg = "__lambda-check-supervise"

// ErrNoNamespaces says a PID namespace cannot be made here.
var ErrNoNamespaces = errors.New("no PID namespace can be created here")

// StartTree starts path with args contained.
func StartTree(o TreeOptions, path string, args ...string) (*Tree, error) {
	self := o.Self
	if self == "" {
		var err error
		if self, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	controlR, controlW, err := os.Pipe()
	if err != nil {
		statusR.Close()
		statusW.Close()
		return nil, err
	}
	defer statusW.Close()
	defer controlR.Close()
	argv := append([]string{self, superviseArg, "--", path}, args...)
	bin := self
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if o.Bwrap != "" {
		bin = o.Bwrap
		argv = append(append(append([]string{o.Bwrap, "--unshare-pid", "--die-with-parent"}, o.BwrapArgs...), "--"), argv...)
	} else {
		attr.Cloneflags = syscall.CLONE_NEWPID
		if os.Geteuid() != 0 {
			attr.Cloneflags |= syscall.CLONE_NEWUSER
			attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getuid(), HostID: os.Getuid(), Size: 1}}
			attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getgid(), HostID: os.Getgid(), Size: 1}}
			attr.GidMappingsEnableSetgroups = false
		}
	}
	stdin := o.Stdin
	if stdin == nil {
		if stdin, err = os.Open(os.DevNull); err != nil {
			return nil, err
		}
		defer stdin.Close()
	}
	p, err := os.StartProcess(bin, argv, &os.ProcAttr{
		Dir: o.Dir, Env: o.Env, Sys: attr,
		Files: []*os.File{stdin, o.Stdout, o.Stderr, statusW, controlR},
	})
	if err != nil {
		statusR.Close()
		controlW.Close()
		if o.Bwrap == "" && (errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSPC)) {
			return nil, fmt.Errorf("%w (%v): verify contains each load in one; run as root, or allow unprivileged user namespaces (sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1, on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0; systemd: RestrictNamespaces must allow user and pid)", ErrNoNamespaces, err)
		}
		return nil, err
	}
	t := &Tree{outer: p, control: controlW, exited: make(chan struct{})}
	started := make(chan error, 1)
	go t.readStatus(statusR, started)
	select {
	case err := <-started:
		if err != nil {
			t.Kill()
			return nil, err
		}
	case <-time.After(10 * time.Second):
		t.Kill()
		return nil, errors.New("the supervisor did not start the program within 10s")
	}
	return t, nil
}

// report is one line of the supervisor's status pipe.
type report struct {
	NS     string `json:"ns,omitempty"`
	Self   int    `json:"self,omitempty"`
	Host   int    `json:"host,omitempty"`
	Error  string `json:"error,omitempty"`
	Exit   *int   `json:"exit,omitempty"` // the raw wait status
	Exited bool   `json:"exited,omitempty"`
}

func (t *Tree) readStatus(r *os.File, started chan<- error) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		var rep report
		if json.Unmarshal(sc.Bytes(), &rep) != nil {
			continue
		}
		switch {
		case first && rep.Error != "":
			started <- errors.New(rep.Error)
			first = false
		case first:
			t.ns, t.selfPid, t.hostPid = rep.NS, rep.Self, rep.Host
			started <- nil
			first = false
		case rep.Exit != nil:
			t.status = syscall.WaitStatus(*rep.Exit)
			close(t.exited)
			return
		}
	}
	if first {
		started <- errors.New("the supervisor ended before it started the program")
		return
	}
	t.lost = errors.New("the supervisor ended before the program did")
	close(t.exited)
}

// Pid is the outer process (the supervisor, or bubblewrap): the leader of
// the tree's process group.
func (t *Tree) Pid() int { return t.outer.Pid }

// Exited is closed when the program has ended; Status then says how.
func (t *Tree) Exited() <-chan struct{} { return t.exited }

// Status is the program's wait status once Exited is closed; the error
// says the supervisor was lost instead.
func (t *Tree) Status() (syscall.WaitStatus, error) { return t.status, t.lost }

// Term asks the supervisor to send the program SIGTERM.
func (t *Tree) Term() { _, _ = io.WriteString(t.control, "term\n") }

// A Process is one process of a tree.
type Process struct {
	Pid  int    `json:"pid"`
	Comm string `json:"comm"`
}

func (p Process) String() string { return fmt.Sprintf("%d (%s)", p.Pid, p.Comm) }

// Others lists the live processes of the tree other than the supervisor,
// bubblewrap's init and the program: what the program started that still
// runs.
func (t *Tree) Others() []Process {
	var out []Process
	for _, p := range t.members() {
		if p.inner == 1 || p.inner == t.selfPid || p.inner == t.hostPid || p.zombie {
			continue
		}
		out = append(out, Process{Pid: p.pid, Comm: p.comm})
	}
	return out
}

type member struct {
	pid, inner int
	comm       string
	zombie     bool
}

// members lists the processes in the tree's namespace (their pid/ns link
// names it), with their innermost pid (the last of NSpid).
func (t *Tree) members() []member {
	if t.ns == "" {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []member
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err != nil || ns != t.ns {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		m := member{pid: pid}
		for _, line := range bytes.Split(b, []byte("\n")) {
			k, v, _ := strings.Cut(string(line), ":")
			v = strings.TrimSpace(v)
			switch k {
			case "Name":
				m.comm = v
			case "State":
				m.zombie = strings.HasPrefix(v, "Z") || strings.HasPrefix(v, "X")
			case "NSpid":
				f := strings.Fields(v)
				if len(f) > 0 {
					m.inner, _ = strconv.Atoi(f[len(f)-1])
				}
			}
		}
		out = append(out, m)
	}
	return out
}

// Kill ends the whole tree: the outer process is killed, which takes the
// namespace and everything in it; it returns once the outer process is
// reaped, with an error naming any process of the namespace still alive
// after 2 s (the kernel guarantees none, so that would be a bug to report).
func (t *Tree) Kill() error {
	_ = syscall.Kill(-t.outer.Pid, syscall.SIGKILL)
	_ = t.outer.Kill()
	t.control.Close()
	t.wait()
	until := time.Now().Add(2 * time.Second)
	for {
		var alive []string
		for _, m := range t.members() {
			if !m.zombie {
				alive = append(alive, Process{Pid: m.pid, Comm: m.comm}.String())
			}
		}
		if len(alive) == 0 {
			return nil
		}
		if time.Now().After(until) {
			return fmt.Errorf("processes %s survived their namespace's end", strings.Join(alive, ", "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (t *Tree) wait() {
	t.waitOnce.Do(func() { _, _ = t.outer.Wait() })
}

// IsSupervisor says whether this process was started as a tree's
// supervisor (a main calls SuperviseMain first thing when it is).
func IsSupervisor() bool { return len(os.Args) > 3 && os.Args[1] == superviseArg && os.Args[2] == "--" }

// SuperviseMain is a tree's supervisor: it starts the program, reports
// its pid and namespace, reaps every process orphaned into the
// namespace, reports the program's wait status, forwards "term" as
// SIGTERM, and ends when its caller closes the control pipe (or is gone).
// It never returns.
func SuperviseMain() {
	status := os.NewFile(3, "status")
	control := os.NewFile(4, "control")
	syscall.CloseOnExec(3)
	syscall.CloseOnExec(4)
	enc := json.NewEncoder(status)
	say := func(r report) { _ = enc.Encode(r) }
	// Orphans of the program come here also when this is not the
	// namespace's first process (under bubblewrap).
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, 36 /* PR_SET_CHILD_SUBREAPER */, 1, 0)
	path := os.Args[3]
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p, err := os.StartProcess(path, os.Args[3:], &os.ProcAttr{
		Env: os.Environ(), Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}, Sys: attr,
	})
	if err != nil {
		say(report{Error: err.Error()})
		os.Exit(1)
	}
	ns, _ := os.Readlink("/proc/self/ns/pid")
	say(report{NS: ns, Self: os.Getpid(), Host: p.Pid})
	// The output is the program's alone from here: its end is the end of
	// everything that holds it.
	if null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
		_ = syscall.Dup2(int(null.Fd()), 0)
		_ = syscall.Dup2(int(null.Fd()), 1)
		_ = syscall.Dup2(int(null.Fd()), 2)
		null.Close()
	}
	go func() {
		sc := bufio.NewScanner(control)
		for sc.Scan() {
			if sc.Text() == "term" {
				_ = syscall.Kill(p.Pid, syscall.SIGTERM)
			}
		}
		// The caller is gone or done: everything ends with this process.
		_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		os.Exit(0)
	}()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		switch {
		case pid == p.Pid:
			raw := int(ws)
			say(report{Exit: &raw})
		case errors.Is(err, syscall.ECHILD):
			time.Sleep(50 * time.Millisecond)
		}
	}
}
