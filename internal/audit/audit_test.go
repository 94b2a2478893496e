package audit

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/sign"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func event(i int) Event {
	return Event{
		Time: t0.Add(time.Duration(i) * time.Minute).Format(time.RFC3339), Stage: []string{"snapshot", "policy", "upgrades"}[i%3],
		Actor: "op@node", Result: ResultOK,
		Inputs: []artifact.Input{{Kind: "lambda-check/snapshot", Digest: "sha256:" + strings.Repeat("ab", 32)}},
		Output: &Output{Kind: "lambda-check/policy", Digest: fmt.Sprintf("sha256:%064x", i)},
	}
}

func writeLog(t testing.TB, n int) (string, []byte) {
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	for i := range n {
		if _, err := Append(p, event(i)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, b
}

func verifyBytes(t *testing.T, b []byte, o VerifyOptions) *Report {
	t.Helper()
	rep, err := Verify(bytes.NewReader(b), o)
	assert.NilError(t, err)
	return rep
}

func lines(b []byte) [][]byte {
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

func join(ls [][]byte) []byte { return bytes.Join(ls, nil) }

func TestAppendAndVerify(t *testing.T) {
	t.Parallel()
	p, b := writeLog(t, 5)
	rep := verifyBytes(t, b, VerifyOptions{})
	assert.Assert(t, rep.Problem == nil, "%v", rep.Problem)
	assert.Equal(t, rep.Events, int64(5))
	h, err := ReadHead(p)
	assert.NilError(t, err)
	assert.Equal(t, h.Seq, int64(5))
	assert.Equal(t, h.Digest, rep.Head)
	e, err := Decode(lines(b)[2])
	assert.NilError(t, err)
	assert.Equal(t, e.Seq, int64(3))
	first, err := Decode(lines(b)[0])
	assert.NilError(t, err)
	assert.Equal(t, first.Prev, Genesis)
	assert.Equal(t, e.Prev, mustDecode(t, lines(b)[1]).Digest)
	assert.Check(t, is.Contains(rep.Notes[0], "no checkpoint"))

	empty := verifyBytes(t, nil, VerifyOptions{})
	assert.Assert(t, empty.Problem == nil)
	assert.Equal(t, empty.Events, int64(0))

	// A partial last line stops appends and fails verification.
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	assert.NilError(t, err)
	_, _ = f.WriteString(`{"seq":6,"prev`)
	assert.NilError(t, f.Close())
	_, err = Append(p, event(6))
	assert.ErrorIs(t, err, ErrPartial)
	b2, _ := os.ReadFile(p)
	rep = verifyBytes(t, b2, VerifyOptions{})
	assert.Equal(t, rep.Problem.Line, int64(6))
	assert.Check(t, is.Contains(rep.Problem.What, "ends in the middle of this line"))
}

func mustDecode(t *testing.T, line []byte) *Event {
	t.Helper()
	e, err := Decode(line)
	assert.NilError(t, err)
	return e
}

// Every kind of tampering is found, at the right line.
func TestTampering(t *testing.T) {
	t.Parallel()
	_, b := writeLog(t, 10)
	ls := lines(b)
	for _, tc := range []struct {
		name string
		log  []byte
		line int64
		what string
	}{
		{"edited", bytes.Replace(b, []byte(`"stage":"policy"`), []byte(`"stage":"polícy"`), 1), 2, "digest does not match"},
		{"deleted", join(append(append([][]byte{}, ls[:4]...), ls[5:]...)), 5, "has seq 6 where 5 belongs"},
		{"reordered", join(append(append(append([][]byte{}, ls[:3]...), ls[4], ls[3]), ls[5:]...)), 4, "has seq 5 where 4 belongs"},
		{"inserted copy", join(append(append(append([][]byte{}, ls[:3]...), ls[2]), ls[3:]...)), 4, "has seq 3 where 4 belongs"},
		{"first deleted", join(ls[1:]), 1, "has seq 2 where 1 belongs"},
	} {
		rep := verifyBytes(t, tc.log, VerifyOptions{})
		assert.Assert(t, rep.Problem != nil, tc.name)
		assert.Equal(t, rep.Problem.Line, tc.line, tc.name)
		assert.Check(t, is.Contains(rep.Problem.What, tc.what), tc.name)
	}
	// A line re-hashed after an edit still breaks the next line's prev.
	e := mustDecode(t, ls[3])
	e.Actor = "mallory"
	forged, _, err := encode(e)
	assert.NilError(t, err)
	rep := verifyBytes(t, join(append(append(append([][]byte{}, ls[:3]...), forged), ls[4:]...)), VerifyOptions{})
	assert.Equal(t, rep.Problem.Line, int64(5))
	assert.Check(t, is.Contains(rep.Problem.What, "prev is not the digest of the line before it"))
}

// Property: any single-byte change anywhere in the log is detected.
func TestAnyByteChanged(t *testing.T) {
	t.Parallel()
	_, b := writeLog(t, 20)
	r := rand.New(rand.NewPCG(7, 11))
	for i := range b {
		c := append([]byte{}, b...)
		c[i] ^= byte(1 + r.IntN(255))
		rep := verifyBytes(t, c, VerifyOptions{})
		assert.Assert(t, rep.Problem != nil, "change at byte %d (%q) not detected", i, b[i])
	}
}

func testKey(t *testing.T) (*sign.PrivateKey, *sign.Registry) {
	k, err := sign.GenerateKey("auditor", bytes.NewReader(bytes.Repeat([]byte{3}, 32)))
	assert.NilError(t, err)
	reg := &sign.Registry{SchemaVersion: 1, Keys: []sign.Key{sign.RegistryKey(k, sign.Scope{Roles: []string{sign.RoleCheckpoint}})}}
	rb, err := artifact.Encode(reg)
	assert.NilError(t, err)
	reg, err = sign.ParseRegistry(rb)
	assert.NilError(t, err)
	return k, reg
}

// Checkpoints find what the chain alone cannot: a truncated or rewritten
// tail; forged checkpoints are refused.
func TestCheckpoints(t *testing.T) {
	t.Parallel()
	k, reg := testKey(t)
	p, _ := writeLog(t, 6)
	h, err := ReadHead(p)
	assert.NilError(t, err)
	cp, err := SignCheckpoint(h, k, t0)
	assert.NilError(t, err)
	_, err = Append(p, Event{Time: t0.Format(time.RFC3339), Stage: "checkpoint", Actor: "op", Result: ResultOK, Checkpoint: cp})
	assert.NilError(t, err)
	for i := 6; i < 9; i++ {
		_, err = Append(p, event(i))
		assert.NilError(t, err)
	}
	b, _ := os.ReadFile(p)
	o := VerifyOptions{Registry: reg, Now: t0, Checkpoints: []*Checkpoint{cp}}
	rep := verifyBytes(t, b, o)
	assert.Assert(t, rep.Problem == nil, "%v", rep.Problem)
	assert.DeepEqual(t, rep.Checkpoints, []CheckedAnchor{
		{Seq: 6, Signer: "auditor", Where: "log", Signature: "valid"},
		{Seq: 6, Signer: "auditor", Where: "outside", Signature: "valid"},
	})
	assert.Check(t, is.Contains(strings.Join(rep.Notes, "; "), "events after seq 6 are not covered"))

	// Truncated below the checkpoint: the chain is fine, the anchor is not.
	ls := lines(b)
	rep = verifyBytes(t, join(ls[:4]), o)
	assert.Check(t, is.Contains(rep.Problem.What, "the log ends at seq 4 but a signed checkpoint names seq 6: it was truncated"))

	// Rewritten from line 3 on, every digest recomputed: the checkpoint
	// no longer matches line 6.
	var rewritten []byte
	prev := Genesis
	for i, l := range ls[:6] {
		e := mustDecode(t, l)
		if i >= 2 {
			e.Actor = "mallory"
		}
		e.Prev = prev
		line, d, err := encode(e)
		assert.NilError(t, err)
		rewritten, prev = append(rewritten, line...), d
	}
	rep = verifyBytes(t, rewritten, o)
	assert.Equal(t, rep.Problem.Line, int64(6))
	assert.Check(t, is.Contains(rep.Problem.What, "differs from the signed checkpoint"))

	// A checkpoint signed by a key without the checkpoint role, or
	// expired, or forged, does not count.
	other, err := sign.GenerateKey("auditor", bytes.NewReader(bytes.Repeat([]byte{4}, 32)))
	assert.NilError(t, err)
	forged, err := SignCheckpoint(h, other, t0)
	assert.NilError(t, err)
	rep = verifyBytes(t, b, VerifyOptions{Registry: reg, Now: t0, Checkpoints: []*Checkpoint{forged}})
	assert.Check(t, is.Contains(rep.Problem.What, "does not verify"))
	noRole := &sign.Registry{SchemaVersion: 1, Keys: []sign.Key{sign.RegistryKey(k, sign.Scope{Roles: []string{sign.RoleApprover}})}}
	rep = verifyBytes(t, b, VerifyOptions{Registry: noRole, Now: t0})
	assert.Check(t, is.Contains(rep.Problem.What, `does not have the role "checkpoint"`))

	// The sidecar directory round trip.
	dir := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "6.json"), cp.Document, 0o644))
	got, err := ReadCheckpoints(dir)
	assert.NilError(t, err)
	assert.Equal(t, len(got), 1)
	assert.Equal(t, got[0].Head, cp.Head)
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "7.json"), cp.Document, 0o644))
	_, err = ReadCheckpoints(dir)
	assert.ErrorContains(t, err, "7.json holds the checkpoint of seq 6")
}

func FuzzDecode(f *testing.F) {
	_, b := writeLog(f, 3)
	for _, l := range lines(b) {
		f.Add(l)
	}
	f.Add([]byte(`{"seq":1,"prev":"x","digest":"y"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := Decode(line)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same line.
		again, _, err := encode(e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bytes.TrimSuffix(again, []byte("\n")), bytes.TrimSuffix(line, []byte("\n"))) {
			t.Fatalf("decoded %q, re-encoded %q", line, again)
		}
	})
}

// BenchmarkVerify: a million events.
func BenchmarkVerify(b *testing.B) {
	var buf bytes.Buffer
	prev := Genesis
	for i := range 1_000_000 {
		e := event(i)
		e.Seq, e.Prev = int64(i+1), prev
		line, d, err := encode(&e)
		if err != nil {
			b.Fatal(err)
		}
		buf.Write(line)
		prev = d
	}
	log := buf.Bytes()
	b.SetBytes(int64(len(log)))
	b.ResetTimer()
	for b.Loop() {
		rep, err := Verify(bytes.NewReader(log), VerifyOptions{})
		if err != nil || rep.Problem != nil || rep.Events != 1_000_000 {
			b.Fatalf("%v %+v", err, rep)
		}
	}
}

// TestBenchReport prints the figure docs/performance.md records: verifying
// a million-event log, against sha256sum reading and hashing the same file
// once (the least any check of its content costs). It runs only when
// LAMBDA_CHECK_BENCH=1, and asserts nothing about time.
func TestBenchReport(t *testing.T) {
	if os.Getenv("LAMBDA_CHECK_BENCH") != "1" {
		t.Skip("skipped: set LAMBDA_CHECK_BENCH=1 to measure (see docs/performance.md)")
	}
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	f, err := os.Create(p)
	assert.NilError(t, err)
	prev := Genesis
	for i := range 1_000_000 {
		e := event(i)
		e.Seq, e.Prev = int64(i+1), prev
		line, d, err := encode(&e)
		assert.NilError(t, err)
		_, err = f.Write(line)
		assert.NilError(t, err)
		prev = d
	}
	assert.NilError(t, f.Close())
	st, err := os.Stat(p)
	assert.NilError(t, err)
	median := func(run func()) time.Duration {
		var ds []time.Duration
		for range 3 {
			start := time.Now()
			run()
			ds = append(ds, time.Since(start))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[1]
	}
	ours := median(func() {
		f, err := os.Open(p)
		assert.NilError(t, err)
		defer f.Close()
		rep, err := Verify(f, VerifyOptions{})
		assert.NilError(t, err)
		assert.Assert(t, rep.Problem == nil && rep.Events == 1_000_000)
	})
	theirs := median(func() {
		out, err := exec.Command("sha256sum", p).CombinedOutput()
		assert.NilError(t, err, string(out))
	})
	fmt.Printf("| events | log size | audit verify | sha256sum of the file | ratio |\n|---|---|---|---|---|\n")
	fmt.Printf("| 1,000,000 | %d MB | %.2f s | %.2f s | %.2fx |\n", st.Size()>>20, ours.Seconds(), theirs.Seconds(), float64(ours)/float64(theirs))
}

func TestRepairTail(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	for i := 0; i < 3; i++ {
		_, err := Append(p, Event{Time: "2026-11-27T12:00:00Z", Stage: "snapshot", Actor: "t", Result: ResultOK})
		assert.NilError(t, err)
	}
	whole, err := os.ReadFile(p)
	assert.NilError(t, err)

	n, err := RepairTail(p)
	assert.NilError(t, err)
	assert.Equal(t, n, int64(0), "a complete log is left alone")

	// A writer killed mid-line.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	assert.NilError(t, err)
	_, err = f.WriteString(`{"seq":4,"prev":"sha256:`)
	assert.NilError(t, err)
	assert.NilError(t, f.Close())
	_, err = ReadHead(p)
	assert.ErrorIs(t, err, ErrPartial)

	n, err = RepairTail(p)
	assert.NilError(t, err)
	assert.Equal(t, n, int64(len(`{"seq":4,"prev":"sha256:`)))
	got, err := os.ReadFile(p)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, whole)
	torn, err := os.ReadFile(p + ".torn")
	assert.NilError(t, err)
	assert.Equal(t, string(torn), `{"seq":4,"prev":"sha256:`+"\n")
	h, err := ReadHead(p)
	assert.NilError(t, err)
	assert.Equal(t, h.Seq, int64(3))
	_, err = Append(p, Event{Time: "2026-11-27T12:00:00Z", Stage: "cycle", Actor: "t", Result: ResultOK})
	assert.NilError(t, err)
}

// A checkpoint stays valid after its key expires (validity is at signing
// time); one signed after the expiry, or dated in the future, does not count.
func TestCheckpointValidityAtSigning(t *testing.T) {
	t.Parallel()
	k, err := sign.GenerateKey("auditor", bytes.NewReader(bytes.Repeat([]byte{3}, 32)))
	assert.NilError(t, err)
	expires := t0.Add(time.Hour)
	rb, err := artifact.Encode(&sign.Registry{SchemaVersion: 1, Keys: []sign.Key{sign.RegistryKey(k, sign.Scope{Roles: []string{sign.RoleCheckpoint}, Expires: expires})}})
	assert.NilError(t, err)
	reg, err := sign.ParseRegistry(rb)
	assert.NilError(t, err)
	p, _ := writeLog(t, 3)
	h, err := ReadHead(p)
	assert.NilError(t, err)
	before, err := SignCheckpoint(h, k, t0)
	assert.NilError(t, err)
	later := t0.Add(30 * 24 * time.Hour)
	assert.NilError(t, before.VerifySignature(reg, later), "signed while the key was valid")
	after, err := SignCheckpoint(h, k, expires.Add(time.Minute))
	assert.NilError(t, err)
	assert.ErrorContains(t, after.VerifySignature(reg, later), "expired")
	future, err := SignCheckpoint(h, k, t0.Add(10*time.Minute))
	assert.NilError(t, err)
	assert.ErrorContains(t, future.VerifySignature(reg, t0), "after now")
}
