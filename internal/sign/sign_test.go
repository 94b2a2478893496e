package sign

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The examples of RFC 8785, section 3.2.
func TestCanonicalRFC8785(t *testing.T) {
	t.Parallel()
	in := `{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`
	want := `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`
	got, err := Canonical([]byte(in))
	assert.NilError(t, err)
	assert.Equal(t, string(got), want)

	// Members sort by UTF-16 code units: the emoji's surrogates come before
	// U+FB33.
	in = `{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`
	got, err = Canonical([]byte(in))
	assert.NilError(t, err)
	var order []string
	for _, part := range strings.Split(string(got), `",`) {
		k, _, _ := strings.Cut(part, `":`)
		order = append(order, strings.TrimLeft(k, `{"`))
	}
	assert.DeepEqual(t, order, []string{`\r`, "1", "\u0080", "ö", "€", "😀", "\ufb33"})
}

// Number vectors from RFC 8785 appendix B, given as IEEE 754 bit patterns.
func TestNumber(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		bits uint64
		want string
	}{
		{0x0000000000000000, "0"},
		{0x8000000000000000, "0"},
		{0x0000000000000001, "5e-324"},
		{0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"},
		{0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"},
		{0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
		{0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"},
		{0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"},
		{0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
	} {
		f := math.Float64frombits(tc.bits)
		got, err := Number(strconv.FormatFloat(f, 'g', -1, 64))
		assert.NilError(t, err)
		assert.Equal(t, got, tc.want, "bits %016x", tc.bits)
	}
	_, err := Number("1e400")
	assert.ErrorContains(t, err, "not a finite double")
}

func TestCanonicalRefuses(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`{"a":1,"a":2}`: `duplicate member "a"`,
		`{"a":1} x`:     "trailing data",
		"\"\xff\"":      "invalid UTF-8",
		`[1e999]`:       "not a finite double",
		`{"a":`:         "EOF",
	} {
		_, err := Canonical([]byte(in))
		assert.ErrorContains(t, err, want, in)
	}
	deep := strings.Repeat("[", 300) + strings.Repeat("]", 300)
	_, err := Canonical([]byte(deep))
	assert.ErrorContains(t, err, "nested too deeply")
}

func testKey(t *testing.T, id string, seed byte) *PrivateKey {
	t.Helper()
	k, err := GenerateKey(id, bytes.NewReader(bytes.Repeat([]byte{seed}, 32)))
	assert.NilError(t, err)
	return k
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	alice, bob, mallory := testKey(t, "alice", 1), testKey(t, "bob", 2), testKey(t, "mallory", 3)
	meta := func(modules ...string) Scope { return Scope{Roles: []string{RoleMetadata}, Modules: modules} }
	reg := &Registry{SchemaVersion: 1, Keys: []Key{RegistryKey(alice, meta("*")), RegistryKey(bob, meta("chat_*"))}}
	const domain = "test/v1"
	now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	doc := []byte(`{"name": "chat_module", "version": "0.1.0", "capabilities": ["messaging"]}`)

	check := func(doc []byte, subject string) Check {
		t.Helper()
		c, err := Verify(doc, domain, reg, func(k *Key) error { return k.Allows(RoleMetadata, subject, now) })
		assert.NilError(t, err)
		return c
	}
	assert.Equal(t, check(doc, "chat_module").Verdict, Unsigned)

	signed, err := SignDocument(doc, domain, alice)
	assert.NilError(t, err)
	c := check(signed, "chat_module")
	assert.Equal(t, c.Verdict, Valid)
	assert.DeepEqual(t, c.ValidKeys, []string{"alice"})

	// Formatting and member order are not part of what is signed.
	reformatted, err := Canonical(signed)
	assert.NilError(t, err)
	assert.Equal(t, check(reformatted, "chat_module").Verdict, Valid)

	// Any change to the content breaks the signature.
	tampered := bytes.Replace(signed, []byte(`"0.1.0"`), []byte(`"0.1.1"`), 1)
	c = check(tampered, "chat_module")
	assert.Equal(t, c.Verdict, Invalid)
	assert.Check(t, is.Contains(c.String(), `signature by "alice" does not verify`))

	// The domain is signed: the same bytes under another domain fail.
	c2, err := Verify(signed, "other/v1", reg, func(k *Key) error { return nil })
	assert.NilError(t, err)
	assert.Equal(t, c2.Verdict, Invalid)

	// A key outside the registry, or outside its scope, is not trusted.
	bySelf, err := SignDocument(doc, domain, mallory)
	assert.NilError(t, err)
	c = check(bySelf, "chat_module")
	assert.Equal(t, c.Verdict, Untrusted)
	assert.Check(t, is.Contains(c.String(), `key "mallory" is not in the registry`))
	byBob, err := SignDocument(doc, domain, bob)
	assert.NilError(t, err)
	assert.Equal(t, check(byBob, "chat_module").Verdict, Valid)
	assert.Equal(t, check(byBob, "wallet_module").Verdict, Untrusted)

	// Re-signing replaces the key's own signature and keeps the others.
	both, err := SignDocument(byBob, domain, alice, bob)
	assert.NilError(t, err)
	assert.DeepEqual(t, check(both, "chat_module").ValidKeys, []string{"alice", "bob"})
	assert.Equal(t, bytes.Count(both, []byte(`"keyId"`)), 2)

	// A garbage signature by a registry key is invalid, not skipped.
	garbage := bytes.Replace(signed, []byte(`"signature": "`), []byte(`"signature": "AAAA`), 1)
	assert.Equal(t, check(garbage, "chat_module").Verdict, Invalid)

	_, err = Verify([]byte(`{"signatures": [{"keyId": "a", "sig": "x"}]}`), domain, reg, nil)
	assert.ErrorContains(t, err, `unknown field "sig"`)
	_, err = Verify([]byte(`[1]`), domain, reg, nil)
	assert.ErrorContains(t, err, "not a JSON object")
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	k := testKey(t, "release", 7)
	pub := base64.StdEncoding.EncodeToString(k.Public())
	good := `{"schemaVersion": 1, "keys": [{"id": "release", "algorithm": "ed25519", "publicKey": "` + pub + `", "modules": ["*"]}]}`
	reg, err := ParseRegistry([]byte(good))
	assert.NilError(t, err)
	assert.Assert(t, reg.Lookup("release") != nil)
	for in, want := range map[string]string{
		`{"schemaVersion": 2, "keys": []}`:                                                                                                    "schemaVersion 2 is not supported",
		`{"schemaVersion": 1, "keys": [], "extra": 1}`:                                                                                        `unknown field "extra"`,
		`{"schemaVersion": 1, "keys": [{"id": "../x", "algorithm": "ed25519"}]}`:                                                              `bad id "../x"`,
		`{"schemaVersion": 1, "keys": [{"id": "a", "algorithm": "rsa"}]}`:                                                                     `algorithm "rsa"`,
		`{"schemaVersion": 1, "keys": [{"id": "a", "algorithm": "ed25519", "publicKey": "AAAA"}]}`:                                            "32 bytes",
		strings.Replace(good, `"*"`, `"["`, 1):                                                                                                "bad module pattern",
		strings.Replace(good, `"modules": ["*"]}`, `"modules": ["*"]}, {"id": "release", "algorithm": "ed25519", "publicKey": "`+pub+`"}`, 1): "appears twice",
	} {
		_, err := ParseRegistry([]byte(in))
		assert.ErrorContains(t, err, want, in)
	}
}

func TestPrivateKeyFile(t *testing.T) {
	t.Parallel()
	k := testKey(t, "op", 9)
	b, err := MarshalPrivateKey(k)
	assert.NilError(t, err)
	p := filepath.Join(t.TempDir(), "op.key")
	assert.NilError(t, os.WriteFile(p, b, 0o644))
	_, err = ReadPrivateKey(p)
	assert.ErrorContains(t, err, "chmod 600")
	assert.NilError(t, os.Chmod(p, 0o600))
	back, err := ReadPrivateKey(p)
	assert.NilError(t, err)
	assert.Equal(t, back.ID, "op")
	assert.DeepEqual(t, []byte(back.Key), []byte(k.Key))
	_, err = ParsePrivateKey(bytes.Replace(b, []byte(`"publicKey": "`), []byte(`"publicKey": "x`), 1))
	assert.ErrorContains(t, err, "does not belong")
	_, err = GenerateKey("a/b", nil)
	assert.ErrorContains(t, err, "key id")
}

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{
		`{"b":1,"a":[true,null,"x\u0001"]}`, `1e30`, `-0.0`, `"\ud83d\ude00"`, `{"":{}}`, `[0.1,1e-7,123456789012345678901]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Canonical(b)
		if err != nil {
			return
		}
		// The canonical form is a fixed point.
		c2, err := Canonical(c)
		if err != nil {
			t.Fatalf("canonical form %q does not re-parse: %v", c, err)
		}
		if !bytes.Equal(c, c2) {
			t.Fatalf("not idempotent: %q then %q", c, c2)
		}
	})
}

// A key verifies only in its roles, and nothing once expired.
func TestRolesAndExpiry(t *testing.T) {
	t.Parallel()
	k := testKey(t, "op", 5)
	exp := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	reg := &Registry{SchemaVersion: 1, Keys: []Key{RegistryKey(k, Scope{Owner: "Operator One", Roles: []string{RoleApprover}, Expires: exp})}}
	doc, err := SignDocument([]byte(`{"decision": "approve"}`), "d/v1", k)
	assert.NilError(t, err)
	verify := func(role string, now time.Time) Check {
		c, err := Verify(doc, "d/v1", reg, func(k *Key) error { return k.Allows(role, "", now) })
		assert.NilError(t, err)
		return c
	}
	before, after := exp.Add(-time.Hour), exp.Add(time.Second)
	assert.Equal(t, verify(RoleApprover, before).Verdict, Valid)
	c := verify(RoleApprover, after)
	assert.Equal(t, c.Verdict, Untrusted)
	assert.Check(t, is.Contains(c.String(), `key "op" expired at 2026-12-01T00:00:00Z`))
	c = verify(RoleCheckpoint, before)
	assert.Equal(t, c.Verdict, Untrusted)
	assert.Check(t, is.Contains(c.String(), `does not have the role "checkpoint"`))

	b, err := json.Marshal(reg)
	assert.NilError(t, err)
	back, err := ParseRegistry(b)
	assert.NilError(t, err)
	assert.Equal(t, back.Lookup("op").Owner, "Operator One")
	assert.Equal(t, back.Lookup("op").Allows(RoleApprover, "", after) != nil, true)
	for in, want := range map[string]string{
		`"roles":["approver"]`:             `unknown role "root"`,
		`"expires":"2026-12-01T00:00:00Z"`: `expires "tomorrow" is not RFC 3339`,
	} {
		bad := strings.Replace(string(b), in, map[string]string{`"roles":["approver"]`: `"roles":["root"]`, `"expires":"2026-12-01T00:00:00Z"`: `"expires":"tomorrow"`}[in], 1)
		_, err := ParseRegistry([]byte(bad))
		assert.ErrorContains(t, err, want)
	}
}

func TestCanonicalRejectsLoneSurrogates(t *testing.T) {
	for _, in := range []string{`"\ud800"`, `"\udc00"`, `{"a": "x\ud83dy"}`, `"\ud83d\u0041"`, `["\ud83d"]`} {
		_, err := Canonical([]byte(in))
		assert.ErrorContains(t, err, "lone surrogate", in)
	}
	for in, want := range map[string]string{
		`"\ud83d\ude00"`:     "\"\U0001F600\"",
		`"\\ud800"`:          `"\\ud800"`,
		`{"k\"": "\u00e9"}`:  "{\"k\\\"\":\"\u00e9\"}",
		`"tab\there \u0041"`: `"tab\there A"`,
	} {
		got, err := Canonical([]byte(in))
		assert.NilError(t, err, in)
		assert.Equal(t, string(got), want, in)
	}
}
