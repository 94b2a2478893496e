package governance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// Backends.
const (
	Human    = "human"
	Multisig = "multisig"
	Program  = "program"
)

// States of a proposal under governance, derived from the proposal, its
// decision records and the workspace.
const (
	StatePending    = "pending"
	StateApproved   = "approved"
	StateRejected   = "rejected"
	StateApplied    = "applied"
	StateStale      = "stale"
	StateSuperseded = "superseded"
	StateBlocked    = "blocked" // a deny finding: never approvable
	StateInvalid    = "invalid" // the proposal's files do not check out
)

// ErrTransition: the decision or apply is not allowed in the proposal's
// state.
var ErrTransition = errors.New("not allowed in this state")

// transitionError says which transition was refused and why; it matches
// ErrTransition.
type transitionError struct{ msg string }

func (e *transitionError) Error() string        { return e.msg }
func (e *transitionError) Is(target error) bool { return target == ErrTransition }

func transition(format string, a ...any) error {
	return &transitionError{fmt.Sprintf(format, a...)}
}

// Config is the governance configuration.
type Config struct {
	Backend string
	// Threshold is the number of distinct approvals needed (multisig:
	// N; human and program: 1).
	Threshold int
	// Signers are the keys whose decisions count (M for multisig); empty:
	// every registry key with the approver role.
	Signers []string
	// Program is the external decider's command (program backend).
	Program []string
	// ProgramTimeout bounds a decider run.
	ProgramTimeout time.Duration
	// Environ is the decider's environment (nil: a PATH alone).
	Environ []string `json:"-"`
	// Track records the decider's process group while it runs, so that
	// the next run kills what a killed lambda-check left (nil: none).
	Track interface {
		Add(pgid int)
		Done(pgid int)
	} `json:"-"`
}

// Validate checks a configuration against a registry.
func (c *Config) Validate(reg *sign.Registry) error {
	switch c.Backend {
	case Human, Program:
		c.Threshold = 1
	case Multisig:
		if c.Threshold < 1 {
			return fmt.Errorf("governance: multisig needs a threshold of at least 1")
		}
	default:
		return fmt.Errorf("governance: backend %q is not %s, %s or %s", c.Backend, Human, Multisig, Program)
	}
	if c.Backend == Program && len(c.Program) == 0 {
		return fmt.Errorf("governance: the program backend needs a command (governance.program)")
	}
	for _, s := range c.Signers {
		if reg.Lookup(s) == nil {
			return fmt.Errorf("governance: signer %q is not in the key registry", s)
		}
	}
	if m := len(c.eligible(reg)); c.Threshold > m {
		return fmt.Errorf("governance: threshold %d is more than the %d keys that may sign", c.Threshold, m)
	}
	return nil
}

// eligible are the key ids whose decisions count.
func (c *Config) eligible(reg *sign.Registry) []string {
	if len(c.Signers) > 0 {
		out := append([]string{}, c.Signers...)
		sort.Strings(out)
		return out
	}
	var out []string
	for _, k := range reg.Keys {
		for _, r := range k.Roles {
			if r == sign.RoleApprover {
				out = append(out, k.ID)
			}
		}
	}
	return out
}

// Signer is one counted decision.
type Signer struct {
	Key    string `json:"key"`
	Owner  string `json:"owner,omitempty"`
	Time   string `json:"time"`
	Reason string `json:"reason,omitempty"`
	// CarriedFrom is the earlier proposal of the same change the decision
	// was signed for.
	CarriedFrom string `json:"carriedFrom,omitempty"`
}

// State is a proposal's derived governance state.
type State struct {
	ID        string   `json:"id"`
	Submodule string   `json:"submodule"`
	State     string   `json:"state"`
	Why       string   `json:"why,omitempty"`
	Backend   string   `json:"backend"`
	Threshold int      `json:"threshold"`
	Eligible  []string `json:"eligible"`
	Approvals []Signer `json:"approvals"`
	Rejects   []Signer `json:"rejects"`
	// Missing is how many more approvals are needed.
	Missing int `json:"missing"`
	// Ignored are decision records that did not check out, with why.
	Ignored []string `json:"ignored"`
	Applied *Applied `json:"applied,omitempty"`
}

// AppliedFile records an apply in a proposal's decisions directory.
const AppliedFile = "applied.json"

// Applied is what apply did.
type Applied struct {
	Proposal       string   `json:"proposal"`
	ProposalDigest string   `json:"proposalDigest"`
	Commit         string   `json:"commit,omitempty"` // "" with --no-commit
	Staged         bool     `json:"staged"`
	Time           string   `json:"time"`
	Signers        []string `json:"signers"`
	// Onto is the HEAD the change was applied onto when another change
	// had landed since the proposal's base.
	Onto string `json:"onto,omitempty"`
}

// Env is what state is derived against.
type Env struct {
	Proposals, Decisions, Stores string
	Snapshot                     *workspace.Snapshot
	Registry                     *sign.Registry
	Config                       *Config
	Now                          time.Time
	// Quarantine holds the known-bad revisions ("submodule@rev" → why):
	// an upgrade to one is blocked, whatever its decisions.
	Quarantine map[string]string
}

// Evaluate derives the state of every proposal.
func Evaluate(env Env) ([]State, error) {
	listed, err := propose.List(env.Proposals, env.Snapshot, env.Stores)
	if err != nil {
		return nil, err
	}
	out := make([]State, 0, len(listed))
	for _, l := range listed {
		out = append(out, evaluate(env, l, listed))
	}
	return out, nil
}

// EvaluateOne derives the state of one proposal.
func EvaluateOne(env Env, id string) (*State, error) {
	all, err := Evaluate(env)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].ID == id {
			return &all[i], nil
		}
	}
	if !propose.IDPattern().MatchString(id) {
		return nil, fmt.Errorf("%q is not a proposal id", id)
	}
	return nil, fmt.Errorf("%w: %s", propose.ErrNoProposal, id)
}

func evaluate(env Env, l propose.Listed, all []propose.Listed) State {
	p := l.Proposal
	eligible := env.Config.eligible(env.Registry)
	st := State{ID: p.ID, Submodule: p.Submodule, Backend: env.Config.Backend, Threshold: env.Config.Threshold,
		Eligible: eligible, Approvals: []Signer{}, Rejects: []Signer{}, Ignored: []string{}}
	if l.Problem != "" {
		st.State, st.Why = StateInvalid, l.Problem
		return st
	}
	b, err := LoadBound(env.Proposals, p.ID)
	if err != nil {
		st.State, st.Why = StateInvalid, err.Error()
		return st
	}
	recs, err := RecordsFor(env.Decisions, p.ID).Read()
	if err != nil {
		st.State, st.Why = StateInvalid, err.Error()
		return st
	}
	type record struct {
		raw  []byte
		b    *Bound
		from string // the proposal it was made on, when carried over
	}
	decided := map[string]record{}
	for name, raw := range recs {
		decided[name] = record{raw: raw, b: b}
	}
	// Decisions on an earlier proposal of the same change (proposed again
	// because its recipe changed) count for this one: they were made on
	// exactly this change, and each is checked against the proposal it was
	// signed for.
	for _, o := range all {
		q := o.Proposal
		if o.Problem != "" || q.ID == p.ID || propose.ChangeKey(q) != propose.ChangeKey(p) {
			continue
		}
		qb, err := LoadBound(env.Proposals, q.ID)
		if err != nil || AppliedFor(env.Decisions, env.Snapshot, qb) != nil {
			continue // an approval that was applied is spent
		}
		qrecs, err := RecordsFor(env.Decisions, q.ID).Read()
		if err != nil {
			continue
		}
		for name, raw := range qrecs {
			if _, own := decided[name]; !own {
				decided[name] = record{raw: raw, b: qb, from: q.ID}
			}
		}
	}
	isEligible := map[string]bool{}
	for _, k := range eligible {
		isEligible[k] = true
	}
	seen := map[string]bool{}
	// In name order, so approvals and rejects are listed the same way
	// every time.
	for _, name := range slices.Sorted(maps.Keys(decided)) {
		rec := decided[name]
		v, err := CheckDecision(rec.raw, rec.b, env.Registry, env.Now)
		switch {
		case err != nil:
			st.Ignored = append(st.Ignored, fmt.Sprintf("%s: %v", name, err))
			continue
		case name != v.Decision.Signer+".json":
			st.Ignored = append(st.Ignored, fmt.Sprintf("%s: signed by %s, filed under another name", name, v.Decision.Signer))
			continue
		case !isEligible[v.Decision.Signer]:
			st.Ignored = append(st.Ignored, fmt.Sprintf("%s: %s is not among the keys that decide (%s)", name, v.Decision.Signer, strings.Join(eligible, ", ")))
			continue
		case seen[v.Decision.Signer]:
			continue
		}
		seen[v.Decision.Signer] = true
		s := Signer{Key: v.Decision.Signer, Owner: v.Owner, Time: v.Decision.Time, Reason: v.Decision.Reason, CarriedFrom: rec.from}
		if v.Decision.Verdict == Approve {
			st.Approvals = append(st.Approvals, s)
		} else {
			st.Rejects = append(st.Rejects, s)
		}
	}
	sort.Strings(st.Ignored)
	st.Missing = max(0, st.Threshold-len(st.Approvals))
	if a := AppliedFor(env.Decisions, env.Snapshot, b); a != nil {
		st.State, st.Applied = StateApplied, a
		if a.Staged {
			st.Why = "staged, not committed"
		} else {
			st.Why = "in commit " + a.Commit[:12]
		}
		return st
	}
	switch l.Status {
	case propose.StatusStale:
		st.State, st.Why = StateStale, l.Why
		return st
	case propose.StatusSuperseded:
		st.State, st.Why = StateSuperseded, l.Why
		return st
	case propose.StatusBlocked:
		st.State, st.Why = StateBlocked, "a policy finding denies it"
		return st
	}
	if p.Kind != propose.KindRollback {
		for _, mv := range p.Moves() {
			if why, bad := env.Quarantine[propose.QuarantineKey(mv.Submodule, mv.To)]; bad {
				st.State, st.Why = StateBlocked, "its revision is quarantined: "+why
				return st
			}
		}
	}
	// A multisig proposal is rejected once it cannot reach its threshold;
	// one reject from an approver rejects under the human and program
	// backends.
	switch {
	case len(st.Rejects) > 0 && (env.Config.Backend != Multisig || len(st.Rejects) > len(eligible)-st.Threshold):
		st.State = StateRejected
		st.Why = "by " + keys(st.Rejects)
	case len(st.Approvals) >= st.Threshold:
		st.State, st.Why = StateApproved, "by "+keys(st.Approvals)
	default:
		st.State = StatePending
		st.Why = fmt.Sprintf("%d of %d approvals", len(st.Approvals), st.Threshold)
	}
	return st
}

func keys(ss []Signer) string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Key)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// AppliedFor returns a proposal's apply record when it is true of the
// workspace: its commit is in HEAD's history, or (staged) the index has
// the proposal's gitlink.
func AppliedFor(decisions string, snap *workspace.Snapshot, b *Bound) *Applied {
	raw, err := os.ReadFile(filepath.Join(decisions, b.Proposal.ID, AppliedFile))
	if err != nil {
		return nil
	}
	var a Applied
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if dec.Decode(&a) != nil || a.Proposal != b.Proposal.ID || a.ProposalDigest != b.Digest {
		return nil
	}
	if a.Staged {
		for _, mv := range b.Proposal.Moves() {
			if m := snap.Submodule(mv.Submodule); m == nil || m.Gitlink != mv.To {
				return nil
			}
		}
		return &a
	}
	repo, err := gitrepo.Open(snap.Root)
	if err != nil || snap.Superproject.Head == "" || len(a.Commit) != 40 {
		return nil
	}
	onlyCommit, _, err := repo.Compare(plumbing.NewHash(a.Commit), plumbing.NewHash(snap.Superproject.Head))
	if err != nil || onlyCommit != 0 {
		return nil
	}
	return &a
}
