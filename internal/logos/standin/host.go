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

// Modes, chosen by a word in the module's name: "segv", "abort", "exit0"
// (exits 0 before ready), "hang" (no readiness), "childhang" (a child in
// its group, then no readiness), "nosocket" (March: never
// offers the token socket), "namemismatch", "missinglib", "child" (leaves
// a child process running), "slow" (ready after 150 ms). Any other name
// loads and is ready.

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
	if strings.Contains(mode, "missinglib") {
		fmt.Fprintf(os.Stderr, "%s: error while loading shared libraries: libwaku.so.0: cannot open shared object file: No such file or directory\n", os.Args[0])
		os.Exit(127)
	}
	// The token handshake.
	if generation == "august" {
		tok := make(chan string, 1)
		go func() {
			line, err := bufio.NewReader(os.Stdin).ReadString('\n')
			if err != nil {
				fmt.Fprintln(os.Stderr, "no auth token on stdin (EOF)")
				os.Exit(1)
			}
			tok <- line
		}()
		select {
		case <-tok:
		case <-time.After(10 * time.Second):
			fmt.Fprintln(os.Stderr, "timed out waiting for the auth token")
			os.Exit(1)
		}
	} else {
		if strings.Contains(mode, "nosocket") {
			time.Sleep(time.Hour)
		}
		l, err := net.Listen("unix", filepath.Join(tmp, "logos_token_"+name))
		if err != nil {
			fmt.Fprintln(os.Stderr, "listen:", err)
			os.Exit(1)
		}
		_ = l.(*net.UnixListener).SetDeadline(time.Now().Add(10 * time.Second))
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "no auth token within 10 s")
			os.Exit(1)
		}
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		c.Close()
		l.Close()
		if n == 0 {
			fmt.Fprintln(os.Stderr, "empty auth token")
			os.Exit(1)
		}
	}
	fmt.Fprintf(os.Stderr, "Loading plugin %s\n", path)
	switch {
	case strings.Contains(mode, "segv"):
		die(syscall.SIGSEGV)
	case strings.Contains(mode, "abort"):
		die(syscall.SIGABRT)
	case strings.Contains(mode, "exit0"):
		os.Exit(0)
	case strings.Contains(mode, "childhang"):
		// A child in the host's group, then no readiness.
		c := exec.Command("sleep", "300")
		if err := c.Start(); err == nil {
			fmt.Fprintf(os.Stderr, "started child pid %d\n", c.Process.Pid)
		}
		time.Sleep(time.Hour)
	case strings.Contains(mode, "hang"):
		time.Sleep(time.Hour)
	case strings.Contains(mode, "namemismatch"):
		fmt.Fprintf(os.Stderr, "Fatal: module name mismatch: expected %q, the plugin says %q\n", name, "other_module")
		os.Exit(1)
	case strings.Contains(mode, "child"):
		c := exec.Command("sleep", "300")
		if err := c.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "started child pid %d\n", c.Process.Pid)
	case strings.Contains(mode, "slow"):
		time.Sleep(150 * time.Millisecond)
	}
	if l, err := net.Listen("unix", filepath.Join(tmp, "logos_"+name)); err == nil {
		defer l.Close()
	}
	if generation == "august" {
		fmt.Fprintf(os.Stderr, "LogosAPIProvider: successfully published %q\n", name)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		<-sig
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, "Logos host ready, entering event loop...")
	select {}
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
