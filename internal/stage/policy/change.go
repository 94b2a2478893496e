package policy

import (
	"context"
	"fmt"
	"strings"

	"github.com/lambda-os/lambda-check/internal/flake"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// ChangeRules are the rules that judge a change (a proposal) rather than
// the workspace as it is.
var ChangeRules = []string{"forbidden-paths", "local-override", "follows"}

// ChangeRequest is a proposed change to check: the paths it touches and
// the flake.lock it leaves.
type ChangeRequest struct {
	Config   *Config
	Snapshot *workspace.Snapshot
	// Base and New are flake.lock before and after the change.
	Base, New *flake.Lock
	// Paths are the workspace paths the change touches; Origin names the
	// change in findings ("proposal <id>").
	Paths  []string
	Origin string
}

// CheckChange runs the enabled change rules and returns the findings the
// change introduces: those on the new lock that the base lock does not
// already have, and every forbidden path it touches. A change is judged by
// what it does, not by what the workspace already was.
func CheckChange(ctx context.Context, req ChangeRequest) ([]Finding, error) {
	cfg := req.Config
	if cfg == nil {
		cfg = DefaultConfig(req.Snapshot.Root)
	}
	run := func(l *flake.Lock, changes []Change) ([]Finding, error) {
		reg, err := workspace.BuildRegistry(ctx, workspace.RegistryRequest{Snapshot: req.Snapshot, Lock: l})
		if err != nil {
			return nil, err
		}
		in := &Input{Root: req.Snapshot.Root, Snapshot: req.Snapshot, Lock: l, Registry: reg, Changes: changes,
			ConfigDir: cfg.Dir, Par: 1, FlakeNix: flake.Evaluation{Note: "a change does not alter flake.nix"},
		}
		var out []Finding
		for _, id := range ChangeRules {
			r := ruleByID(id)
			rc := cfg.Rules[id]
			if rc == nil || !rc.Enabled {
				continue
			}
			o, err := r.check(ctx, in, rc.Options)
			if err != nil {
				return nil, fmt.Errorf("rule %s: %w", id, err)
			}
			for _, f := range o.Findings {
				if matchAny(rc.Ignore, f.Subject.Name) {
					continue
				}
				f.Rule, f.Severity = id, rc.Severity
				out = append(out, f)
			}
		}
		return out, nil
	}
	changes := make([]Change, len(req.Paths))
	for i, p := range req.Paths {
		changes[i] = Change{Path: p, Origin: req.Origin}
	}
	before, err := run(req.Base, nil)
	if err != nil {
		return nil, err
	}
	after, err := run(req.New, changes)
	if err != nil {
		return nil, err
	}
	had := map[string]bool{}
	for _, f := range before {
		had[f.key()] = true
	}
	out := []Finding{}
	for _, f := range after {
		if !had[f.key()] {
			out = append(out, f)
		}
	}
	return out, nil
}

// Denies reports whether any finding is a deny.
func Denies(fs []Finding) bool {
	for _, f := range fs {
		if f.Severity == Deny {
			return true
		}
	}
	return false
}

// key identifies a finding for comparing two runs.
func (f Finding) key() string {
	return strings.Join(append([]string{f.Rule, string(f.Severity), f.Subject.Kind, f.Subject.Name, f.Message, f.Hint}, f.Details...), "\x00")
}
