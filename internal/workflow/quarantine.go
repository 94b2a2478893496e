package workflow

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/stage/heal"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
)

// QuarantineSpec is quarantine.json's kind and version.
var QuarantineSpec = artifact.Spec{Kind: artifact.KindPrefix + "quarantine", Version: 1}

// QuarantineFile keeps the known-bad revisions in the state directory.
const QuarantineFile = "quarantine.json"

// Quarantined is a revision that failed verify after it was applied: no
// upgrade to it is approvable until an operator clears it.
type Quarantined struct {
	Submodule string `json:"submodule"`
	Rev       string `json:"rev"`
	Module    string `json:"module"`
	Reason    string `json:"reason"`
	// LastPass is the pin the module last passed under; Rollback the
	// rollback proposal heal wrote, if any.
	LastPass string `json:"lastPass,omitempty"`
	Rollback string `json:"rollback,omitempty"`
	Since    string `json:"since"`
}

// Quarantine is quarantine.json's payload.
type Quarantine struct {
	Entries []Quarantined `json:"entries"`
}

// ReadQuarantine reads the known-bad revisions; none when the file does
// not exist.
func ReadQuarantine(e *Env) (*Quarantine, error) {
	if err := e.Open(); err != nil {
		return nil, err
	}
	env, _, err := artifact.Read[Quarantine](e.File(QuarantineFile), QuarantineSpec)
	if errors.Is(err, fs.ErrNotExist) {
		return &Quarantine{Entries: []Quarantined{}}, nil
	}
	if err != nil {
		return nil, exitcode.Input(fmt.Errorf("read %s: %w", QuarantineFile, err), "")
	}
	if env.Payload.Entries == nil {
		env.Payload.Entries = []Quarantined{}
	}
	return &env.Payload, nil
}

// quarantineMap is the quarantine as propose reads it.
func quarantineMap(e *Env) (map[string]string, error) {
	q, err := ReadQuarantine(e)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, x := range q.Entries {
		out[propose.QuarantineKey(x.Submodule, x.Rev)] = fmt.Sprintf("%s failed verify at it (%s) after it was applied", x.Module, x.Reason)
	}
	return out, nil
}

// quarantineRegressions adds the revisions heal found regressed to the
// quarantine, each recorded.
func quarantineRegressions(e *Env, rs []heal.Regression) error {
	var add []Quarantined
	for _, r := range rs {
		if r.Submodule == "" || r.Now == "" {
			continue
		}
		add = append(add, Quarantined{Submodule: r.Submodule, Rev: r.Now, Module: r.Module, Reason: r.Reason,
			LastPass: r.LastPass, Rollback: r.Proposal, Since: e.Now().UTC().Format("2006-01-02T15:04:05Z")})
	}
	if len(add) == 0 {
		return nil
	}
	q, err := ReadQuarantine(e)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, x := range q.Entries {
		have[propose.QuarantineKey(x.Submodule, x.Rev)] = true
	}
	var added []string
	for _, x := range add {
		k := propose.QuarantineKey(x.Submodule, x.Rev)
		if have[k] {
			continue
		}
		have[k] = true
		q.Entries = append(q.Entries, x)
		added = append(added, fmt.Sprintf("%s@%s (%s: %s)", x.Submodule, Short(x.Rev), x.Module, x.Reason))
	}
	if len(added) == 0 {
		return nil
	}
	_, err = writeQuarantine(e, q, "quarantined "+strings.Join(added, ", ")+": upgrades to it are blocked")
	return err
}

func writeQuarantine(e *Env, q *Quarantine, detail string) (Written, error) {
	sort.Slice(q.Entries, func(i, j int) bool {
		a, b := q.Entries[i], q.Entries[j]
		if a.Submodule != b.Submodule {
			return a.Submodule < b.Submodule
		}
		return a.Since < b.Since
	})
	return writeArtifact(e, QuarantineSpec, e.File(QuarantineFile), nil, q, audit.Event{Stage: "quarantine", Detail: detail})
}

// ClearQuarantine lifts the quarantine of the entries sel names:
// SUBMODULE@REV (REV a prefix of at least 7 hex digits), or SUBMODULE for
// all of its revisions. It is recorded with who cleared it and why.
func ClearQuarantine(e *Env, sel, reason string) ([]Quarantined, error) {
	q, err := ReadQuarantine(e)
	if err != nil {
		return nil, err
	}
	sub, rev, byRev := strings.Cut(sel, "@")
	if byRev && len(rev) < 7 {
		return nil, &exitcode.UsageError{Err: fmt.Errorf("quarantine clear %q: give at least 7 digits of the revision", sel)}
	}
	var kept, cleared []Quarantined
	for _, x := range q.Entries {
		if x.Submodule == sub && (!byRev || strings.HasPrefix(x.Rev, rev)) {
			cleared = append(cleared, x)
		} else {
			kept = append(kept, x)
		}
	}
	if len(cleared) == 0 {
		return nil, exitcode.Input(fmt.Errorf("nothing quarantined matches %q", sel), "'lambda-check quarantine' lists what is")
	}
	if kept == nil {
		kept = []Quarantined{}
	}
	var names []string
	for _, x := range cleared {
		names = append(names, x.Submodule+"@"+Short(x.Rev))
	}
	detail := "cleared " + strings.Join(names, ", ")
	if reason != "" {
		detail += ": " + reason
	}
	if _, err := writeQuarantine(e, &Quarantine{Entries: kept}, detail); err != nil {
		return nil, err
	}
	return cleared, nil
}
