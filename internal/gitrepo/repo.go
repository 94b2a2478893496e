// Package gitrepo is lambda-check's only door to git. It reads repositories
// in-process (index decoding, refs, objects through go-git's plumbing) and
// computes status from stat data the way git does, hashing content only when
// stat data cannot decide. Every error is returned: it never guesses.
package gitrepo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/config"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

// ErrNotRepository reports a directory that is not a git work tree.
var ErrNotRepository = errors.New("not a git repository")

// ErrNotCheckedOut reports a submodule directory that exists but holds no
// checkout (an uninitialised submodule).
var ErrNotCheckedOut = errors.New("not checked out")

// Repo is a git repository with a work tree.
type Repo struct {
	// WorkTree is the absolute path of the work tree.
	WorkTree string
	// GitDir is the absolute path of the repository's git directory.
	GitDir string

	once    sync.Once
	storage *filesystem.Storage
	// pending collects written objects for PackWrites.
	pending *memory.Storage
	// The small object reader's pack indexes (commitread.go).
	odbOnce  sync.Once
	odbCache *odb
	cfg      *config.Config
	cfgErr   error
}

// Open opens the repository whose work tree is dir. dir/.git may be a
// directory or a "gitdir:" file (as submodules and worktrees have).
func Open(dir string) (*Repo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	gitdir, err := findGitDir(abs)
	if err != nil {
		return nil, err
	}
	return &Repo{WorkTree: abs, GitDir: gitdir}, nil
}

// OpenBare opens a bare repository (a remote) at dir.
func OpenBare(dir string) (*Repo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(abs, "objects")); err != nil {
		return nil, fmt.Errorf("%q: %w", dir, ErrNotRepository)
	}
	return &Repo{GitDir: abs}, nil
}

func findGitDir(worktree string) (string, error) {
	dotgit := filepath.Join(worktree, ".git")
	fi, err := os.Lstat(dotgit)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("%q: %w", worktree, ErrNotRepository)
	case err != nil:
		return "", err
	case fi.IsDir():
		return dotgit, nil
	case fi.Mode().IsRegular():
		b, err := readFile(dotgit)
		if err != nil {
			return "", err
		}
		line, _, _ := strings.Cut(string(b), "\n")
		target, ok := strings.CutPrefix(strings.TrimSpace(line), "gitdir:")
		if !ok {
			return "", fmt.Errorf("%q: malformed .git file: %w", dotgit, ErrNotRepository)
		}
		target = strings.TrimSpace(target)
		if !filepath.IsAbs(target) {
			target = filepath.Join(worktree, target)
		}
		if _, err := os.Stat(filepath.Join(target, "HEAD")); err != nil {
			return "", fmt.Errorf("%q points to %q: %w", dotgit, target, err)
		}
		return filepath.Clean(target), nil
	default:
		return "", fmt.Errorf("%q is neither a file nor a directory: %w", dotgit, ErrNotRepository)
	}
}

// Storage returns the repository's object and reference store, opened once.
func (r *Repo) Storage() *filesystem.Storage {
	r.once.Do(func() {
		r.storage = filesystem.NewStorageWithOptions(idxFS{osfs.New(r.GitDir)}, cache.NewObjectLRU(4*cache.MiByte), filesystem.Options{
			AlternatesFS: idxFS{osfs.New("/")},
		})
	})
	return r.storage
}

// Config returns the repository's own config file (not the user's).
func (r *Repo) Config() (*config.Config, error) {
	if r.cfg != nil || r.cfgErr != nil {
		return r.cfg, r.cfgErr
	}
	cfg := config.New()
	b, err := readFile(filepath.Join(r.GitDir, "config"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		r.cfgErr = err
	default:
		if err := config.NewDecoder(bytes.NewReader(b)).Decode(cfg); err != nil {
			r.cfgErr = fmt.Errorf("parse %q: %w", filepath.Join(r.GitDir, "config"), err)
		}
	}
	r.cfg = cfg
	if r.cfgErr == nil {
		if f := cfg.Section("extensions").Option("objectformat"); f != "" && f != "sha1" {
			r.cfgErr = fmt.Errorf("%q uses object format %q, which lambda-check does not read yet", r.GitDir, f)
		}
	}
	return r.cfg, r.cfgErr
}

// Head describes what HEAD points at.
type Head struct {
	// Hash is the commit HEAD resolves to; zero when the branch is unborn.
	Hash plumbing.Hash
	// Branch is the short branch name; empty when HEAD is detached.
	Branch string
}

// Detached reports whether HEAD points directly at a commit.
func (h Head) Detached() bool { return h.Branch == "" }

// Head resolves HEAD by reading refs directly (loose, then packed).
func (r *Repo) Head() (Head, error) {
	name := "HEAD"
	var h Head
	for range 8 {
		val, err := r.readRef(name)
		if err != nil {
			return Head{}, fmt.Errorf("resolve %s in %q: %w", name, r.GitDir, err)
		}
		if val == "" {
			return h, nil // unborn branch: no commit yet
		}
		target, sym := strings.CutPrefix(val, "ref: ")
		if !sym {
			if !plumbing.IsHash(val) {
				return Head{}, fmt.Errorf("resolve %s in %q: %w: malformed value %q", name, r.GitDir, ErrCorrupt, val)
			}
			h.Hash = plumbing.NewHash(val)
			return h, nil
		}
		if name == "HEAD" {
			h.Branch = strings.TrimPrefix(target, "refs/heads/")
		}
		name = target
	}
	return Head{}, fmt.Errorf("resolve HEAD in %q: symbolic ref loop", r.GitDir)
}

// errUnborn is returned by readRef for a ref that does not exist.
var errUnborn = errors.New("no such ref")

func (r *Repo) readRef(name string) (string, error) {
	b, err := readFile(filepath.Join(r.GitDir, filepath.FromSlash(name)))
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.EISDIR) {
		return "", err
	}
	f, err := os.Open(filepath.Join(r.GitDir, "packed-refs"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", r.unborn(name)
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || line[0] == '^' {
			continue
		}
		hash, ref, ok := strings.Cut(line, " ")
		if ok && ref == name {
			return hash, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", r.unborn(name)
}

func (r *Repo) unborn(name string) error {
	if name == "HEAD" {
		return fmt.Errorf("HEAD: %w", errUnborn)
	}
	// A symbolic HEAD to a missing branch is an unborn branch: not an error.
	return nil
}

// ErrCorrupt marks repository data that cannot be decoded (a corrupt index,
// a malformed ref, a missing object).
var ErrCorrupt = errors.New("corrupt repository data")
