package gitrepo

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Change kinds of a path.
const (
	Added      = "added"
	Modified   = "modified"
	Deleted    = "deleted"
	TypeChange = "typechange"
	Unmerged   = "unmerged"
)

// FileChange is one changed path.
type FileChange struct {
	Path   string `json:"path"`
	Change string `json:"change"`
}

// Untracked kinds.
const (
	UntrackedFile       = "file"
	UntrackedSymlink    = "symlink"
	UntrackedRepository = "repository"
)

// Untracked is a file git does not track and does not ignore.
type Untracked struct {
	Path string `json:"path"`
	Type string `json:"type"`
	Size int64  `json:"size"`
	// SHA256 is the hex sha256 of the content (of the target, for a symlink);
	// empty for a nested repository.
	SHA256 string `json:"sha256,omitempty"`
}

// Gitlink is a submodule commit recorded in the index.
type Gitlink struct {
	Path string
	Hash plumbing.Hash
}

// StatusOptions tunes Status.
type StatusOptions struct {
	// Exclude lists absolute paths that are never walked or reported (the
	// state directory).
	Exclude []string
	// UserExcludes is the user's global ignore file (core.excludesFile or
	// $XDG_CONFIG_HOME/git/ignore); nil for none. One value serves every
	// repository of a snapshot: the file is read once.
	UserExcludes *IgnoreFile
	// StatCache, when set, spares hashing files hashed by an earlier
	// status with the same stat data (see StatCache).
	StatCache *StatCache
}

// Status is a repository's state relative to its HEAD and index.
type Status struct {
	Head      Head
	Staged    []FileChange // index vs HEAD, gitlinks included
	Unstaged  []FileChange // work tree vs index, gitlinks excluded
	Untracked []Untracked
	Gitlinks  []Gitlink // every gitlink in the index, by path
}

// Clean reports whether nothing is staged, modified or untracked.
func (s *Status) Clean() bool {
	return len(s.Staged) == 0 && len(s.Unstaged) == 0 && len(s.Untracked) == 0
}

// Status computes the repository's status in-process. For tracked files it
// compares index stat data with lstat(2), as git does, and hashes content only
// when the stat data cannot decide (changed ctime/mtime/inode with equal size,
// or a racily clean entry). Untracked files are found by walking the work tree
// with the repository's ignore rules, and hashed with sha256.
func (r *Repo) Status(ctx context.Context, opts StatusOptions) (*Status, error) {
	cfg, err := r.Config()
	if err != nil {
		return nil, err
	}
	core := cfg.Section("core")
	trustMode := !strings.EqualFold(core.Option("filemode"), "false")
	if v := core.Option("autocrlf"); v != "" && !strings.EqualFold(v, "false") {
		return nil, fmt.Errorf("%q sets core.autocrlf=%s, which in-process status does not model", r.WorkTree, v)
	}
	head, err := r.Head()
	if err != nil {
		return nil, err
	}
	idx, err := r.ReadIndex()
	if err != nil {
		return nil, err
	}
	for i := range idx.Entries {
		if idx.Entries[i].SkipWorktree {
			return nil, fmt.Errorf("%q has a sparse checkout (skip-worktree entries), which in-process status does not model", r.WorkTree)
		}
	}
	st := &Status{Head: head}
	if st.Staged, err = r.staged(idx, head); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tracked := make(map[string]struct{}, len(idx.Entries))
	dirs := map[string]struct{}{"": {}}
	for i := range idx.Entries {
		e := &idx.Entries[i]
		tracked[e.Name] = struct{}{}
		for d := e.Name; ; {
			i := strings.LastIndexByte(d, '/')
			if i < 0 {
				break
			}
			d = d[:i]
			if _, ok := dirs[d]; ok {
				break
			}
			dirs[d] = struct{}{}
		}
		if e.Mode == filemode.Submodule && e.Stage == 0 {
			st.Gitlinks = append(st.Gitlinks, Gitlink{Path: e.Name, Hash: e.Hash})
		}
	}
	if st.Unstaged, err = r.unstaged(idx, trustMode, opts.StatCache); err != nil {
		return nil, err
	}
	w := walker{
		root: r.WorkTree, tracked: tracked, trackedDirs: dirs,
		gitlinks: map[string]struct{}{}, exclude: map[string]struct{}{},
	}
	for _, g := range st.Gitlinks {
		w.gitlinks[g.Path] = struct{}{}
	}
	for _, x := range opts.Exclude {
		w.exclude[filepath.Clean(x)] = struct{}{}
	}
	var base []gitignore.Pattern
	if opts.UserExcludes != nil {
		if base, err = opts.UserExcludes.patterns(); err != nil {
			return nil, err
		}
	}
	info, err := readPatterns(filepath.Join(r.GitDir, "info", "exclude"), nil)
	if err != nil {
		return nil, err
	}
	if err := w.walk(ctx, "", nil, append(base, info...), nil); err != nil {
		return nil, err
	}
	st.Untracked = w.out
	sort.Slice(st.Untracked, func(i, j int) bool { return st.Untracked[i].Path < st.Untracked[j].Path })
	return st, nil
}

// staged compares the index with HEAD's tree. When the index's cache tree
// is valid at the root and equals HEAD's tree, nothing is staged and no tree
// object needs reading.
func (r *Repo) staged(idx *Index, head Head) ([]FileChange, error) {
	var headFiles map[string]object.TreeEntry
	if !head.Hash.IsZero() {
		tree, err := r.CommitTreeOf(head.Hash)
		if err != nil {
			return nil, fmt.Errorf("read HEAD commit %s in %q: %w: %w", head.Hash, r.GitDir, ErrCorrupt, err)
		}
		if idx.RootTree == tree {
			return nil, nil
		}
		if headFiles, err = headTreeFiles(r.Storage(), tree); err != nil {
			return nil, fmt.Errorf("%q: %w", r.GitDir, err)
		}
	}
	var out []FileChange
	seen := make(map[string]struct{}, len(idx.Entries))
	for i := range idx.Entries {
		e := &idx.Entries[i]
		if _, dup := seen[e.Name]; dup {
			continue
		}
		seen[e.Name] = struct{}{}
		if e.Stage != 0 {
			out = append(out, FileChange{e.Name, Unmerged})
			continue
		}
		if e.IntentToAdd {
			continue // "git add -N": staged as nothing yet
		}
		h, ok := headFiles[e.Name]
		switch {
		case !ok:
			out = append(out, FileChange{e.Name, Added})
		case h.Hash != e.Hash:
			out = append(out, FileChange{e.Name, Modified})
		case h.Mode != e.Mode:
			if kind(h.Mode) != kind(e.Mode) {
				out = append(out, FileChange{e.Name, TypeChange})
			} else {
				out = append(out, FileChange{e.Name, Modified})
			}
		}
	}
	for p := range headFiles {
		if _, ok := seen[p]; !ok {
			out = append(out, FileChange{p, Deleted})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func kind(m filemode.FileMode) int {
	switch m {
	case filemode.Symlink:
		return 1
	case filemode.Submodule:
		return 2
	default:
		return 0
	}
}

// unstaged compares each tracked file with its index entry, by stat data
// first and content only when needed.
func (r *Repo) unstaged(idx *Index, trustMode bool, cache *StatCache) ([]FileChange, error) {
	var out []FileChange
	indexSec := idx.ModTime.Unix()
	for i := range idx.Entries {
		e := &idx.Entries[i]
		if e.Stage != 0 || e.Mode == filemode.Submodule {
			continue
		}
		p := r.WorkTree + "/" + e.Name
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
				out = append(out, FileChange{e.Name, Deleted})
				continue
			}
			return nil, fmt.Errorf("lstat %q: %w", p, err)
		}
		if e.IntentToAdd {
			out = append(out, FileChange{e.Name, Added})
			continue
		}
		ch, err := compareEntry(p, e, &st, trustMode, indexSec, cache, r.GitDir+"\x00"+e.Name)
		if err != nil {
			return nil, err
		}
		if ch != "" {
			out = append(out, FileChange{e.Name, ch})
		}
	}
	return out, nil
}

func compareEntry(p string, e *IndexEntry, st *syscall.Stat_t, trustMode bool, indexSec int64, cache *StatCache, key string) (string, error) {
	fmtBits := st.Mode & syscall.S_IFMT
	switch {
	case fmtBits == syscall.S_IFDIR:
		return TypeChange, nil
	case e.Mode == filemode.Symlink && fmtBits != syscall.S_IFLNK,
		e.Mode != filemode.Symlink && fmtBits == syscall.S_IFLNK:
		return TypeChange, nil
	case fmtBits != syscall.S_IFREG && fmtBits != syscall.S_IFLNK:
		return TypeChange, nil
	}
	if trustMode && fmtBits == syscall.S_IFREG {
		exec := st.Mode&0o100 != 0
		if exec != (e.Mode == filemode.Executable) {
			return Modified, nil
		}
	}
	if uint32(st.Size) != e.Size && e.Size != 0 {
		return Modified, nil
	}
	statSame := uint32(st.Size) == e.Size &&
		uint32(st.Mtim.Sec) == e.MtimeSec && uint32(st.Mtim.Nsec) == e.MtimeNsec &&
		uint32(st.Ctim.Sec) == e.CtimeSec && uint32(st.Ctim.Nsec) == e.CtimeNsec &&
		uint32(st.Ino) == e.Ino && uint32(st.Dev) == e.Dev &&
		st.Uid == e.UID && st.Gid == e.GID
	racy := indexSec <= st.Mtim.Sec
	if statSame && !racy {
		return "", nil
	}
	h, ok := cache.lookup(key, st)
	if !ok {
		var err error
		if h, err = blobHash(p, fmtBits == syscall.S_IFLNK, st.Size); err != nil {
			return "", err
		}
		cache.store(key, st, h)
	}
	if h != e.Hash {
		return Modified, nil
	}
	return "", nil
}

// blobHash computes the git blob id of a file or symlink.
func blobHash(p string, link bool, size int64) (plumbing.Hash, error) {
	h := sha1.New()
	if link {
		t, err := os.Readlink(p)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("readlink %q: %w", p, err)
		}
		h.Write([]byte("blob " + strconv.Itoa(len(t)) + "\x00" + t))
	} else {
		f, err := os.Open(p)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("read %q: %w", p, err)
		}
		defer f.Close()
		h.Write([]byte("blob " + strconv.FormatInt(size, 10) + "\x00"))
		n, err := io.Copy(h, f)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("read %q: %w", p, err)
		}
		if n != size {
			return plumbing.ZeroHash, fmt.Errorf("read %q: changed while reading", p)
		}
	}
	var out plumbing.Hash
	copy(out[:], h.Sum(nil))
	return out, nil
}

type walker struct {
	root        string
	tracked     map[string]struct{}
	trackedDirs map[string]struct{}
	gitlinks    map[string]struct{}
	exclude     map[string]struct{}
	out         []Untracked
}

// lazyIgnore is whether a tracked directory (or one of its ancestors) is
// ignored, decided only when an untracked entry below it needs to know:
// most trees have none, and matching every directory against every
// pattern was a quarter of a snapshot.
type lazyIgnore struct {
	parent    *lazyIgnore
	check     func() bool
	done, val bool
}

func (l *lazyIgnore) ignored() bool {
	if l == nil {
		return false
	}
	if !l.done {
		l.val, l.done = l.parent.ignored() || l.check(), true
	}
	return l.val
}

func (w *walker) walk(ctx context.Context, rel string, parts []string, patterns []gitignore.Pattern, anc *lazyIgnore) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	abs := w.root
	if rel != "" {
		abs = w.root + "/" + rel
	}
	// Directory order is fine: the result is sorted once at the end.
	ents, err := readDir(abs)
	if err != nil {
		return fmt.Errorf("read directory %q: %w", abs, err)
	}
	for _, de := range ents {
		if de.Name() == ".gitignore" {
			ps, err := readPatterns(abs+"/.gitignore", parts)
			if err != nil {
				return err
			}
			if len(ps) > 0 {
				patterns = append(patterns[:len(patterns):len(patterns)], ps...)
			}
			break
		}
	}
	m := gitignore.NewMatcher(patterns)
	for _, de := range ents {
		name := de.Name()
		if name == ".git" {
			continue
		}
		p := name
		if rel != "" {
			p = rel + "/" + name
		}
		if _, ok := w.gitlinks[p]; ok {
			continue
		}
		childAbs := abs + "/" + name
		if _, ok := w.exclude[childAbs]; ok {
			continue
		}
		if _, ok := w.tracked[p]; ok {
			continue
		}
		cparts := append(parts[:len(parts):len(parts)], name)
		t := de.Type()
		switch {
		case t.IsDir():
			if _, ok := w.trackedDirs[p]; ok {
				// Its tracked files stay tracked even if it is ignored:
				// whether it is matters only to untracked entries in it.
				child := &lazyIgnore{parent: anc, check: func() bool { return m.Match(cparts, true) }}
				if err := w.walk(ctx, p, cparts, patterns, child); err != nil {
					return err
				}
				continue
			}
			if anc.ignored() || m.Match(cparts, true) {
				continue
			}
			if _, err := os.Lstat(childAbs + "/.git"); err == nil {
				w.out = append(w.out, Untracked{Path: p + "/", Type: UntrackedRepository})
				continue
			}
			if err := w.walk(ctx, p, cparts, patterns, anc); err != nil {
				return err
			}
		case t.IsRegular(), t&fs.ModeSymlink != 0:
			if anc.ignored() || m.Match(cparts, false) {
				continue
			}
			u, err := hashUntracked(childAbs, p, t&fs.ModeSymlink != 0)
			if err != nil {
				return err
			}
			w.out = append(w.out, u)
		}
	}
	return nil
}

func hashUntracked(abs, rel string, link bool) (Untracked, error) {
	h := sha256.New()
	u := Untracked{Path: rel, Type: UntrackedFile}
	if link {
		t, err := os.Readlink(abs)
		if err != nil {
			return u, fmt.Errorf("readlink %q: %w", abs, err)
		}
		u.Type = UntrackedSymlink
		u.Size = int64(len(t))
		h.Write([]byte(t))
	} else {
		f, err := os.Open(abs)
		if err != nil {
			return u, fmt.Errorf("read %q: %w", abs, err)
		}
		defer f.Close()
		n, err := io.Copy(h, f)
		if err != nil {
			return u, fmt.Errorf("read %q: %w", abs, err)
		}
		u.Size = n
	}
	u.SHA256 = hex.EncodeToString(h.Sum(nil))
	return u, nil
}

// IgnoreFile is an ignore file read at most once, when a status first
// needs it, however many repositories share it.
type IgnoreFile struct {
	path string
	once sync.Once
	ps   []gitignore.Pattern
	err  error
}

// NewIgnoreFile names an ignore file; a missing file has no patterns.
func NewIgnoreFile(path string) *IgnoreFile { return &IgnoreFile{path: path} }

func (f *IgnoreFile) patterns() ([]gitignore.Pattern, error) {
	f.once.Do(func() { f.ps, f.err = readPatterns(f.path, nil) })
	return f.ps, f.err
}

// readPatterns reads an ignore file; a missing file has no patterns.
func readPatterns(p string, domain []string) ([]gitignore.Pattern, error) {
	b, err := readFile(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read ignore rules %q: %w", p, err)
	}
	var ps []gitignore.Pattern
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" || line[0] == '#' || strings.TrimSpace(line) == "" {
			continue
		}
		ps = append(ps, gitignore.ParsePattern(line, domain))
	}
	return ps, nil
}
