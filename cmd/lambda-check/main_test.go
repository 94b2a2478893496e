package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/lambda-os/lambda-check/internal/proc"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/lambda-os/lambda-check/internal/cli"
	"github.com/lambda-os/lambda-check/internal/logos/standin"
	"github.com/lambda-os/lambda-check/internal/requires"
	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/sign"
)

func TestMain(m *testing.M) {
	if proc.IsSupervisor() {
		proc.SuperviseMain()
	}
	testscript.Main(m, map[string]func(){
		// Stand-ins for the Logos runtime hosts of both generations.
		"logos_host":    func() { standin.HostMain("march") },
		"logos_host_qt": func() { standin.HostMain("august") },
		// genplugin DIR NAME [MODE]: a module directory with a stand-in
		// plugin (manifest layout, Qt 6.4).
		"genplugin": func() {
			a := os.Args[1:]
			if len(a) < 2 {
				fmt.Fprintln(os.Stderr, "usage: genplugin DIR NAME [MODE]")
				os.Exit(2)
			}
			p := standin.Plugin{Name: a[1], QtMajor: 6, QtMinor: 4, Main: a[1] + "_plugin", IID: "org.logos.ModuleInterface"}
			if len(a) > 2 {
				p.Mode = a[2]
			}
			dir := filepath.Join(a[0], a[1])
			so := a[1] + "_plugin.so"
			err := os.MkdirAll(dir, 0o755)
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(fmt.Sprintf(`{"name": %q, "version": "0.1.0", "main": {"linux-amd64": %q, "linux-x86_64": %q, "linux-arm64": %q, "linux-aarch64": %q}}`, a[1], so, so, so, so)), 0o644)
			}
			if err == nil {
				err = standin.WritePlugin(filepath.Join(dir, so), p)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			os.Exit(0)
		},
		"lambda-check": func() {
			dir, _ := os.Getwd()
			// As main does: SIGINT and SIGTERM cancel the command.
			ctx, _ := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			os.Exit(cli.Main(ctx, os.Args[1:], cli.Env{
				Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Dir: dir, Getenv: os.Getenv, Environ: os.Environ, Self: self(),
			}))
		},
	})
}

// TestScripts runs the end-to-end scripts in testdata/script against real
// generated workspaces.
func TestScripts(t *testing.T) {
	requires.Tool(t, "git")
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("HOME", env.WorkDir)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// exits N CMD [ARGS...]: runs CMD as exec does (its stdout and
			// stderr are then what stdout and stderr match) and fails unless
			// it exits with code N.
			"exits": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 2 {
					ts.Fatalf("usage: exits N CMD [ARGS...]")
				}
				want, err := strconv.Atoi(args[0])
				ts.Check(err)
				got := 0
				if err := ts.Exec(args[1], args[2:]...); err != nil {
					var ee *exec.ExitError
					if !errors.As(err, &ee) {
						ts.Fatalf("%s: %v", args[1], err)
					}
					got = ee.ExitCode()
				}
				if got != want {
					ts.Fatalf("%s exited %d, want %d", args[1], got, want)
				}
			},
			// setenv-file NAME FILE: sets $NAME to FILE's content, without
			// its final newline (an id a command wrote).
			"setenv-file": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 2 {
					ts.Fatalf("usage: setenv-file NAME FILE")
				}
				ts.Setenv(args[0], strings.TrimRight(ts.ReadFile(args[1]), "\n"))
			},
			// hooksrv DIR: a webhook (and Bot API) receiver on loopback for
			// the rest of the script; each request's body goes to DIR/N.json,
			// its signature header to DIR/N.sig and its path to DIR/N.path;
			// $HOOK_URL is its address.
			"hooksrv": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: hooksrv DIR")
				}
				dir := ts.MkAbs(args[0])
				ts.Check(os.MkdirAll(dir, 0o755))
				var mu sync.Mutex
				n := 0
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					b, _ := io.ReadAll(r.Body)
					mu.Lock()
					defer mu.Unlock()
					n++
					_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.json", n)), b, 0o644)
					_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.sig", n)), []byte(r.Header.Get("X-Lambda-Check-Signature")), 0o644)
					_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.path", n)), []byte(r.URL.Path), 0o644)
					// What the Telegram Bot API answers; webhooks ignore it.
					_, _ = io.WriteString(w, `{"ok":true,"result":{}}`)
				}))
				ts.Defer(srv.Close)
				ts.Setenv("HOOK_URL", srv.URL+"/hook")
			},
			// trynext FILE: runs every command of the "Try next:" list in FILE
			// (a demo's stdout) with sh, as a user would copy it; a command
			// must exit 0, or N where its comment says "exits N". Commands
			// that need nix are skipped when nix is missing (not in CI).
			"trynext": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: trynext FILE")
				}
				lines := strings.Split(ts.ReadFile(args[0]), "\n")
				i := 0
				for i < len(lines) && !strings.HasPrefix(lines[i], "Try next") {
					i++
				}
				if i == len(lines) {
					ts.Fatalf("no Try next list in %s", args[0])
				}
				ran := 0
				for _, l := range lines[i+1:] {
					if !strings.HasPrefix(l, "  ") {
						break
					}
					cmd, comment, _ := strings.Cut(strings.TrimSpace(l), "   # ")
					want := 0
					if n, ok := strings.CutPrefix(comment, "exits "); ok {
						want, _ = strconv.Atoi(strings.TrimRight(strings.Fields(n)[0], ":"))
					}
					if strings.HasPrefix(cmd, "nix ") {
						if _, err := exec.LookPath("nix"); err != nil && os.Getenv("CI") != "true" {
							ts.Logf("skipped (no nix): %s", cmd)
							continue
						}
					}
					c := exec.Command("sh", "-c", cmd)
					c.Dir = ts.Getenv("WORK")
					c.Env = append(os.Environ(), "PATH="+ts.Getenv("PATH"), "HOME="+ts.Getenv("HOME"),
						"NIX_CONFIG=experimental-features = nix-command flakes\nsubstituters =\nsandbox = false\nwarn-dirty = false")
					out, err := c.CombinedOutput()
					got := 0
					if ee, ok := err.(*exec.ExitError); ok {
						got = ee.ExitCode()
					} else if err != nil {
						ts.Fatalf("%s: %v", cmd, err)
					}
					if got != want {
						ts.Fatalf("%s: exit %d, want %d:\n%s", cmd, got, want, out)
					}
					ran++
				}
				ts.Logf("ran %d suggested commands", ran)
				if ran < 10 {
					ts.Fatalf("only %d suggested commands ran", ran)
				}
			},
			// genws DIR [MODULES] [KEY=VALUE...]: generate a workspace in DIR
			// (DIR/workspace, DIR/remotes). Without MODULES, the demo's; with
			// it, nothing ahead or drifted unless asked: drift=REPO,...
			// override=REPO,... fork=REPO:OWNER signed badsig=REPO,...
			"genws": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 1 {
					ts.Fatalf("usage: genws DIR [MODULES] [KEY=VALUE...]")
				}
				o := sample.DemoOptions()
				rest := args[1:]
				if len(rest) > 0 && !strings.Contains(rest[0], "=") && rest[0] != "signed" {
					n, err := strconv.Atoi(rest[0])
					ts.Check(err)
					o.Modules = n
					o.Ahead, o.Drift = nil, nil
					rest = rest[1:]
				}
				for _, kv := range rest {
					k, v, _ := strings.Cut(kv, "=")
					switch k {
					case "drift":
						o.Drift = strings.Split(v, ",")
					case "override":
						o.Override = strings.Split(v, ",")
					case "fork":
						repo, owner, _ := strings.Cut(v, ":")
						o.Fork = map[string]string{repo: owner}
					case "signed":
						key, err := sign.GenerateKey("logos-release", bytes.NewReader(bytes.Repeat([]byte{7}, 32)))
						ts.Check(err)
						o.SigningKey = key
					case "badsig":
						o.BadSignature = strings.Split(v, ",")
					default:
						ts.Fatalf("genws: unknown option %q", kv)
					}
				}
				_, err := sample.Generate(context.Background(), ts.MkAbs(args[0]), o)
				ts.Check(err)
			},
		},
	})
}
