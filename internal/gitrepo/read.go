package gitrepo

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// HasCommit reports whether the repository holds the commit rev.
func (r *Repo) HasCommit(rev plumbing.Hash) bool {
	if typ, _, ok := r.objects().read(rev); ok {
		return typ == objCommit
	}
	_, err := object.GetCommit(r.Storage(), rev)
	return err == nil
}

// ErrMissingObject: an object (a commit, a tree, a blob) that the
// repository does not have.
var ErrMissingObject = errors.New("not in the local repository")

// objErr marks an object the store lacks as ErrMissingObject.
func objErr(err error) error {
	if errors.Is(err, plumbing.ErrObjectNotFound) && !errors.Is(err, ErrMissingObject) {
		return ErrMissingObject
	}
	return err
}

// ReadFile returns the content of the regular file at path in rev's tree.
// A path that does not exist there is an error matching fs.ErrNotExist.
func (r *Repo) ReadFile(rev plumbing.Hash, path string) ([]byte, error) {
	c, err := object.GetCommit(r.Storage(), rev)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, fmt.Errorf("commit %s: %w", rev.String()[:12], ErrMissingObject)
	}
	if err != nil {
		return nil, fmt.Errorf("read commit %s in %q: %w", rev, r.GitDir, err)
	}
	t, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("read tree of %s in %q: %w", rev, r.GitDir, err)
	}
	f, err := t.File(path)
	if errors.Is(err, object.ErrFileNotFound) || errors.Is(err, object.ErrDirectoryNotFound) || errors.Is(err, object.ErrEntryNotFound) {
		return nil, fmt.Errorf("%s at %s: %w", path, rev, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s at %s in %q: %w", path, rev, r.GitDir, err)
	}
	if !f.Mode.IsFile() || f.Mode == filemode.Symlink {
		return nil, fmt.Errorf("%s at %s is not a regular file", path, rev)
	}
	if f.Size > MaxFile {
		return nil, fmt.Errorf("%s at %s is %d bytes, more than the %d read from git: %w", path, rev, f.Size, int64(MaxFile), ErrTooLarge)
	}
	rd, err := f.Reader()
	if err != nil {
		return nil, fmt.Errorf("read %s at %s in %q: %w", path, rev, r.GitDir, err)
	}
	defer rd.Close()
	b, err := io.ReadAll(io.LimitReader(rd, MaxFile+1))
	if err == nil && len(b) > MaxFile {
		return nil, fmt.Errorf("%s at %s is more than the %d bytes read from git: %w", path, rev, int64(MaxFile), ErrTooLarge)
	}
	return b, err
}

// MaxFile bounds a file read from git's objects (flake.lock, flake.nix,
// metadata.json): a larger one is an error, never cut short.
const MaxFile = 16 << 20

// ErrTooLarge: a file read from git is over MaxFile.
var ErrTooLarge = errors.New("file too large")

// ErrNotIndexed: the work tree file is not the one the index records.
var ErrNotIndexed = errors.New("work tree file differs from the index")

// ReadIndexedFile reads path from the work tree when it is exactly the blob
// the index records for it (its content hashed and compared), which for a
// clean checkout is also the HEAD commit's. A path the index does not
// track is an error matching fs.ErrNotExist; a file that differs matches
// ErrNotIndexed. It spares opening the object store, which for thousands
// of repositories is most of the cost.
func (r *Repo) ReadIndexedFile(path string) ([]byte, error) {
	idx, err := r.ReadIndex()
	if err != nil {
		return nil, err
	}
	var e *IndexEntry
	for i := range idx.Entries {
		if idx.Entries[i].Name == path && idx.Entries[i].Stage == 0 {
			e = &idx.Entries[i]
			break
		}
	}
	if e == nil {
		return nil, fmt.Errorf("%s is not tracked: %w", path, fs.ErrNotExist)
	}
	if e.Mode != filemode.Regular && e.Mode != filemode.Executable {
		return nil, fmt.Errorf("%s is not a regular file: %w", path, ErrNotIndexed)
	}
	if int64(e.Size) > MaxFile {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d read: %w", path, e.Size, int64(MaxFile), ErrTooLarge)
	}
	b, err := os.ReadFile(filepath.Join(r.WorkTree, filepath.FromSlash(path)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrNotIndexed, err)
	}
	if BlobHash(b) != e.Hash {
		return nil, fmt.Errorf("%s: %w", path, ErrNotIndexed)
	}
	return b, nil
}

// CommitParentAndMessage is a commit's first parent ("" for a root
// commit) and its message.
func (r *Repo) CommitParentAndMessage(h plumbing.Hash) (string, string, error) {
	c, err := object.GetCommit(r.Storage(), h)
	if err != nil {
		return "", "", fmt.Errorf("read commit %s in %q: %w", h, r.GitDir, err)
	}
	parent := ""
	if len(c.ParentHashes) > 0 {
		parent = c.ParentHashes[0].String()
	}
	return parent, c.Message, nil
}

// CommitHooks lists the hooks git would run on a commit in this
// repository (pre-commit, prepare-commit-msg, commit-msg, post-commit):
// executable files in its hooks directory (core.hooksPath is not read).
func (r *Repo) CommitHooks() []string {
	var out []string
	for _, n := range []string{"pre-commit", "prepare-commit-msg", "commit-msg", "post-commit"} {
		if fi, err := os.Stat(filepath.Join(r.GitDir, "hooks", n)); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			out = append(out, n)
		}
	}
	return out
}
