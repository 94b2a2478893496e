package gitrepo

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"

	"github.com/go-git/go-billy/v5"
)

// idxFS hands go-git its pack indexes read in one piece: its decoder reads
// an index with thousands of small reads of the file (4 bytes at a time),
// which made opening a repository with real-sized packs slow.
type idxFS struct{ billy.Filesystem }

func (f idxFS) Open(name string) (billy.File, error) {
	return f.OpenFile(name, os.O_RDONLY, 0)
}

func (f idxFS) OpenFile(name string, flag int, perm os.FileMode) (billy.File, error) {
	file, err := f.Filesystem.OpenFile(name, flag, perm)
	if err != nil || flag != os.O_RDONLY || !strings.HasSuffix(name, ".idx") {
		return file, err
	}
	defer file.Close()
	st, err := f.Filesystem.Stat(name)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(file)
	if err != nil {
		return nil, err
	}
	return &memFile{name: file.Name(), Reader: bytes.NewReader(b), st: st}, nil
}

func (f idxFS) Chroot(p string) (billy.Filesystem, error) {
	c, err := f.Filesystem.Chroot(p)
	if err != nil {
		return nil, err
	}
	return idxFS{c}, nil
}

// memFile is a read-only file held in memory.
type memFile struct {
	name string
	*bytes.Reader
	st os.FileInfo
}

var errReadOnly = errors.New("read-only")

func (m *memFile) Name() string               { return m.name }
func (m *memFile) Write([]byte) (int, error)  { return 0, errReadOnly }
func (m *memFile) Close() error               { return nil }
func (m *memFile) Lock() error                { return nil }
func (m *memFile) Unlock() error              { return nil }
func (m *memFile) Truncate(int64) error       { return errReadOnly }
func (m *memFile) Stat() (os.FileInfo, error) { return m.st, nil }
