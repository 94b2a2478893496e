package standin

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// CoreMain runs a stand-in logoscore of a generation. March: inline mode,
// -m DIR -l a,b -c 'mod.method(args)' ... [--quit-on-finish] (without it,
// it never exits), leaving a child behind as the real one leaves its
// hosts. August: "-D -m DIR --config-dir D" is the daemon; "--config-dir D
// load-module|call|stop ..." are clients (exit 2: no daemon, 3: module
// error, 4: method error; JSON on stdout). Methods: ping → "pong",
// echo → its arguments, refuse → "false", fail → an error; a module whose
// name contains "broken" does not load.
func CoreMain(generation string) {
	args := os.Args[1:]
	if generation == "august" {
		augustCore(args)
		return
	}
	var calls []string
	quit := false
	var modules []string
	dir := ""
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-c":
			i++
			calls = append(calls, args[i])
		case "-l":
			i++
			modules = strings.Split(args[i], ",")
		case "-m":
			i++
			dir = args[i]
		case "--quit-on-finish":
			quit = true
		}
	}
	// The host logoscore starts for the modules, left behind on exit.
	if c := exec.Command("sleep", "300"); c.Start() == nil {
		fmt.Fprintf(os.Stderr, "started host pid %d\n", c.Process.Pid)
	}
	for _, m := range modules {
		// March logoscore discovers modules by their manifest.json only.
		if _, err := os.Stat(filepath.Join(dir, m, "manifest.json")); err != nil {
			fmt.Fprintf(os.Stderr, "Error: Plugin not loaded: %s\n", m)
			os.Exit(1)
		}
		if strings.Contains(m, "broken") {
			fmt.Fprintf(os.Stderr, "Error: failed to load module %s\n", m)
			os.Exit(1)
		}
	}
	for _, c := range calls {
		mod, rest, _ := strings.Cut(c, ".")
		meth, argl, _ := strings.Cut(rest, "(")
		argl = strings.TrimSuffix(argl, ")")
		res, err := method(meth, strings.Join(marchParams(argl), ","))
		if err != "" {
			fmt.Fprintf(os.Stderr, "Error: %s.%s: %s\n", mod, meth, err)
			os.Exit(1)
		}
		fmt.Printf("Method call successful. Result: %s\n", res)
	}
	if !quit {
		select {}
	}
	os.Exit(0)
}

func method(meth, args string) (string, string) {
	switch meth {
	case "ping":
		return "pong", ""
	case "echo":
		return args, ""
	case "refuse":
		return "false", ""
	case "fail":
		return "", "method failed"
	}
	return "ok", ""
}

func augustCore(args []string) {
	var cfg string
	var rest []string
	daemon := false
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--config-dir":
			i++
			cfg = args[i]
		case "-D":
			daemon = true
		case "-m":
			i++
		default:
			rest = append(rest, args[i])
		}
	}
	sock := filepath.Join(cfg, "daemon.sock")
	if daemon {
		time.Sleep(50 * time.Millisecond) // clients may come before it listens
		l, err := net.Listen("unix", sock)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		loaded := map[string]bool{}
		for {
			c, err := l.Accept()
			if err != nil {
				os.Exit(1)
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			var req []string
			_ = json.Unmarshal([]byte(line), &req)
			code, msg := 0, ""
			switch {
			case len(req) == 0:
				code, msg = 1, "bad request"
			case req[0] == "stop":
				fmt.Fprintf(c, "0\t{}\n")
				c.Close()
				os.Exit(0)
			case req[0] == "load-module" && len(req) == 2:
				if strings.Contains(req[1], "broken") {
					code, msg = 3, `{"error": "module failed to load"}`
				} else {
					loaded[req[1]] = true
					msg = `{"loaded": true}`
				}
			case req[0] == "call" && len(req) >= 3:
				if !loaded[req[1]] {
					code, msg = 3, `{"error": "module not loaded"}`
					break
				}
				res, e := method(req[2], strings.Join(req[3:], ","))
				if e != "" {
					code, msg = 4, fmt.Sprintf(`{"error": %q}`, e)
				} else {
					b, _ := json.Marshal(map[string]string{"result": res})
					msg = string(b)
				}
			default:
				code, msg = 1, "unknown command"
			}
			fmt.Fprintf(c, "%d\t%s\n", code, msg)
			c.Close()
		}
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "no logoscore daemon")
		os.Exit(2)
	}
	b, _ := json.Marshal(rest)
	fmt.Fprintf(c, "%s\n", b)
	line, _ := bufio.NewReader(c).ReadString('\n')
	code, msg, _ := strings.Cut(strings.TrimSpace(line), "\t")
	fmt.Println(msg)
	n := 1
	fmt.Sscanf(code, "%d", &n)
	os.Exit(n)
}

// marchParams splits a call's arguments as March logoscore does
// (parseParams in logos-liblogos): commas outside ' or " quotes split, no
// escapes, each argument trimmed, empty ones dropped.
func marchParams(s string) []string {
	var out []string
	var cur strings.Builder
	var quote rune
	flush := func() {
		if t := strings.TrimSpace(cur.String()); t != "" {
			out = append(out, t)
		}
		cur.Reset()
	}
	for _, c := range s {
		switch {
		case quote == 0 && (c == '\'' || c == '"'):
			quote = c
		case quote == 0 && c == ',':
			flush()
		case quote != 0 && c == quote:
			quote = 0
		default:
			cur.WriteRune(c)
		}
	}
	flush()
	return out
}
