package sign

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// SignaturesMember is the member of a signed JSON object that carries its
// signatures. It is left out of what is signed.
const SignaturesMember = "signatures"

// Signature is one signature of a JSON object.
type Signature struct {
	KeyID     string `json:"keyId"`
	Signature string `json:"signature"` // base64 of the 64-byte ed25519 signature
}

// Message is what a key signs for a document: the domain (which says what
// kind of document it is, so a signature can never be replayed as another
// kind), a newline, and the canonical form of the object without its
// signatures member.
func Message(domain string, canonical []byte) []byte {
	m := make([]byte, 0, len(domain)+1+len(canonical))
	m = append(m, domain...)
	m = append(m, '\n')
	return append(m, canonical...)
}

// Split returns the canonical form of a JSON object without its signatures
// member, and the signatures it carries (nil when it has none).
func Split(doc []byte) (canonical []byte, sigs []Signature, err error) {
	c, err := Canonical(doc)
	if err != nil {
		return nil, nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(c, &obj); err != nil {
		return nil, nil, errors.New("signed document: not a JSON object")
	}
	raw, ok := obj[SignaturesMember]
	if !ok {
		return c, nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sigs); err != nil {
		return nil, nil, fmt.Errorf("signed document: %q: %w", SignaturesMember, err)
	}
	if sigs == nil {
		sigs = []Signature{}
	}
	delete(obj, SignaturesMember)
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, nil, err
	}
	c, err = Canonical(b)
	return c, sigs, err
}

// SignDocument adds a signature by each key to a JSON object (replacing
// signatures by the same key ids) and returns the object, canonical and
// indented with two spaces.
func SignDocument(doc []byte, domain string, keys ...*PrivateKey) ([]byte, error) {
	c, sigs, err := Split(doc)
	if err != nil {
		return nil, err
	}
	msg := Message(domain, c)
	for _, k := range keys {
		s := Signature{KeyID: k.ID, Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(k.Key, msg))}
		kept := sigs[:0]
		for _, o := range sigs {
			if o.KeyID != k.ID {
				kept = append(kept, o)
			}
		}
		sigs = append(kept, s)
	}
	sort.Slice(sigs, func(i, j int) bool { return sigs[i].KeyID < sigs[j].KeyID })
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(c, &obj); err != nil {
		return nil, err
	}
	sb, err := json.Marshal(sigs)
	if err != nil {
		return nil, err
	}
	obj[SignaturesMember] = sb
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	if b, err = Canonical(b); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// Verdict is the outcome of checking a document's signatures.
type Verdict string

// Verdicts, from best to worst.
const (
	// Valid: at least one signature by a registry key allowed for the
	// subject, and no registry key's signature fails.
	Valid Verdict = "valid"
	// Unsigned: the document carries no signature.
	Unsigned Verdict = "unsigned"
	// Untrusted: signatures, but none by a key allowed for the subject.
	Untrusted Verdict = "untrusted"
	// Invalid: a registry key's signature does not verify (the document
	// changed after it was signed, or the signature is malformed).
	Invalid Verdict = "invalid"
)

// Check is the result of Verify.
type Check struct {
	Verdict Verdict
	// ValidKeys are the ids of the keys whose signatures verify and which
	// may sign for the subject.
	ValidKeys []string
	// Problems say what is wrong with each other signature.
	Problems []string
}

// Verify checks a signed document's signatures against the registry: a
// signature counts when it verifies and allow (a key's role, scope and
// expiry for this kind of document) accepts its key.
func Verify(doc []byte, domain string, reg *Registry, allow func(*Key) error) (Check, error) {
	c, sigs, err := Split(doc)
	if err != nil {
		return Check{}, err
	}
	if len(sigs) == 0 {
		return Check{Verdict: Unsigned}, nil
	}
	msg := Message(domain, c)
	var out Check
	bad := false
	for _, s := range sigs {
		k := reg.Lookup(s.KeyID)
		if k == nil {
			out.Problems = append(out.Problems, fmt.Sprintf("key %q is not in the registry", s.KeyID))
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(s.Signature)
		if err != nil || !k.Verify(msg, raw) {
			bad = true
			out.Problems = append(out.Problems, fmt.Sprintf("signature by %q does not verify", s.KeyID))
			continue
		}
		if err := allow(k); err != nil {
			out.Problems = append(out.Problems, err.Error())
			continue
		}
		out.ValidKeys = append(out.ValidKeys, s.KeyID)
	}
	switch {
	case bad:
		out.Verdict = Invalid
	case len(out.ValidKeys) > 0:
		out.Verdict = Valid
	default:
		out.Verdict = Untrusted
	}
	return out, nil
}

// String summarises a check for a message.
func (c Check) String() string {
	s := string(c.Verdict)
	if len(c.ValidKeys) > 0 {
		s += " (" + strings.Join(c.ValidKeys, ", ") + ")"
	}
	if len(c.Problems) > 0 {
		s += ": " + strings.Join(c.Problems, "; ")
	}
	return s
}
