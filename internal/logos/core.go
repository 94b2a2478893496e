package logos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/proc"
)

// Call is a method call through logoscore with the result it must give.
type Call struct {
	Module string   `json:"module"`
	Method string   `json:"method"`
	Args   []string `json:"args,omitempty"`
	// Expect is the result the call must return; "" accepts any result of
	// a successful call.
	Expect string `json:"expect,omitempty"`
}

// CallResult is a call's outcome.
type CallResult struct {
	Call   Call   `json:"call"`
	OK     bool   `json:"ok"`
	Result string `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Core is a logoscore binary.
type Core struct {
	Path       string     `json:"path"`
	Generation Generation `json:"generation"`
}

const marchResult = "Method call successful. Result: "

// Calls loads the modules in logoscore and makes the calls, checking
// each result: March's inline mode (-m -l -c ... --quit-on-finish; without
// it logoscore never exits), August's daemon and client (-D, load-module,
// call, stop). Everything runs in one process group, killed afterwards:
// logoscore leaves its hosts running otherwise.
func (c Core) Calls(ctx context.Context, modulesDir string, modules []string, calls []Call, deadline time.Duration, sb Sandbox) ([]CallResult, error) {
	tmp, err := os.MkdirTemp("", fmt.Sprintf("lcc%d-", os.Getpid()))
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	if c.Generation == August {
		return c.august(ctx, tmp, modulesDir, modules, calls, sb)
	}
	return c.march(ctx, tmp, modulesDir, modules, calls, sb)
}

func (c Core) command(ctx context.Context, tmp string, sb Sandbox, pgid int, args ...string) *exec.Cmd {
	cmd := proc.Command(ctx, proc.Options{Pgid: pgid}, c.Path, args...)
	cmd.Env = minimalEnv(tmp, sb)
	cmd.Dir = tmp
	return cmd
}

func (c Core) march(ctx context.Context, tmp, dir string, modules []string, calls []Call, sb Sandbox) ([]CallResult, error) {
	args := []string{"-m", dir, "-l", strings.Join(modules, ",")}
	for _, cl := range calls {
		args = append(args, "-c", fmt.Sprintf("%s.%s(%s)", cl.Module, cl.Method, strings.Join(cl.Args, ",")))
	}
	args = append(args, "--quit-on-finish")
	cmd := c.command(ctx, tmp, sb, 0, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	runErr := cmd.Start()
	if runErr == nil {
		sb.Track.Add(cmd.Process.Pid)
		runErr = cmd.Wait()
	}
	if cmd.Process != nil {
		killGroup(cmd.Process.Pid)
		if groupAlive(cmd.Process.Pid, 2*time.Second) {
			return nil, fmt.Errorf("processes of logoscore's group %d survived SIGKILL", cmd.Process.Pid)
		}
		sb.Track.Done(cmd.Process.Pid)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("logoscore did not finish within the deadline")
	}
	var results []string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), marchResult); ok {
			results = append(results, v)
		}
	}
	errLine := ""
	for _, l := range strings.Split(errb.String(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "Error:") {
			errLine = strings.TrimSpace(l)
			break
		}
	}
	outc := make([]CallResult, len(calls))
	for i, cl := range calls {
		r := CallResult{Call: cl}
		switch {
		case i < len(results):
			r.Result = results[i]
			r.OK, r.Error = check(cl, r.Result)
		case i == len(results) && runErr != nil:
			r.Error = firstOf(errLine, runErr.Error())
		default:
			r.Error = "not run: an earlier call failed"
		}
		outc[i] = r
	}
	return outc, nil
}

func (c Core) august(ctx context.Context, tmp, dir string, modules []string, calls []Call, sb Sandbox) (_ []CallResult, err error) {
	cfg := filepath.Join(tmp, "config")
	if err := os.MkdirAll(cfg, 0o700); err != nil {
		return nil, err
	}
	daemon := c.command(ctx, tmp, sb, 0, "-D", "-m", dir, "--config-dir", cfg)
	var derr bytes.Buffer
	daemon.Stderr = &derr
	if err = daemon.Start(); err != nil {
		return nil, fmt.Errorf("start logoscore daemon: %w", err)
	}
	pgid := daemon.Process.Pid
	sb.Track.Add(pgid)
	defer func() {
		killGroup(pgid)
		_ = daemon.Wait()
	}()
	defer func() {
		if !anyInGroup(pgid) {
			sb.Track.Done(pgid)
		}
	}()
	defer func() {
		if groupAlive(pgid, 2*time.Second) {
			err = fmt.Errorf("processes of logoscore's group %d survived SIGKILL", pgid)
		}
	}()
	client := func(args ...string) (string, int, error) {
		cmd := c.command(ctx, tmp, sb, pgid, append([]string{"--config-dir", cfg}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return strings.TrimSpace(out.String() + errb.String()), ee.ExitCode(), nil
		}
		return strings.TrimSpace(out.String()), 0, err
	}
	// Exit 2: no daemon yet.
	for _, m := range modules {
		for {
			msg, code, err := client("load-module", m)
			if err != nil {
				return nil, err
			}
			if code == 2 {
				if ctx.Err() != nil {
					return nil, fmt.Errorf("the logoscore daemon did not answer: %s", strings.TrimSpace(derr.String()))
				}
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if code != 0 {
				return nil, fmt.Errorf("load-module %s: exit %d: %s", m, code, msg)
			}
			break
		}
	}
	outc := make([]CallResult, len(calls))
	for i, cl := range calls {
		r := CallResult{Call: cl}
		msg, code, err := client(append([]string{"call", cl.Module, cl.Method}, cl.Args...)...)
		switch {
		case err != nil:
			r.Error = err.Error()
		case code != 0:
			r.Error = fmt.Sprintf("exit %d: %s", code, msg)
		default:
			var v struct {
				Result json.RawMessage `json:"result"`
			}
			if json.Unmarshal([]byte(msg), &v) == nil && v.Result != nil {
				var s string
				if json.Unmarshal(v.Result, &s) == nil {
					r.Result = s
				} else {
					r.Result = string(v.Result)
				}
			} else {
				r.Result = msg
			}
			r.OK, r.Error = check(cl, r.Result)
		}
		outc[i] = r
	}
	_, _, _ = client("stop")
	return outc, nil
}

func check(cl Call, result string) (bool, string) {
	if cl.Expect != "" && result != cl.Expect {
		return false, fmt.Sprintf("returned %q, expected %q", result, cl.Expect)
	}
	return true, ""
}

func firstOf(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
