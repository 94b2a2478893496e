package gitrepo

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// HasCommit reports whether the repository holds the commit rev.
func (r *Repo) HasCommit(rev plumbing.Hash) bool {
	_, err := object.GetCommit(r.Storage(), rev)
	return err == nil
}

// ReadFile returns the content of the regular file at path in rev's tree.
// A path that does not exist there is an error matching fs.ErrNotExist.
func (r *Repo) ReadFile(rev plumbing.Hash, path string) ([]byte, error) {
	c, err := object.GetCommit(r.Storage(), rev)
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
	rd, err := f.Reader()
	if err != nil {
		return nil, fmt.Errorf("read %s at %s in %q: %w", path, rev, r.GitDir, err)
	}
	defer rd.Close()
	return io.ReadAll(io.LimitReader(rd, 16<<20))
}
