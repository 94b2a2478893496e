// Package workflow is the layer between the command line and the stages.
// Each function runs one stage the way every caller runs it (a command, the
// cycle, the demo): from an explicit environment, on values handed in,
// writing its artifact and recording its audit event together, and
// returning a typed result. Nothing here prints to stdout or parses flags;
// the command line turns flags into one call and renders what it returns.
package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/config"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/flake"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/logos"
	"github.com/lambda-os/lambda-check/internal/nixcli"
	"github.com/lambda-os/lambda-check/internal/stage/governance"
	"github.com/lambda-os/lambda-check/internal/statedir"
)

// Files of the state directory the workflows share.
const (
	AuditFile      = "audit.jsonl"
	CheckpointsDir = "checkpoints"
	CyclesFile     = "cycles.jsonl"
	HistoryFile    = "verify-history.jsonl"
	IntegrityCache = "integrity-cache.json"
	NotifyMemory   = "notify-state.json"
	ApplyJournal   = "apply-journal.json"
	AuditHead      = "audit-head.json"
)

// Env is what every workflow runs in: the workspace, the state directory
// (with its writer lock, once Lock took it), the configuration, the clock,
// who is acting and where notes go.
type Env struct {
	// Workspace is the superproject's absolute directory.
	Workspace string
	// StateDir is the state directory's absolute path; State is it once
	// opened.
	StateDir string
	State    *statedir.Dir
	held     bool
	Config   *config.Config
	// Now is the clock of records and trust: audit events, decisions,
	// commits, histories, key validity. It is the system's; --now and
	// SOURCE_DATE_EPOCH never reach it.
	Now func() time.Time
	// AsOf is the time reports are rendered at and age rules (lock-age)
	// compare with: --now, else SOURCE_DATE_EPOCH, else Now. nil: Now.
	AsOf     func() time.Time
	Producer artifact.Producer
	// Actor names who acts, for the audit log and commits: user@host.
	Actor string
	// Log tells the operator a warning or a note (stderr); nil discards.
	Log func(format string, a ...any)
	// Progress, when set, is told how far a long stage is.
	Progress func(stage string, done, total int)
	// Getenv and Environ are the process environment (git and ssh
	// configuration, subprocesses).
	Getenv  func(string) string
	Environ []string
}

func (e *Env) asOf() time.Time {
	if e.AsOf != nil {
		return e.AsOf()
	}
	return e.Now()
}

// Logf tells the operator a note (stderr).
func (e *Env) Logf(format string, a ...any) {
	if e.Log != nil {
		e.Log(format, a...)
	}
}

func (e *Env) progress(stage string, done, total int) {
	if e.Progress != nil {
		e.Progress(stage, done, total)
	}
}

func (e *Env) getenv(k string) string {
	if e.Getenv == nil {
		return ""
	}
	return e.Getenv(k)
}

// Open opens the state directory without taking the lock, for work that
// only reads.
func (e *Env) Open() error {
	if e.State != nil {
		return nil
	}
	sd, err := statedir.Open(e.StateDir)
	if err != nil {
		return err
	}
	e.State = sd
	return nil
}

// Lock opens the state directory and takes its writer lock, waiting up to
// wait for another holder; release gives it back. Whatever a killed writer
// left half-done is cleaned up first: temporary files, a torn last audit
// line.
func (e *Env) Lock(ctx context.Context, wait time.Duration) (release func(), err error) {
	if e.held {
		return func() {}, nil
	}
	sd, err := statedir.Open(e.StateDir)
	if err != nil {
		return nil, err
	}
	lock, err := sd.Lock(ctx, wait)
	if errors.Is(err, statedir.ErrLocked) {
		return nil, &exitcode.BusyError{Err: err, Hint: "another lambda-check (a cycle?) is working in this state directory: run this again when it is done, or raise --lock-timeout"}
	}
	if err != nil {
		return nil, err
	}
	e.State, e.held = sd, true
	release = func() {
		// The log's head as this node left it, never moving back: a log
		// restored from an older copy (events dropped) ends before it and
		// fails 'audit verify' until it has grown past it again.
		if h, err := audit.ReadHead(sd.File(AuditFile)); err == nil && h.Seq > 0 {
			var last audit.Head
			if b, err := os.ReadFile(sd.File(AuditHead)); err == nil && json.Unmarshal(b, &last) == nil && last.Seq > h.Seq {
				h = last
			}
			if b, err := json.Marshal(h); err == nil {
				_ = artifact.WriteFile(sd.File(AuditHead), b, 0o644)
			}
		}
		e.held = false
		_ = lock.Unlock()
	}
	if _, err := sd.Sweep(); err != nil {
		release()
		return nil, err
	}
	// First the log (every repair below is recorded in it).
	if n, err := audit.RepairTail(sd.File(AuditFile)); err != nil {
		release()
		return nil, fmt.Errorf("repair the audit log's torn tail: %w", err)
	} else if n > 0 {
		e.Logf("audit log ended with a partial line (a writer died mid-write): moved its %d bytes to %s.torn", n, AuditFile)
		if err := e.Record(audit.Event{Stage: "audit", Result: audit.ResultFail,
			Detail: fmt.Sprintf("repaired: a partial last line of %d bytes was moved to %s.torn", n, AuditFile)}); err != nil {
			release()
			return nil, err
		}
	}
	// What a killed lambda-check left running (a decider's or a host's
	// children) is killed and said.
	if killed := logos.KillLeftovers(sd.File("running")); len(killed) > 0 {
		e.Logf("killed the leftover process groups %v of an earlier, interrupted lambda-check", killed)
		if err := e.Record(audit.Event{Stage: "lock", Result: audit.ResultFail,
			Detail: fmt.Sprintf("killed leftover process groups %v of an interrupted run", killed)}); err != nil {
			release()
			return nil, err
		}
	}
	// An apply a crash interrupted is finished or undone before anything
	// else reads the workspace.
	if did, err := governance.Recover(sd.File(ApplyJournal)); err != nil {
		release()
		return nil, exitcode.Input(err, "look at the workspace with git status; the journal holds what the apply saved")
	} else if did != "" {
		e.Logf("%s", did)
		if err := e.Record(audit.Event{Stage: "apply", Result: audit.ResultFail, Detail: "recovered: " + did}); err != nil {
			release()
			return nil, err
		}
	}
	return release, nil
}

// Held says whether this environment holds the state directory's lock.
func (e *Env) Held() bool { return e.held }

// mustHold fails a writing workflow run without the lock.
func (e *Env) mustHold() error {
	if !e.held {
		return errors.New("workflow: the state directory's lock is not held")
	}
	return nil
}

// File is a path in the state directory.
func (e *Env) File(name string) string { return e.State.File(name) }

// Record appends an event to the audit log; the lock is held.
func (e *Env) Record(ev audit.Event) error {
	if err := e.mustHold(); err != nil {
		return err
	}
	ev.Time = e.Now().UTC().Format(time.RFC3339)
	ev.Actor = e.Actor
	if ev.Result == "" {
		ev.Result = audit.ResultOK
	}
	if _, err := audit.Append(e.File(AuditFile), ev); err != nil {
		return exitcode.Input(fmt.Errorf("append to the audit log: %w", err), "run 'lambda-check audit verify' to see what is wrong with it")
	}
	return nil
}

// Written is an artifact as written.
type Written struct {
	Path   string
	Digest string
	Bytes  []byte
}

// Input names the artifact for another's inputs.
func (w Written) Input(kind string) []artifact.Input {
	if w.Digest == "" {
		return nil
	}
	return []artifact.Input{{Kind: kind, Digest: w.Digest}}
}

// writeArtifact writes an artifact and records its audit event from the
// same inputs and output: what the log says was written is what was.
func writeArtifact[T any](e *Env, spec artifact.Spec, path string, inputs []artifact.Input, payload T, ev audit.Event) (Written, error) {
	if err := e.mustHold(); err != nil {
		return Written{}, err
	}
	b, digest, err := artifact.Write(path, &artifact.Envelope[T]{
		Kind: spec.Kind, SchemaVersion: spec.Version, Producer: e.Producer, Inputs: inputs, Payload: payload,
	})
	if err != nil {
		return Written{}, err
	}
	ev.Inputs = inputs
	ev.Output = output(spec.Kind, path, b)
	if err := e.Record(ev); err != nil {
		return Written{}, err
	}
	return Written{Path: path, Digest: digest, Bytes: b}, nil
}

// output describes written bytes for an audit event.
func output(kind, path string, b []byte) *audit.Output {
	return &audit.Output{Kind: kind, Digest: artifact.Digest(b), Path: path}
}

// Nix finds nix for the workflows that can use it; when it is not
// installed it returns nil and a note saying so.
func (e *Env) Nix() (*nixcli.Nix, string) {
	n, err := nixcli.Find(e.Environ)
	if err != nil {
		return nil, "nix is not installed"
	}
	return n, ""
}

// evaluator is nix as a flake.nix evaluator, or nil.
func (e *Env) evaluator() flake.Evaluator {
	if n, _ := e.Nix(); n != nil {
		return n
	}
	return nil
}

// Git is how this user reaches remotes as git would: the system and
// global git configuration (insteadOf) and ssh's keys and known hosts.
func (e *Env) Git() (*gitrepo.GitConfig, *gitrepo.SSH, error) {
	cfg, err := gitrepo.UserConfig(gitrepo.ConfigEnv{Getenv: e.getenv})
	if err != nil {
		return nil, nil, exitcode.Input(err, "fix the git configuration file named; git itself reads it the same way")
	}
	ssh := gitrepo.DefaultSSH(e.getenv)
	return cfg, &ssh, nil
}

// Actor names who runs this: $USER@host.
func Actor(getenv func(string) string) string {
	user := getenv("USER")
	if user == "" {
		user = "unknown"
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return user + "@" + host
}

// firstOf is the first non-empty string.
func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// Short shortens a commit id for people.
func Short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	if h == "" {
		return "-"
	}
	return h
}
