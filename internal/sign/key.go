package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"sync"
	"time"
)

// Algorithm is the only signature algorithm lambda-check accepts.
const Algorithm = "ed25519"

// RegistryVersion is the key registry schema version this build reads.
const RegistryVersion = 1

// keyIDPattern keeps key ids printable and free of path characters.
// Compiled on first use: bounded repetitions make large programs, which
// every command would otherwise pay for at start.
var keyIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`) })

// PrivateKey is a signing key as stored in a key file (mode 0600).
type PrivateKey struct {
	ID  string
	Key ed25519.PrivateKey
}

// Public returns the key's public half.
func (k *PrivateKey) Public() ed25519.PublicKey { return k.Key.Public().(ed25519.PublicKey) }

type privateKeyFile struct {
	SchemaVersion int    `json:"schemaVersion"`
	ID            string `json:"id"`
	Algorithm     string `json:"algorithm"`
	Seed          string `json:"seed"`
	PublicKey     string `json:"publicKey"`
}

// GenerateKey makes a new ed25519 key named id.
func GenerateKey(id string, random io.Reader) (*PrivateKey, error) {
	if !keyIDPattern().MatchString(id) {
		return nil, fmt.Errorf("key id %q: want letters, digits and . _ @ - (at most 128)", id)
	}
	if random == nil {
		random = rand.Reader
	}
	_, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return nil, err
	}
	return &PrivateKey{ID: id, Key: priv}, nil
}

// MarshalPrivateKey encodes a key file.
func MarshalPrivateKey(k *PrivateKey) ([]byte, error) {
	return json.MarshalIndent(privateKeyFile{
		SchemaVersion: RegistryVersion, ID: k.ID, Algorithm: Algorithm,
		Seed:      base64.StdEncoding.EncodeToString(k.Key.Seed()),
		PublicKey: base64.StdEncoding.EncodeToString(k.Public()),
	}, "", "  ")
}

// ParsePrivateKey decodes a key file strictly.
func ParsePrivateKey(b []byte) (*PrivateKey, error) {
	var f privateKeyFile
	if err := strictDecode(b, &f); err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if f.SchemaVersion != RegistryVersion || f.Algorithm != Algorithm {
		return nil, fmt.Errorf("key file: want schemaVersion %d and algorithm %q", RegistryVersion, Algorithm)
	}
	if !keyIDPattern().MatchString(f.ID) {
		return nil, fmt.Errorf("key file: bad key id %q", f.ID)
	}
	seed, err := base64.StdEncoding.DecodeString(f.Seed)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("key file: seed must be 32 bytes of base64")
	}
	k := &PrivateKey{ID: f.ID, Key: ed25519.NewKeyFromSeed(seed)}
	if f.PublicKey != "" && f.PublicKey != base64.StdEncoding.EncodeToString(k.Public()) {
		return nil, errors.New("key file: publicKey does not belong to the seed")
	}
	return k, nil
}

// ReadPrivateKey reads a key file and refuses one others can read.
func ReadPrivateKey(p string) (*PrivateKey, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("read key %q: mode %v lets others read it; chmod 600", p, st.Mode().Perm())
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	k, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("read key %q: %w", p, err)
	}
	return k, nil
}

// Roles a key can have: what it may sign.
const (
	// RoleMetadata signs module metadata.json (of the modules in Modules).
	RoleMetadata = "metadata"
	// RoleApprover signs governance decisions.
	RoleApprover = "approver"
	// RoleCheckpoint signs audit checkpoints.
	RoleCheckpoint = "checkpoint"
)

var knownRoles = map[string]bool{RoleMetadata: true, RoleApprover: true, RoleCheckpoint: true}

// Key is a trusted public key of a registry and what it may sign.
type Key struct {
	ID        string `json:"id"`
	Algorithm string `json:"algorithm"`
	// PublicKey is the raw 32-byte key, base64.
	PublicKey string `json:"publicKey"`
	// Owner says whose key it is (a person, a team, a program).
	Owner string `json:"owner,omitempty"`
	// Roles are what the key may sign; no role, nothing.
	Roles []string `json:"roles"`
	// Modules are the module names (path.Match patterns) a metadata key
	// may sign for.
	Modules []string `json:"modules,omitempty"`
	// Expires (RFC 3339), when set, ends the key's validity: after it, its
	// signatures are refused.
	Expires string `json:"expires,omitempty"`

	pub     ed25519.PublicKey
	expires time.Time
}

// Scope is what a new registry entry lets a key do.
type Scope struct {
	Owner   string
	Roles   []string
	Modules []string
	Expires time.Time // zero: never
}

// Registry is a key registry file: the keys a node trusts.
type Registry struct {
	SchemaVersion int   `json:"schemaVersion"`
	Keys          []Key `json:"keys"`
}

// ParseRegistry decodes a registry strictly and checks every key.
func ParseRegistry(b []byte) (*Registry, error) {
	var r Registry
	if err := strictDecode(b, &r); err != nil {
		return nil, fmt.Errorf("key registry: %w", err)
	}
	if r.SchemaVersion != RegistryVersion {
		return nil, fmt.Errorf("key registry: schemaVersion %d is not supported (this build reads %d)", r.SchemaVersion, RegistryVersion)
	}
	seen := map[string]bool{}
	for i := range r.Keys {
		k := &r.Keys[i]
		if !keyIDPattern().MatchString(k.ID) {
			return nil, fmt.Errorf("key registry: key %d: bad id %q", i, k.ID)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("key registry: key id %q appears twice", k.ID)
		}
		seen[k.ID] = true
		if k.Algorithm != Algorithm {
			return nil, fmt.Errorf("key registry: key %q: algorithm %q is not %q", k.ID, k.Algorithm, Algorithm)
		}
		pub, err := base64.StdEncoding.DecodeString(k.PublicKey)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("key registry: key %q: publicKey must be 32 bytes of base64", k.ID)
		}
		k.pub = pub
		for _, m := range k.Modules {
			if _, err := path.Match(m, ""); err != nil {
				return nil, fmt.Errorf("key registry: key %q: bad module pattern %q", k.ID, m)
			}
		}
		for _, role := range k.Roles {
			if !knownRoles[role] {
				return nil, fmt.Errorf("key registry: key %q: unknown role %q (known: %s, %s, %s)", k.ID, role, RoleApprover, RoleCheckpoint, RoleMetadata)
			}
		}
		if k.Expires != "" {
			t, err := time.Parse(time.RFC3339, k.Expires)
			if err != nil {
				return nil, fmt.Errorf("key registry: key %q: expires %q is not RFC 3339", k.ID, k.Expires)
			}
			k.expires = t
		}
	}
	sort.Slice(r.Keys, func(i, j int) bool { return r.Keys[i].ID < r.Keys[j].ID })
	return &r, nil
}

// ReadRegistry reads a registry file.
func ReadRegistry(p string) (*Registry, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read key registry: %w", err)
	}
	r, err := ParseRegistry(b)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", p, err)
	}
	return r, nil
}

// Lookup returns the key with id, or nil.
func (r *Registry) Lookup(id string) *Key {
	for i := range r.Keys {
		if r.Keys[i].ID == id {
			return &r.Keys[i]
		}
	}
	return nil
}

// Allows says why the key may not sign in role (for subject, a module
// name for RoleMetadata) at time now; nil when it may.
func (k *Key) Allows(role, subject string, now time.Time) error {
	if !k.expires.IsZero() && !now.Before(k.expires) {
		return fmt.Errorf("key %q expired at %s", k.ID, k.Expires)
	}
	has := false
	for _, r := range k.Roles {
		has = has || r == role
	}
	if !has {
		return fmt.Errorf("key %q does not have the role %q", k.ID, role)
	}
	if role != RoleMetadata {
		return nil
	}
	for _, m := range k.Modules {
		if ok, _ := path.Match(m, subject); ok {
			return nil
		}
	}
	return fmt.Errorf("key %q may not sign for %q", k.ID, subject)
}

// Verify checks sig over msg with the key.
func (k *Key) Verify(msg, sig []byte) bool {
	return len(sig) == ed25519.SignatureSize && ed25519.Verify(k.pub, msg, sig)
}

// RegistryKey returns the registry entry for a private key's public half.
func RegistryKey(k *PrivateKey, s Scope) Key {
	e := Key{ID: k.ID, Algorithm: Algorithm, PublicKey: base64.StdEncoding.EncodeToString(k.Public()), Owner: s.Owner,
		Roles: s.Roles, Modules: s.Modules, pub: k.Public(), expires: s.Expires}
	if e.Roles == nil {
		e.Roles = []string{}
	}
	if !s.Expires.IsZero() {
		e.Expires = s.Expires.UTC().Format(time.RFC3339)
	}
	return e
}

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}
