package logos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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

// contained runs logoscore contained (proc.StartTree: the hosts it starts
// and whatever they start end with it) and returns its output and exit
// status; ctx's end kills it.
func (c Core) contained(ctx context.Context, tmp string, sb Sandbox, stdout, stderr io.Writer, args ...string) (*proc.Tree, error) {
	opts := sb.tree(tmp)
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	opts.Stdout, opts.Stderr = outW, errW
	tr, err := proc.StartTree(opts, c.Path, args...)
	outW.Close()
	errW.Close()
	var copies sync.WaitGroup
	for _, p := range []struct {
		r *os.File
		w io.Writer
	}{{outR, stdout}, {errR, stderr}} {
		copies.Add(1)
		go func() {
			defer copies.Done()
			defer p.r.Close()
			_, _ = io.Copy(p.w, io.LimitReader(p.r, 16<<20))
			_, _ = io.Copy(io.Discard, p.r)
		}()
	}
	if err != nil {
		copies.Wait()
		return nil, err
	}
	sb.Track.Add(tr.Pid())
	select {
	case <-tr.Exited():
	case <-ctx.Done():
	}
	if err := tr.Kill(); err != nil {
		return nil, err
	}
	sb.Track.Done(tr.Pid())
	copies.Wait()
	return tr, nil
}

// MarchArg quotes a call argument for March logoscore's -c syntax
// (parseParams of logos-liblogos: commas split outside quotes, ' or "
// quote, no escapes, each argument trimmed, empty ones dropped, a leading
// @ reads a file). A ' inside is written as '"'"'. Arguments it cannot
// pass as given are refused.
func MarchArg(a string) (string, error) {
	switch {
	case a == "":
		return "", errors.New("an empty argument: March logoscore drops empty arguments")
	case strings.TrimSpace(a) != a:
		return "", fmt.Errorf("argument %q starts or ends with white space, which March logoscore trims", a)
	case strings.HasPrefix(a, "@"):
		return "", fmt.Errorf("argument %q starts with @, which March logoscore reads as a file name", a)
	}
	return "'" + strings.ReplaceAll(a, "'", `'"'"'`) + "'", nil
}

func (c Core) march(ctx context.Context, tmp, dir string, modules []string, calls []Call, sb Sandbox) ([]CallResult, error) {
	args := []string{"-m", dir, "-l", strings.Join(modules, ",")}
	outc := make([]CallResult, len(calls))
	for i, cl := range calls {
		quoted := make([]string, len(cl.Args))
		for j, a := range cl.Args {
			q, err := MarchArg(a)
			if err != nil {
				for k := range calls {
					outc[k] = CallResult{Call: calls[k], Error: "not run: call " + calls[i].Module + "." + calls[i].Method + " cannot be written for logoscore: " + err.Error()}
				}
				return outc, nil
			}
			quoted[j] = q
		}
		args = append(args, "-c", fmt.Sprintf("%s.%s(%s)", cl.Module, cl.Method, strings.Join(quoted, ",")))
	}
	args = append(args, "--quit-on-finish")
	var out, errb bytes.Buffer
	tr, err := c.contained(ctx, tmp, sb, &out, &errb, args...)
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("logoscore did not finish within the deadline")
	}
	ws, lost := tr.Status()
	var runErr error
	switch {
	case lost != nil:
		runErr = lost
	case ws.Signaled():
		runErr = fmt.Errorf("logoscore was killed by %s", signalName(ws.Signal()))
	case ws.ExitStatus() != 0:
		runErr = fmt.Errorf("logoscore exit status %d", ws.ExitStatus())
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
	for i, cl := range calls {
		r := CallResult{Call: cl}
		switch {
		case i < len(results):
			r.Result = results[i]
			r.OK, r.Error = check(cl, r.Result)
		case i == len(results) && runErr != nil:
			r.Error = firstOf(errLine, runErr.Error())
		default:
			r.Error = "not run: an earlier call of this module failed"
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
	var derr lockedBuffer
	dctx, stopDaemon := context.WithCancel(ctx)
	daemonDone := make(chan error, 1)
	go func() {
		_, err := c.contained(dctx, tmp, sb, io.Discard, &derr, "-D", "-m", dir, "--config-dir", cfg)
		daemonDone <- err
	}()
	defer func() {
		stopDaemon()
		if derr := <-daemonDone; derr != nil && err == nil {
			err = derr
		}
	}()
	client := func(args ...string) (string, int, error) {
		cmd := c.command(ctx, tmp, sb, 0, append([]string{"--config-dir", cfg}, args...)...)
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

// lockedBuffer is a buffer written by one goroutine and read by another.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
