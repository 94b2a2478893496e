// Package policy is the policy stage: rules, as data, over the snapshot,
// the flake (flake.lock exactly; flake.nix's inputs when Nix can evaluate
// them) and the module registry. Each finding names its rule, severity,
// subject, what is wrong and what to do about it. Findings are data, never
// errors: the stage fails only when it cannot read its inputs.
package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/flake"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/nixcli"
	"github.com/lambda-os/lambda-check/internal/workspace"

	"github.com/go-git/go-git/v5/plumbing"
)

// Spec identifies the policy artifact.
var Spec = artifact.Spec{Kind: artifact.KindPrefix + "policy", Version: 1}

// Subject kinds.
const (
	KindSubmodule = "submodule"
	KindInput     = "input"
	KindModule    = "module"
	KindPath      = "path"
	KindConfig    = "config"
)

// Subject is what a finding is about.
type Subject struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// Finding is one way the workspace breaks a rule.
type Finding struct {
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	Subject  Subject  `json:"subject"`
	Message  string   `json:"message"`
	// Details list the cases of a finding that stands for several (every
	// copy of nixpkgs, say), one line each.
	Details []string `json:"details,omitempty"`
	Hint    string   `json:"hint,omitempty"`
}

// RuleRun records how a rule ran.
type RuleRun struct {
	ID       string   `json:"id"`
	Enabled  bool     `json:"enabled"`
	Severity Severity `json:"severity"`
	Findings int      `json:"findings"`
	// Notes say what the rule checked and what it could not.
	Notes []string `json:"notes"`
}

// Summary counts findings. Verdict is "fail" when a deny finding exists,
// "unknown" when there was nothing to check (no submodule and no
// flake.lock: nothing checked is never healthy), else "pass".
type Summary struct {
	Deny    int    `json:"deny"`
	Warn    int    `json:"warn"`
	Verdict string `json:"verdict"`
	Reason  string `json:"reason,omitempty"`
}

// Report is the payload of policy.json.
type Report struct {
	FlakeLock workspace.FileDigest `json:"flakeLock"`
	FlakeNix  flake.Evaluation     `json:"flakeNix"`
	// Now is the clock time age rules compared with (Unix seconds); absent
	// when no rule looked at the clock.
	Now      int64               `json:"now,omitempty"`
	Rules    []RuleRun           `json:"rules"`
	Findings []Finding           `json:"findings"`
	Summary  Summary             `json:"summary"`
	Registry *workspace.Registry `json:"registry"`
}

// Change is a path some change touches: the workspace's own uncommitted
// changes, or a proposal's.
type Change struct {
	Path   string
	Origin string
}

// Request is what the stage checks.
type Request struct {
	Snapshot *workspace.Snapshot
	Config   *Config
	// Nix evaluates flake.nix's inputs; nil skips that, with NixNote
	// saying why.
	Nix     *nixcli.Nix
	NixNote string
	// Now is what age rules compare with; Trust the time keys must be
	// valid at (the real clock: a reproducible build's time never decides
	// trust). A zero Trust is Now.
	Now   time.Time
	Trust time.Time
	// Changes are changes beyond the workspace's own (proposals).
	Changes     []Change
	Parallelism int
	// Fresh says the snapshot was taken just now under the state lock, so
	// a clean submodule's files on disk are its gitlink's: metadata is
	// read from disk instead of from git objects.
	Fresh bool
	// Integrity are locked attributes computed by earlier runs (see
	// IntegrityCache); nil starts empty.
	Integrity *IntegrityCache
}

// Result is the stage's outcome.
type Result struct {
	Report Report
	// Integrity holds the locked attributes lock-integrity used this run,
	// for the next run; IntegrityReused says how many came from the
	// request's.
	Integrity       *IntegrityCache
	IntegrityReused int
}

// IntegrityCache remembers the attributes Nix would lock for a revision
// ("narHash", "lastModified", "revCount"), keyed by input type and commit
// id. A commit id fixes its tree, time and history, so an entry never goes
// stale; recomputing it means hashing the whole tree.
type IntegrityCache struct {
	SchemaVersion int                       `json:"schemaVersion"`
	Entries       map[string]IntegrityEntry `json:"entries"`
}

// IntegrityEntry is what was computed for one revision.
type IntegrityEntry struct {
	NarHash      string `json:"narHash"`
	LastModified int64  `json:"lastModified"`
	RevCount     int64  `json:"revCount,omitempty"`
}

// IntegrityCacheVersion is the cache file's schema version.
const IntegrityCacheVersion = 1

// Input is what every rule reads.
type Input struct {
	Root      string
	Snapshot  *workspace.Snapshot
	Lock      *flake.Lock // nil when the workspace has no flake.lock
	Declared  map[string]*flake.DeclaredInput
	FlakeNix  flake.Evaluation
	Registry  *workspace.Registry
	Changes   []Change
	Now       time.Time
	Trust     time.Time
	ConfigDir string
	Par       int
	// Previous are locked attributes computed by earlier runs, by
	// integrity key (read only).
	Previous map[string]IntegrityEntry

	rootInputs map[string][]string // node -> root inputs resolving to it
	paths      map[string][]string // node -> shortest input path from the root
}

// ErrLockChanged: flake.lock is not the one the snapshot saw.
var ErrLockChanged = workspace.ErrLockChanged

// Run checks every enabled rule.
func Run(ctx context.Context, req Request) (*Result, error) {
	snap := req.Snapshot
	if req.Config == nil {
		req.Config = DefaultConfig(snap.Root)
	}
	par := req.Parallelism
	if par <= 0 {
		par = 4 * runtime.GOMAXPROCS(0)
	}
	in := &Input{Root: snap.Root, Snapshot: snap, Now: req.Now, Trust: req.Trust, ConfigDir: req.Config.Dir, Par: par}
	if req.Integrity != nil && req.Integrity.SchemaVersion == IntegrityCacheVersion {
		in.Previous = req.Integrity.Entries
	}
	lock, err := workspace.ReadLock(snap)
	if err != nil {
		return nil, err
	}
	in.Lock = lock
	in.FlakeNix = evaluate(ctx, req, in)
	reg, err := workspace.BuildRegistry(ctx, workspace.RegistryRequest{
		Snapshot: snap, Lock: in.Lock, Parallelism: par,
		ReadMetadata: func(_ context.Context, m *workspace.Submodule) ([]byte, error) {
			return readMetadata(snap.Root, m, req.Fresh)
		},
	})
	if err != nil {
		return nil, err
	}
	in.Registry = reg
	in.Changes = workspaceChanges(snap)
	in.Changes = append(in.Changes, req.Changes...)

	res, err := check(ctx, in, req.Config, snap.FlakeLock)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// check runs the enabled rules over an input.
func check(ctx context.Context, in *Input, cfg *Config, lock workspace.FileDigest) (*Result, error) {
	res := &Result{Integrity: &IntegrityCache{SchemaVersion: IntegrityCacheVersion, Entries: map[string]IntegrityEntry{}}}
	usedNow := false
	rep := Report{FlakeLock: lock, FlakeNix: in.FlakeNix, Rules: []RuleRun{}, Findings: []Finding{}, Registry: in.Registry}
	for _, r := range rules {
		rc := cfg.Rules[r.id]
		if rc == nil {
			rc = DefaultConfig(cfg.Dir).Rules[r.id]
		}
		run := RuleRun{ID: r.id, Enabled: rc.Enabled, Severity: rc.Severity, Notes: []string{}}
		if err := ctx.Err(); err != nil {
			return nil, err // SIGTERM: the lock is released at once
		}
		if rc.Enabled {
			o, err := r.check(ctx, in, rc.Options)
			if err != nil {
				return nil, fmt.Errorf("rule %s: %w", r.id, err)
			}
			usedNow = usedNow || o.UsedNow
			for k, e := range o.Integrity {
				res.Integrity.Entries[k] = e
			}
			res.IntegrityReused += o.Reused
			for _, f := range o.Findings {
				if matchAny(rc.Ignore, f.Subject.Name) {
					continue
				}
				f.Rule, f.Severity = r.id, rc.Severity
				rep.Findings = append(rep.Findings, f)
				run.Findings++
			}
			if o.Notes != nil {
				run.Notes = o.Notes
			}
		}
		rep.Rules = append(rep.Rules, run)
	}
	sort.SliceStable(rep.Findings, func(i, j int) bool {
		a, b := rep.Findings[i], rep.Findings[j]
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		if a.Subject.Kind != b.Subject.Kind {
			return a.Subject.Kind < b.Subject.Kind
		}
		if a.Subject.Name != b.Subject.Name {
			return a.Subject.Name < b.Subject.Name
		}
		return a.Message < b.Message
	})
	for _, f := range rep.Findings {
		if f.Severity == Deny {
			rep.Summary.Deny++
		} else {
			rep.Summary.Warn++
		}
	}
	switch {
	case rep.Summary.Deny > 0:
		rep.Summary.Verdict = "fail"
	case len(in.Snapshot.Submodules) == 0 && in.Lock == nil:
		rep.Summary.Verdict = "unknown"
		rep.Summary.Reason = "nothing to check: the workspace has no submodules and no flake.lock"
	default:
		rep.Summary.Verdict = "pass"
	}
	if usedNow {
		rep.Now = in.Now.Unix()
	}
	res.Report = rep
	return res, nil
}

// evaluate reads flake.nix's inputs through Nix, when it can.
func evaluate(ctx context.Context, req Request, in *Input) flake.Evaluation {
	if in.Snapshot.FlakeNix.Digest == "" {
		return flake.Evaluation{Note: "the workspace has no flake.nix"}
	}
	var ev flake.Evaluator
	if req.Nix != nil {
		ev = req.Nix
	}
	decl, e := flake.EvaluateInputs(ctx, ev, filepath.Join(in.Root, "flake.nix"), req.NixNote)
	in.Declared = decl
	return e
}

// readMetadata returns a submodule's metadata.json at its gitlink. When
// the snapshot is fresh and the submodule clean, the index and the work tree
// are the gitlink's tree (that is what clean means), so the file is read
// from disk once its content matches the index's blob; otherwise, and if
// anything disagrees, from git's objects.
func readMetadata(root string, m *workspace.Submodule, fresh bool) ([]byte, error) {
	if m.Gitlink == "" {
		return nil, fmt.Errorf("%s: no gitlink: %w", m.Path, fs.ErrNotExist)
	}
	if m.State == workspace.StateMissing || m.State == workspace.StateUninitialized {
		return nil, fmt.Errorf("not checked out (%s), so its metadata cannot be read", m.State)
	}
	r, err := gitrepo.Open(filepath.Join(root, filepath.FromSlash(m.Path)))
	if err != nil {
		return nil, err
	}
	if fresh && m.State == workspace.StateClean {
		b, err := r.ReadIndexedFile(workspace.MetadataFile)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return b, err
		}
	}
	b, err := r.ReadFile(plumbing.NewHash(m.Gitlink), workspace.MetadataFile)
	if errors.Is(err, gitrepo.ErrMissingObject) {
		return nil, fmt.Errorf("%w: %w", workspace.ErrCommitMissing, err)
	}
	return b, err
}

// workspaceChanges are the paths the snapshot saw changed, workspace
// relative.
func workspaceChanges(s *workspace.Snapshot) []Change {
	var out []Change
	add := func(prefix string, c workspace.Changes) {
		for _, f := range c.Staged {
			out = append(out, Change{Path: prefix + f.Path, Origin: "staged"})
		}
		for _, f := range c.Unstaged {
			out = append(out, Change{Path: prefix + f.Path, Origin: "modified"})
		}
		for _, f := range c.Untracked {
			out = append(out, Change{Path: prefix + f.Path, Origin: "untracked"})
		}
	}
	add("", s.Superproject.Changes)
	for _, m := range s.Submodules {
		add(m.Path+"/", m.Changes)
	}
	return out
}

// MetadataReader reads submodules' metadata.json at their gitlinks, for
// workspace.BuildRegistry (fresh: the snapshot was just taken).
func MetadataReader(root string, fresh bool) func(context.Context, *workspace.Submodule) ([]byte, error) {
	return func(_ context.Context, m *workspace.Submodule) ([]byte, error) { return readMetadata(root, m, fresh) }
}

// trust is the time keys must be valid at.
func (in *Input) trust() time.Time {
	if in.Trust.IsZero() {
		return in.Now
	}
	return in.Trust
}
