package gitrepo

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestReadFileAsOS(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 1, 511, 512, 513, 70000} {
		p := filepath.Join(dir, "f")
		want := bytes.Repeat([]byte("ab"), n)[:n]
		if err := os.WriteFile(p, want, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("size %d: got %d bytes, %v", n, len(got), err)
		}
	}
	if _, err := readFile(filepath.Join(dir, "absent")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("absent: %v", err)
	}
	if _, err := readFile(dir); err == nil {
		t.Error("a directory read as a file")
	}
	if _, err := readFile(filepath.Join(dir, "f", "x")); err == nil {
		t.Error("a path under a file read")
	}
}

// A file in git's objects over MaxFile is an error, never cut short.
func TestReadFileTooLarge(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	run("init", "-q")
	if err := os.WriteFile(filepath.Join(dir, "big"), bytes.Repeat([]byte("x"), MaxFile+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ok"), []byte("fine"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("add", ".")
	run("commit", "-qm", "x")
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := r.Head()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadFile(h.Hash, "big"); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ReadFile of %d bytes: %v", MaxFile+1, err)
	}
	if b, err := r.ReadFile(h.Hash, "ok"); err != nil || string(b) != "fine" {
		t.Fatalf("ReadFile ok: %q, %v", b, err)
	}
}
