// Package governance is the governance stage: signed decisions on
// proposals, the state derived from them (never stored), the backends that
// say when a proposal is approved (one approver, N of M distinct keys, an
// external program), and the checked apply.
package governance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
)

// DecisionDomain is what decision signatures are made for: a signature
// over anything else never verifies as a decision.
const DecisionDomain = "lambda-check/governance-decision/v1"

// DecisionKind names a decision record.
const DecisionKind = "lambda-check/decision"

// Verdicts of a decision.
const (
	Approve = "approve"
	Reject  = "reject"
)

// Decision is a signed decision record. It is bound to one proposal: its
// id, the digest of its proposal.json (which holds the digests of every
// other file and the base), and its base.
type Decision struct {
	Kind           string       `json:"kind"`
	SchemaVersion  int          `json:"schemaVersion"`
	Proposal       string       `json:"proposal"`
	ProposalDigest string       `json:"proposalDigest"`
	Base           propose.Base `json:"base"`
	Verdict        string       `json:"verdict"`
	Reason         string       `json:"reason,omitempty"`
	Signer         string       `json:"signer"`
	Time           string       `json:"time"`
	Backend        string       `json:"backend"`
	// Signatures is the signed document's signature member.
	Signatures []sign.Signature `json:"signatures,omitempty"`
}

// Bound is what a decision binds to: a proposal as written.
type Bound struct {
	Proposal *propose.Proposal
	// Digest is the sha256 of its proposal.json.
	Digest string
}

// LoadBound reads a proposal (checking every file's digest) and the digest
// of its proposal.json.
func LoadBound(proposals, id string) (*Bound, error) {
	p, err := propose.Load(proposals, id)
	if err != nil {
		return nil, err
	}
	d, err := artifact.DigestFile(filepath.Join(proposals, id, propose.ProposalFile))
	if err != nil {
		return nil, err
	}
	return &Bound{Proposal: p, Digest: d}, nil
}

// SignDecision makes a signed decision record on a proposal.
func SignDecision(b *Bound, verdict, reason, backend string, k *sign.PrivateKey, now time.Time) ([]byte, error) {
	if verdict != Approve && verdict != Reject {
		return nil, fmt.Errorf("verdict %q is not %q or %q", verdict, Approve, Reject)
	}
	d := Decision{Kind: DecisionKind, SchemaVersion: 1, Proposal: b.Proposal.ID, ProposalDigest: b.Digest, Base: b.Proposal.Base,
		Verdict: verdict, Reason: reason, Signer: k.ID, Time: now.UTC().Format(time.RFC3339), Backend: backend}
	raw, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	return sign.SignDocument(raw, DecisionDomain, k)
}

// ParseDecision decodes a decision record strictly.
func ParseDecision(b []byte) (*Decision, error) {
	var d Decision
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("decision: %w", err)
	}
	if d.Kind != DecisionKind || d.SchemaVersion != 1 {
		return nil, errors.New("decision: not a version 1 decision record")
	}
	if d.Verdict != Approve && d.Verdict != Reject {
		return nil, fmt.Errorf("decision: verdict %q", d.Verdict)
	}
	if _, err := time.Parse(time.RFC3339, d.Time); err != nil {
		return nil, fmt.Errorf("decision: time %q is not RFC 3339", d.Time)
	}
	return &d, nil
}

// Verified is a decision whose record checked out.
type Verified struct {
	Decision *Decision
	Owner    string
}

// CheckDecision verifies a decision record against a proposal: the
// binding (id, proposal digest, base) and one valid signature, by the
// signer it names, with a registry key that has the approver role at now.
func CheckDecision(raw []byte, b *Bound, reg *sign.Registry, now time.Time) (*Verified, error) {
	d, err := ParseDecision(raw)
	if err != nil {
		return nil, err
	}
	switch {
	case d.Proposal != b.Proposal.ID:
		return nil, fmt.Errorf("decision is for proposal %s, not %s", d.Proposal, b.Proposal.ID)
	case d.ProposalDigest != b.Digest:
		return nil, errors.New("decision is for another version of the proposal (its digest differs)")
	case d.Base != b.Proposal.Base:
		return nil, errors.New("decision is bound to another base")
	}
	ch, err := sign.Verify(raw, DecisionDomain, reg, func(k *sign.Key) error { return k.Allows(sign.RoleApprover, "", now) })
	if err != nil {
		return nil, err
	}
	if ch.Verdict != sign.Valid {
		return nil, fmt.Errorf("signature %s", ch)
	}
	if len(ch.ValidKeys) != 1 || ch.ValidKeys[0] != d.Signer {
		return nil, fmt.Errorf("decision names signer %q but is signed by %s", d.Signer, strings.Join(ch.ValidKeys, ", "))
	}
	owner := ""
	if k := reg.Lookup(d.Signer); k != nil {
		owner = k.Owner
	}
	return &Verified{Decision: d, Owner: owner}, nil
}

// Records are the decision files of one proposal: <dir>/<signer>.json.
type Records struct {
	Dir string
}

// RecordsFor is where decisions on a proposal live.
func RecordsFor(decisions, id string) Records { return Records{Dir: filepath.Join(decisions, id)} }

// Write stores a decision record as <signer>.json; a signer decides once.
func (r Records) Write(signer string, raw []byte) error {
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return err
	}
	p := filepath.Join(r.Dir, signer+".json")
	if _, err := os.Stat(p); err == nil {
		return transition("%s has already decided on this proposal", signer)
	}
	return artifact.WriteFile(p, raw, 0o644)
}

// Read returns every decision file, by name.
func (r Records) Read() (map[string][]byte, error) {
	ents, err := os.ReadDir(r.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	names := []string{}
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || e.Name() == AppliedFile {
			continue
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(r.Dir, n))
		if err != nil {
			return nil, err
		}
		out[n] = b
	}
	return out, nil
}

// ErrKey: the key cannot decide on this proposal.
var ErrKey = errors.New("key refused")

// Done says a repeated step was done already: approving again with a key
// whose approval is on record, applying an applied proposal. Nothing was
// changed; a retried script goes on.
type Done struct{ What string }

func (d *Done) Error() string { return d.What }

// Record signs and files a decision of one key on a proposal, after
// checking the transition is allowed (approve: pending; reject: pending or
// approved, not yet applied) and that the decision will count (the key is
// in the registry with the approver role, unexpired, among the eligible
// signers). It returns the state after it.
func Record(env Env, id, verdict, reason string, k *sign.PrivateKey) (*State, error) {
	st, err := EvaluateOne(env, id)
	if err != nil {
		return nil, err
	}
	same := st.Approvals
	if verdict == Reject {
		same = st.Rejects
	}
	for _, s := range same {
		if s.Key == k.ID {
			return st, &Done{What: fmt.Sprintf("%s: already %s by %s at %s (now %s)", id, past(verdict), k.ID, s.Time, st.State)}
		}
	}
	allowed := st.State == StatePending || (verdict == Reject && st.State == StateApproved)
	if !allowed {
		why := ""
		if st.Why != "" {
			why = " (" + st.Why + ")"
		}
		return nil, transition("cannot %s proposal %s: it is %s%s", verdict, id, st.State, why)
	}
	if env.Config.Backend == Program {
		return nil, transition("the program backend decides through its decider ('governance decide')")
	}
	b, err := LoadBound(env.Proposals, id)
	if err != nil {
		return nil, err
	}
	raw, err := SignDecision(b, verdict, reason, env.Config.Backend, k, env.Now)
	if err != nil {
		return nil, err
	}
	if _, err := CheckDecision(raw, b, env.Registry, env.Now); err != nil {
		return nil, fmt.Errorf("%w: the decision of key %s would not count: %w", ErrKey, k.ID, err)
	}
	eligible := false
	for _, e := range env.Config.eligible(env.Registry) {
		eligible = eligible || e == k.ID
	}
	if !eligible {
		return nil, fmt.Errorf("%w: the decision of key %s would not count: it is not among the keys that decide", ErrKey, k.ID)
	}
	if err := RecordsFor(env.Decisions, id).Write(k.ID, raw); err != nil {
		return nil, err
	}
	return EvaluateOne(env, id)
}

// past is a verdict's past participle.
func past(verdict string) string {
	if verdict == Approve {
		return "approved"
	}
	return "rejected"
}
