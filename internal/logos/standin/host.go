// Package standin is a stand-in Logos runtime: a host that speaks exactly the documented protocol of both
// generations (with deliberate failure modes chosen by the module's name),
// and tiny ELF plugins carrying a Qt metadata note. Tests run the host as
// their own binary (see HostMain), and the demo runs it as its SIMULATED
// runtime; nothing here loads real plugins.
package standin

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/lambda-os/lambda-check/internal/logos"
)

// Modes, chosen by a word in the module's name (or the plugin's
// "testMode" metadata), each a behaviour measured on the real March host
// (LOGOS.md): "segv" (SIGSEGV in the constructor), "segvinit" (in
// initLogos), "abort", "throw" (an uncaught exception), "exit0", "exit3",
// "hang", "childhang" (a child in its group, then no readiness),
// "nosocket" (March: never offers the token socket), "nomodsocket" (ready
// without the module's socket), "namemismatch" (March: a warning, the
// module registered under another name; August: fatal), "missinglib",
// "qtnewer", "nointerface", "notplugin", "fakeready" (the plugin prints
// the ready line itself, then hangs), "crashafterready", "daemonstdio" /
// "daemonclosed" (a daemon in its own session keeping / closing the
// output, then ready), "blocksignals" (ignores SIGTERM, a daemon that
// does too, no readiness), "forkcrash" (a daemon, then SIGSEGV), "child"
// (a child left running), "helper" (a child that ends with the host),
// "slow" (ready after 150 ms). Any other name loads and is ready.

// HostMain runs the stand-in host of a generation ("march" or "august")
// with the process's arguments, and exits.
func HostMain(generation string) {
	args := os.Args[1:]
	if len(args) == 1 && (args[0] == "--help" || args[0] == "-h") {
		if generation == "august" {
			fmt.Println("Usage: logos_host_qt --name <module> --path <plugin.so> [--token-source stdin|fd:N|file:PATH] [--instance ID]")
		} else {
			fmt.Println("Usage: logos_host -n|--name <module> -p|--path <plugin.so>")
		}
		os.Exit(0)
	}
	var name, path string
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-n", "--name":
			name = args[i+1]
		case "-p", "--path":
			path = args[i+1]
		}
	}
	if name == "" || path == "" {
		fmt.Fprintln(os.Stderr, "usage: -n|--name <module> -p|--path <plugin.so>")
		os.Exit(2)
	}
	tmp := os.Getenv("TMPDIR")
	// The plugin's embedded metadata may choose the mode ("testMode"),
	// so a rebuilt plugin of the same module can behave differently.
	mode := name
	if f, err := os.Open(path); err == nil {
		if m, err := logos.ReadPluginMeta(f); err == nil {
			if tm, ok := m.Metadata["testMode"].(string); ok {
				mode = tm
			}
		}
		f.Close()
	}
	say := func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
	march := generation != "august"
	if march {
		say("Logos host starting for plugin: %q", name)
		say("Plugin path: %q", path)
	}
	// The token handshake.
	if !march {
		tok := make(chan string, 1)
		go func() {
			line, err := bufio.NewReader(os.Stdin).ReadString('\n')
			if err != nil {
				say("no auth token on stdin (EOF)")
				os.Exit(1)
			}
			tok <- line
		}()
		select {
		case <-tok:
		case <-time.After(10 * time.Second):
			say("timed out waiting for the auth token")
			os.Exit(1)
		}
	} else {
		if strings.Contains(mode, "nosocket") {
			time.Sleep(time.Hour)
		}
		l, err := net.Listen("unix", filepath.Join(tmp, "logos_token_"+name))
		if err != nil {
			say("Failed to start token server: %v", err)
			os.Exit(1)
		}
		say("Token server started, waiting for auth token...")
		_ = l.(*net.UnixListener).SetDeadline(time.Now().Add(10 * time.Second))
		c, err := l.Accept()
		if err != nil {
			say("Timeout waiting for auth token")
			os.Exit(1)
		}
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		c.Close()
		l.Close()
		if n == 0 {
			say("No auth token received")
			os.Exit(1)
		}
		say("Auth token received securely")
	}
	failLoad := func(msg string) {
		say("Failed to load plugin: %q", msg)
		os.Exit(1)
	}
	// Loading the library and constructing the plugin.
	switch {
	case strings.Contains(mode, "missinglib"):
		failLoad(fmt.Sprintf("Cannot load library %s: (libwaku.so.0: cannot open shared object file: No such file or directory)", path))
	case strings.Contains(mode, "qtnewer"):
		say("qt.core.plugin.loader: In %s:\n  Plugin uses incompatible Qt library (6.9.0) [release]", path)
		failLoad(fmt.Sprintf("The plugin '%s' uses incompatible Qt library. (6.9.0) [release]", path))
	case strings.Contains(mode, "notplugin"):
		failLoad(fmt.Sprintf("Failed to extract plugin meta data from '%s': '%s' is not a Qt plugin (metadata not found)", path, path))
	case strings.Contains(mode, "forkcrash"):
		daemon(false)
		die(syscall.SIGSEGV)
	case strings.Contains(mode, "segvinit"):
	case strings.Contains(mode, "segv"):
		die(syscall.SIGSEGV)
	case strings.Contains(mode, "abort"):
		die(syscall.SIGABRT)
	case strings.Contains(mode, "throw"):
		say("terminate called after throwing an instance of 'std::runtime_error'\n  what():  fixture: thrown from the constructor")
		die(syscall.SIGABRT)
	case strings.Contains(mode, "exit0"):
		os.Exit(0)
	case strings.Contains(mode, "exit3"):
		os.Exit(3)
	case strings.Contains(mode, "fakeready"):
		say("Logos host ready, entering event loop...")
		time.Sleep(time.Hour)
	case strings.Contains(mode, "blocksignals"):
		signal.Ignore(syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT)
		daemon(true, "trap '' TERM HUP INT")
		time.Sleep(time.Hour)
	case strings.Contains(mode, "childhang"):
		// A child in the host's group, then no readiness.
		c := exec.Command("sleep", "300")
		if err := c.Start(); err == nil {
			say("started child pid %d", c.Process.Pid)
		}
		time.Sleep(time.Hour)
	case strings.Contains(mode, "hang"):
		time.Sleep(time.Hour)
	case strings.Contains(mode, "daemonstdio"):
		daemon(false)
	case strings.Contains(mode, "daemonclosed"):
		daemon(true)
	case strings.Contains(mode, "helper"):
		// A child that ends with the host.
		c := exec.Command("sleep", "300")
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err == nil {
			say("started helper pid %d", c.Process.Pid)
		}
	case strings.Contains(mode, "child"):
		c := exec.Command("sleep", "300")
		if err := c.Start(); err != nil {
			say("child: %v", err)
			os.Exit(1)
		}
		say("started child pid %d", c.Process.Pid)
	case strings.Contains(mode, "slow"):
		time.Sleep(150 * time.Millisecond)
	}
	registered := name
	if march {
		say("Plugin loaded successfully")
		if strings.Contains(mode, "nointerface") {
			say("Plugin does not implement the PluginInterface")
			os.Exit(1)
		}
		if strings.Contains(mode, "namemismatch") {
			registered = "other_module"
			say("Plugin name mismatch! Expected: %q Actual: %q", name, registered)
		}
		say("Plugin name: %q", registered)
		say("LogosAPI initialized for plugin: %q", name)
		say("LogosAPIProvider: Calling initLogos on object before wrapping")
		if strings.Contains(mode, "segvinit") {
			die(syscall.SIGSEGV)
		}
		say("LogosAPIProvider: Successfully called initLogos on object")
	} else {
		switch {
		case strings.Contains(mode, "nointerface"):
			say("Plugin does not implement the PluginInterface")
			os.Exit(1)
		case strings.Contains(mode, "namemismatch"):
			say("Fatal: module name mismatch: expected %q, the plugin says %q", name, "other_module")
			os.Exit(1)
		case strings.Contains(mode, "segvinit"):
			die(syscall.SIGSEGV)
		}
	}
	if !strings.Contains(mode, "nomodsocket") {
		sock := "logos_" + registered
		if !march {
			sock += "_0"
		}
		if l, err := net.Listen("unix", filepath.Join(tmp, sock)); err == nil {
			defer l.Close()
		}
	}
	if strings.Contains(mode, "crashafterready") {
		go func() {
			time.Sleep(50 * time.Millisecond)
			die(syscall.SIGSEGV)
		}()
	}
	if !march {
		say("LogosAPIProvider: successfully published %q", name)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		<-sig
		os.Exit(0)
	}
	say("Plugin registered for remote access with name: %q", registered)
	say("Auth token saved for core access")
	say("Logos host ready, entering event loop...")
	select {}
}

// daemon starts a process in its own session that outlives the host:
// keeping the host's output, or with its output closed; trap, when given,
// is a shell trap it sets first (to ignore signals).
func daemon(closed bool, trap ...string) {
	script := strings.Join(append(trap, "exec sleep 300"), "; ")
	c := exec.Command("/bin/sh", "-c", script)
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if !closed {
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
	}
	if err := c.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "daemon:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "started daemon pid %d\n", c.Process.Pid)
}

// die ends the process by the signal's default action, as a crashing C++
// plugin does. The Go runtime keeps its own handlers for these signals,
// so the disposition is reset with the system call itself (an all-zero
// struct sigaction is SIG_DFL).
func die(s syscall.Signal) {
	var act [4]uint64
	_, _, _ = syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(s), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	_ = syscall.Kill(os.Getpid(), s)
	time.Sleep(time.Second)
	os.Exit(99)
}
