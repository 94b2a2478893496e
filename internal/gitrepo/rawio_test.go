package gitrepo

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
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
