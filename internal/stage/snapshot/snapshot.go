// Package snapshot is the snapshot stage: it captures a workspace's exact
// state (superproject HEAD and changes, every submodule's pins, checkout and
// changes, flake digests) in-process and in parallel, failing closed on any
// git error.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// Request is what the snapshot stage needs.
type Request struct {
	// Workspace is the superproject's work tree.
	Workspace string
	// Exclude lists absolute paths never walked (the state directory).
	Exclude []string
	// UserExcludesFile is the user's global git ignore file, if any.
	UserExcludesFile string
	// Parallelism bounds how many submodules are read at once (>= 1).
	Parallelism int
	// StatCache is the file (in the state directory) that remembers the
	// content of files whose stat data no longer matches their index, so
	// they are hashed once, not at every snapshot; "" for none.
	StatCache string
}

// Result is the captured snapshot.
type Result struct {
	Snapshot workspace.Snapshot
}

// Run captures the workspace.
func Run(ctx context.Context, req Request) (*Result, error) {
	root, err := filepath.Abs(req.Workspace)
	if err != nil {
		return nil, err
	}
	repo, err := openWorkspace(root)
	if err != nil {
		return nil, err
	}
	opts := gitrepo.StatusOptions{Exclude: req.Exclude}
	if req.UserExcludesFile != "" {
		opts.UserExcludes = gitrepo.NewIgnoreFile(req.UserExcludesFile)
	}
	if req.StatCache != "" {
		opts.StatCache = gitrepo.LoadStatCache(req.StatCache)
	}
	st, err := repo.Status(ctx, opts)
	if err != nil {
		return nil, classify(fmt.Errorf("status of workspace %q: %w", req.Workspace, err))
	}
	snap := workspace.Snapshot{
		Root: root,
		Superproject: workspace.Superproject{
			Head:    hashString(st.Head.Hash),
			Branch:  st.Head.Branch,
			Changes: changes(st),
		},
	}
	for _, f := range []struct {
		name string
		dst  *workspace.FileDigest
	}{{"flake.nix", &snap.FlakeNix}, {"flake.lock", &snap.FlakeLock}} {
		f.dst.Path = f.name
		d, err := artifact.DigestFile(filepath.Join(root, f.name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("digest %s: %w", f.name, err)
		default:
			f.dst.Digest = d
		}
	}
	c := collector{opts: opts, root: root}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(req.Parallelism, 1))
	if err := c.submodules(gctx, g, root, "", st); err != nil {
		return nil, classify(err)
	}
	if err := g.Wait(); err != nil {
		return nil, classify(err)
	}
	snap.Submodules = c.out
	sort.Slice(snap.Submodules, func(i, j int) bool { return snap.Submodules[i].Path < snap.Submodules[j].Path })
	snap.Count()
	if opts.StatCache != nil {
		// Only an optimisation: a cache that cannot be written is no error.
		_ = opts.StatCache.Save(req.StatCache)
	}
	return &Result{Snapshot: snap}, nil
}

func classify(err error) error {
	if errors.Is(err, gitrepo.ErrNotRepository) {
		return exitcode.Input(err, "a workspace is the root of a git superproject (the directory holding .git and .gitmodules)")
	}
	if errors.Is(err, gitrepo.ErrCorrupt) {
		return exitcode.Input(err, "git fsck or git status in that repository shows what is wrong")
	}
	return err
}

type collector struct {
	opts gitrepo.StatusOptions
	// root is the workspace; dirs remembers which of its directories on
	// the way to submodules were checked to be no symbolic link.
	root string
	dirs sync.Map
	mu   sync.Mutex
	out  []workspace.Submodule
}

func (c *collector) add(m workspace.Submodule) {
	c.mu.Lock()
	c.out = append(c.out, m)
	c.mu.Unlock()
}

// submodules schedules the submodules of the repository at dir (whose
// status is st) on g; prefix is dir's path relative to the workspace.
func (c *collector) submodules(ctx context.Context, g *errgroup.Group, dir, prefix string, st *gitrepo.Status) error {
	decl, err := gitrepo.ReadGitmodules(dir)
	if err != nil {
		return err
	}
	links := map[string]gitrepo.Gitlink{}
	for _, l := range st.Gitlinks {
		links[l.Path] = l
	}
	type job struct {
		m    workspace.Submodule
		link bool
	}
	var jobs []job
	for _, d := range decl {
		j := job{m: workspace.Submodule{Name: d.Name, Path: d.Path, URL: d.URL, Branch: d.Branch, Declared: true}}
		if l, ok := links[d.Path]; ok {
			j.m.Gitlink = l.Hash.String()
			j.link = true
			delete(links, d.Path)
		}
		jobs = append(jobs, j)
	}
	for _, l := range st.Gitlinks {
		if _, ok := links[l.Path]; ok {
			jobs = append(jobs, job{m: workspace.Submodule{Name: l.Path, Path: l.Path, Gitlink: l.Hash.String()}, link: true})
		}
	}
	for _, j := range jobs {
		m := j.m
		m.Changes = emptyChanges()
		m.Parent = prefix
		if prefix != "" {
			m.Path = path.Join(prefix, m.Path)
		}
		abs := filepath.Join(dir, filepath.FromSlash(j.m.Path))
		if !j.link {
			m.State, m.Reason = workspace.StateMissing, "declared in .gitmodules but no gitlink in the index"
			c.add(m)
			continue
		}
		g.Go(func() error {
			sub, err := c.one(ctx, abs, &m)
			if err != nil {
				return fmt.Errorf("submodule %q: %w", m.Path, err)
			}
			c.add(m)
			if sub != nil && len(sub.Gitlinks) > 0 {
				// Nested submodules run inside this goroutine's slot; they are rare.
				ng := new(errgroup.Group)
				if err := c.submodules(ctx, ng, abs, m.Path, sub); err != nil {
					return err
				}
				return ng.Wait()
			}
			return nil
		})
	}
	return nil
}

// one fills in m from the checkout at abs and returns its status, or nil
// when there is no checkout.
func (c *collector) one(ctx context.Context, abs string, m *workspace.Submodule) (*gitrepo.Status, error) {
	fi, err := os.Lstat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		m.State, m.Reason = workspace.StateMissing, "the submodule's directory does not exist"
		return nil, nil
	case err != nil:
		return nil, err
	case fi.Mode()&fs.ModeSymlink != 0:
		// git records a typechange: whatever the link points at is not the
		// submodule, and nothing reads or writes through it.
		to, _ := os.Readlink(abs)
		m.State, m.Reason = workspace.StateMissing, fmt.Sprintf("the submodule's path is a symbolic link (to %s), not its checkout", to)
		return nil, nil
	case !fi.IsDir():
		m.State, m.Reason = workspace.StateMissing, "the submodule's path is not a directory"
		return nil, nil
	}
	if link := c.linkOnTheWay(abs); link != "" {
		m.State, m.Reason = workspace.StateMissing, fmt.Sprintf("the submodule's path leads through a symbolic link (%s): not read", link)
		return nil, nil
	}
	repo, err := gitrepo.Open(abs)
	if errors.Is(err, gitrepo.ErrNotRepository) {
		m.State, m.Reason = workspace.StateUninitialized, "the directory holds no checkout (git submodule update --init)"
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	st, err := repo.Status(ctx, c.opts)
	if err != nil {
		return nil, err
	}
	m.Head = hashString(st.Head.Hash)
	m.HeadBranch = st.Head.Branch
	m.Changes = changes(st)
	switch {
	case m.Head != m.Gitlink:
		m.State = workspace.StateCheckoutDiffers
	case !m.Changes.Empty():
		m.State = workspace.StateDirty
	default:
		m.State = workspace.StateClean
	}
	return st, nil
}

func emptyChanges() workspace.Changes {
	return workspace.Changes{Staged: []workspace.FileChange{}, Unstaged: []workspace.FileChange{}, Untracked: []workspace.Untracked{}}
}

func changes(st *gitrepo.Status) workspace.Changes {
	c := emptyChanges()
	for _, f := range st.Staged {
		f.Path = workspace.RecordedPath(f.Path)
		c.Staged = append(c.Staged, workspace.FileChange(f))
	}
	for _, f := range st.Unstaged {
		f.Path = workspace.RecordedPath(f.Path)
		c.Unstaged = append(c.Unstaged, workspace.FileChange(f))
	}
	for _, u := range st.Untracked {
		u.Path = workspace.RecordedPath(u.Path)
		c.Untracked = append(c.Untracked, workspace.Untracked(u))
	}
	return c
}

func hashString(h interface {
	IsZero() bool
	String() string
}) string {
	if h.IsZero() {
		return ""
	}
	return h.String()
}

// CheckWorkspace reports, as bad input, a workspace directory that does not
// exist or is not a git work tree. It reads nothing else.
func CheckWorkspace(dir string) error {
	_, err := openWorkspace(dir)
	return err
}

func openWorkspace(dir string) (*gitrepo.Repo, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, exitcode.Input(fmt.Errorf("workspace %q does not exist", dir), "pass the superproject's directory with --workspace")
	case err != nil:
		return nil, fmt.Errorf("workspace %q: %w", dir, err)
	case !fi.IsDir():
		return nil, exitcode.Input(fmt.Errorf("workspace %q is not a directory", dir), "pass the superproject's directory with --workspace")
	}
	repo, err := gitrepo.Open(dir)
	if errors.Is(err, gitrepo.ErrNotRepository) && !exists(filepath.Join(dir, ".git")) {
		return nil, classify(fmt.Errorf("workspace %q is %w (no .git in it)", dir, gitrepo.ErrNotRepository))
	}
	if err != nil {
		return nil, classify(fmt.Errorf("workspace %q: %w", dir, err))
	}
	return repo, nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// linkOnTheWay names a directory between the workspace and abs that is a
// symbolic link (and so could lead anywhere), or "".
func (c *collector) linkOnTheWay(abs string) string {
	rel, err := filepath.Rel(c.root, filepath.Dir(abs))
	if err != nil || rel == "." {
		return ""
	}
	p := c.root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		if ok, seen := c.dirs.Load(p); seen {
			if !ok.(bool) {
				return p
			}
			continue
		}
		fi, err := os.Lstat(p)
		ok := err == nil && fi.Mode()&fs.ModeSymlink == 0
		c.dirs.Store(p, ok)
		if !ok {
			return p
		}
	}
	return ""
}
