package audit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A valid log with lines over the reader's 1 MiB buffer verifies.
func TestLinesOverOneMiB(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.jsonl")
	for i := 0; i < 3; i++ {
		if _, err := Append(p, Event{Time: "2026-01-01T00:00:00Z", Stage: "x", Actor: "a", Result: ResultOK, Detail: strings.Repeat("d", 3<<20)}); err != nil {
			t.Fatal(err)
		}
	}
	f, _ := os.Open(p)
	rep, err := Verify(f, VerifyOptions{})
	if err != nil || rep.Problem != nil {
		t.Fatal(err, rep.Problem)
	}
	if _, err := ReadHead(p); err != nil {
		t.Fatal(err)
	}
}

// The log and its .torn file are never written through a planted
// symbolic link.
func TestLogSymlinkRefused(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "audit.jsonl")
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
	if _, err := Append(p, Event{Time: "2026-01-01T00:00:00Z", Stage: "x", Actor: "a", Result: ResultOK}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Append through a symlink: %v", err)
	}
	if _, err := RepairTail(p); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("RepairTail through a symlink: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Fatalf("the target changed: %q", b)
	}
}

// An append-only log (chattr +a) works: nothing opens it for writing but
// appends, and a whole log needs no repair.
func TestAppendOnlyLog(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	if _, err := Append(p, Event{Time: "2026-01-01T00:00:00Z", Stage: "x", Actor: "a", Result: ResultOK}); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chattr", "+a", p).CombinedOutput(); err != nil {
		t.Skipf("chattr +a is not possible here: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-a", p).Run() })
	if n, err := RepairTail(p); err != nil || n != 0 {
		t.Fatalf("RepairTail on an append-only log: %d, %v", n, err)
	}
	if _, err := Append(p, Event{Time: "2026-01-01T00:00:01Z", Stage: "y", Actor: "a", Result: ResultOK}); err != nil {
		t.Fatalf("Append to an append-only log: %v", err)
	}
	if h, err := ReadHead(p); err != nil || h.Seq != 2 {
		t.Fatalf("head %v, %v", h, err)
	}
}
