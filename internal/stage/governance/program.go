package governance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/proc"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
)

// DeciderError is a program decider that did not decide: it is missing,
// failed, timed out or answered something that is not a valid decision.
// The proposal stays pending; nothing decides in its place.
type DeciderError struct {
	Proposal string
	Err      error
}

func (e *DeciderError) Error() string {
	return fmt.Sprintf("decider for %s: %v", e.Proposal, e.Err)
}
func (e *DeciderError) Unwrap() error { return e.Err }

// Decide runs the program backend's decider on a pending proposal: the
// command gets proposal.json on stdin (and LAMBDA_CHECK_PROPOSAL_DIR,
// LAMBDA_CHECK_PROPOSAL_ID in its environment) and must print one signed
// decision record on stdout, by a registry key with the approver role
// among the eligible signers. The record is checked like any other and
// filed. It returns the record's verdict.
func Decide(ctx context.Context, env Env, id string) (*Decision, error) {
	if env.Config.Backend != Program {
		return nil, transition("the %s backend does not run a decider; decisions come from 'governance approve' and 'reject'", env.Config.Backend)
	}
	st, err := EvaluateOne(env, id)
	if err != nil {
		return nil, err
	}
	if st.State != StatePending {
		return nil, transition("proposal %s is %s: the decider runs on pending proposals", id, st.State)
	}
	b, err := LoadBound(env.Proposals, id)
	if err != nil {
		return nil, err
	}
	in, err := os.ReadFile(filepath.Join(env.Proposals, id, propose.ProposalFile))
	if err != nil {
		return nil, err
	}
	timeout := env.Config.ProgramTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := proc.Command(cctx, proc.Options{}, env.Config.Program[0], env.Config.Program[1:]...)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Env = append(environ(env.Config.Environ), "LAMBDA_CHECK_PROPOSAL_DIR="+filepath.Join(env.Proposals, id), "LAMBDA_CHECK_PROPOSAL_ID="+id)
	var out, errb bytes.Buffer
	cmd.Stdout = &limited{w: &out, n: 1 << 20}
	cmd.Stderr = &limited{w: &errb, n: 64 << 10}
	err = cmd.Start()
	if err == nil {
		pgid := cmd.Process.Pid
		if env.Config.Track != nil {
			env.Config.Track.Add(pgid)
		}
		err = cmd.Wait()
		// Whatever the decider left running goes with it; a child that
		// kept its output open does not make a decision that was given
		// fail.
		_ = proc.KillGroup(pgid)
		if env.Config.Track != nil {
			env.Config.Track.Done(pgid)
		}
		if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() {
			err = nil
		}
	}
	if err != nil {
		if errors.Is(cctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %s", timeout)
		}
		msg := strings.TrimSpace(errb.String())
		if msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return nil, &DeciderError{Proposal: id, Err: err}
	}
	raw := bytes.TrimSpace(out.Bytes())
	v, err := CheckDecision(raw, b, env.Registry, env.Now)
	if err != nil {
		return nil, &DeciderError{Proposal: id, Err: fmt.Errorf("its answer is not a valid decision: %w", err)}
	}
	eligible := false
	for _, k := range env.Config.eligible(env.Registry) {
		eligible = eligible || k == v.Decision.Signer
	}
	if !eligible {
		return nil, &DeciderError{Proposal: id, Err: fmt.Errorf("its answer is signed by %s, which is not among the keys that decide", v.Decision.Signer)}
	}
	if err := RecordsFor(env.Decisions, id).Write(v.Decision.Signer, append(raw, '\n')); err != nil {
		return nil, err
	}
	return v.Decision, nil
}

type limited struct {
	w io.Writer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, errors.New("output too large")
	}
	l.n -= len(p)
	return l.w.Write(p)
}

// environ is the decider's environment: the caller's, else a PATH alone.
func environ(env []string) []string {
	if env == nil {
		return []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	}
	return append([]string(nil), env...)
}
