// Package exitcode is the one table of process exit codes lambda-check uses,
// and the classification of errors into them.
package exitcode

import (
	"context"
	"errors"
)

// Exit codes. They are part of the command-line contract and documented in
// docs/artifacts.md; never renumber them.
const (
	// OK: the command did what was asked and the verdict, if any, is pass.
	OK = 0
	// Error: an unexpected error (a bug or the environment); no verdict.
	Error = 1
	// Fail: the stage completed and wrote its artifact, and the verdict is
	// fail (findings, failed verification, tampered log, healed regression).
	Fail = 3
	// Busy: another lambda-check holds the state directory; nothing was
	// done, and the same command can simply be run again later (75 is
	// sysexits' EX_TEMPFAIL).
	Busy = 75
	// Usage: the command line is wrong.
	Usage = 80
	// BadInput: an input is bad or missing (not a workspace, wrong artifact
	// kind, unsupported schema, invalid config).
	BadInput = 82
	// Cancelled: interrupted by a signal or a cancelled context.
	Cancelled = 130
)

// Table lists every code with a one-line meaning, in ascending order.
var Table = []struct {
	Code    int
	Name    string
	Meaning string
}{
	{OK, "ok", "done; the verdict, if any, is pass"},
	{Error, "error", "unexpected error (a bug or the environment); no verdict"},
	{Fail, "fail", "the stage completed and wrote its artifact; the verdict is fail"},
	{Busy, "busy", "another lambda-check holds the state directory; nothing was done: retry later"},
	{Usage, "usage", "the command line is wrong"},
	{BadInput, "bad-input", "an input is bad or missing (workspace, artifact, config)"},
	{Cancelled, "cancelled", "interrupted by a signal"},
}

// InputError marks an error caused by bad or missing input. It maps to
// BadInput. Hint, when set, is shown to the user on its own line.
type InputError struct {
	Err  error
	Hint string
}

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// Input wraps err as an InputError with an optional hint.
func Input(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &InputError{Err: err, Hint: hint}
}

// BusyError says the state directory is held by another lambda-check. It
// maps to Busy; Hint says what to do.
type BusyError struct {
	Err  error
	Hint string
}

func (e *BusyError) Error() string { return e.Err.Error() }
func (e *BusyError) Unwrap() error { return e.Err }

// UsageError marks a wrong command line. It maps to Usage.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// FailError reports that a stage completed with a failing verdict. It maps to
// Fail. It carries no further detail: the artifact holds it.
type FailError struct{ Reason string }

func (e *FailError) Error() string { return e.Reason }

// Hint returns the hint attached to err, if any.
func Hint(err error) string {
	var ie *InputError
	if errors.As(err, &ie) {
		return ie.Hint
	}
	var be *BusyError
	if errors.As(err, &be) {
		return be.Hint
	}
	return ""
}

// Of classifies err into an exit code. A nil error is OK.
func Of(err error) int {
	var (
		ie *InputError
		ue *UsageError
		fe *FailError
		be *BusyError
	)
	switch {
	case err == nil:
		return OK
	case errors.Is(err, context.Canceled):
		return Cancelled
	case errors.As(err, &ue):
		return Usage
	case errors.As(err, &be):
		return Busy
	case errors.As(err, &ie):
		return BadInput
	case errors.As(err, &fe):
		return Fail
	default:
		return Error
	}
}
