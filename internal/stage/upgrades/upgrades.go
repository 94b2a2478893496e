// Package upgrades is the upgrades stage: for every submodule, the branch it
// tracks, the head of that branch on its remote, and the relation of the
// pin (the gitlink) to it. Only a fast-forward (the pin is an ancestor of
// the head) is an upgrade; a pin ahead of its remote or diverged from it is
// reported, never "upgraded" to an older or unrelated commit.
//
// Remotes are queried through the git protocol of their URL with bounded
// parallelism, a time limit per remote and retries of transient failures.
// What is fetched goes into stores lambda-check keeps in its state
// directory (bare repositories borrowing the submodules' objects), never
// into the workspace. Offline, the submodules' already-fetched
// remote-tracking refs are used instead.
package upgrades

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// Spec identifies the upgrades artifact.
var Spec = artifact.Spec{Kind: artifact.KindPrefix + "upgrades", Version: 1}

// Relations of a pin to its remote's head.
const (
	UpToDate = "up-to-date"
	Behind   = "behind" // a fast-forward: an upgrade
	Ahead    = "ahead"
	Diverged = "diverged"
	Unknown  = "unknown"
)

// Where a tracked branch came from.
const (
	FromGitmodules = "gitmodules"  // the branch in .gitmodules
	FromRemoteHead = "remote-head" // the branch the remote's HEAD names
	FromOriginHead = "origin-head" // offline: the submodule's refs/remotes/origin/HEAD
)

// Upgrades is the payload of upgrades.json.
type Upgrades struct {
	// Offline: remotes were not queried; heads are the submodules'
	// remote-tracking refs as last fetched.
	Offline bool      `json:"offline"`
	Repos   []Repo    `json:"repos"` // sorted by path
	Summary Summary   `json:"summary"`
	Base    BaseState `json:"base"`
}

// BaseState identifies the workspace state the pins were read from.
type BaseState struct {
	Head      string `json:"head"`
	FlakeLock string `json:"flakeLock"`
}

// Repo is one submodule's relation to its remote.
type Repo struct {
	Path string `json:"path"`
	Name string `json:"name"`
	// URL is the remote queried (after insteadOf rewriting).
	URL        string `json:"url"`
	Branch     string `json:"branch"`
	BranchFrom string `json:"branchFrom,omitempty"`
	// Inputs are the workspace's root flake inputs pinning the same
	// repository.
	Inputs []string `json:"inputs"`
	Pin    string   `json:"pin"`
	Head   string   `json:"head"`
	// Relation is up-to-date, behind, ahead, diverged or unknown.
	Relation string `json:"relation"`
	// Behind counts commits of the head the pin lacks; Ahead, commits of
	// the pin the head lacks.
	Behind int    `json:"behind"`
	Ahead  int    `json:"ahead"`
	Reason string `json:"reason,omitempty"`
	// Store is the bare repository (in the state directory) holding the
	// head's objects, relative to the store root; "" offline.
	Store string `json:"store,omitempty"`
}

// IsUpgrade reports whether the repository can move forward.
func (r *Repo) IsUpgrade() bool { return r.Relation == Behind }

// Summary counts repositories per relation.
type Summary struct {
	Repos    int `json:"repos"`
	UpToDate int `json:"upToDate"`
	Behind   int `json:"behind"`
	Ahead    int `json:"ahead"`
	Diverged int `json:"diverged"`
	Unknown  int `json:"unknown"`
}

// Request is what the stage checks.
type Request struct {
	Snapshot *workspace.Snapshot
	// Store is the directory of lambda-check's per-remote stores.
	Store   string
	Offline bool
	// Parallelism bounds remotes queried at once (default 64: the work is
	// waiting on the network, so as many as a workspace has, near enough).
	Parallelism int
	// Timeout bounds each remote, retries included (default 60s).
	Timeout time.Duration
	// Retries of a transient failure (default 2).
	Retries int
	// InsteadOf rewrites URL prefixes, as git's url.<base>.insteadOf:
	// {"git@github.com:": "https://github.com/"} queries public GitHub
	// repositories without SSH keys.
	InsteadOf map[string]string
	// Progress, when set, is called after each repository.
	Progress func(done, total int)

	network remote // nil: the git protocol; tests replace it
}

// Result is the stage's outcome.
type Result struct {
	Upgrades Upgrades
}

// remote is the network side, replaceable in tests.
type remote interface {
	LsRemote(ctx context.Context, url string) (*gitrepo.RemoteRefs, error)
	Fetch(ctx context.Context, store *gitrepo.Repo, url, branch string, haves map[string]plumbing.Hash) (plumbing.Hash, error)
}

type gitRemote struct{}

func (gitRemote) LsRemote(ctx context.Context, url string) (*gitrepo.RemoteRefs, error) {
	return gitrepo.LsRemote(ctx, url)
}

func (gitRemote) Fetch(ctx context.Context, s *gitrepo.Repo, url, branch string, haves map[string]plumbing.Hash) (plumbing.Hash, error) {
	return s.Fetch(ctx, url, branch, haves)
}

// Run checks every submodule.
func Run(ctx context.Context, req Request) (*Result, error) {
	snap := req.Snapshot
	if req.Parallelism <= 0 {
		req.Parallelism = 64
	}
	if req.network == nil {
		req.network = gitRemote{}
	}
	if req.Timeout <= 0 {
		req.Timeout = 60 * time.Second
	}
	if req.Retries < 0 {
		req.Retries = 0
	} else if req.Retries == 0 {
		req.Retries = 2
	}
	lock, err := workspace.ReadLock(snap)
	if err != nil {
		return nil, err
	}
	reg, err := workspace.BuildRegistry(ctx, workspace.RegistryRequest{Snapshot: snap, Lock: lock})
	if err != nil {
		return nil, err
	}
	base := superprojectRemote(snap.Root)
	out := Upgrades{Offline: req.Offline, Repos: make([]Repo, len(snap.Submodules)),
		Base: BaseState{Head: snap.Superproject.Head, FlakeLock: snap.FlakeLock.Digest}}
	var mu sync.Mutex
	done := 0
	sem := make(chan struct{}, req.Parallelism)
	var wg sync.WaitGroup
	for i := range snap.Submodules {
		m := &snap.Submodules[i]
		r := &out.Repos[i]
		*r = Repo{Path: m.Path, Name: m.Name, Branch: m.Branch, Pin: m.Gitlink, Inputs: []string{}}
		if e := reg.Repo(m.Path); e != nil {
			if ins := e.Inputs(); ins != nil {
				r.Inputs = ins
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				r.Relation, r.Reason = Unknown, "cancelled"
				return
			}
			defer func() { <-sem }()
			if req.Offline {
				offline(snap.Root, m, r)
			} else {
				rctx, cancel := context.WithTimeout(ctx, req.Timeout)
				online(rctx, req, snap.Root, base, m, r)
				cancel()
			}
			if req.Progress != nil {
				mu.Lock()
				done++
				req.Progress(done, len(snap.Submodules))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.Slice(out.Repos, func(i, j int) bool { return out.Repos[i].Path < out.Repos[j].Path })
	for _, r := range out.Repos {
		out.Summary.Repos++
		switch r.Relation {
		case UpToDate:
			out.Summary.UpToDate++
		case Behind:
			out.Summary.Behind++
		case Ahead:
			out.Summary.Ahead++
		case Diverged:
			out.Summary.Diverged++
		default:
			out.Summary.Unknown++
		}
	}
	return &Result{Upgrades: out}, nil
}

// StoreName is a submodule's store directory name: readable and unique.
func StoreName(submodulePath string) string {
	sum := sha256.Sum256([]byte(submodulePath))
	base := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, path.Base(submodulePath))
	return base + "-" + hex.EncodeToString(sum[:6]) + ".git"
}

func unknown(r *Repo, format string, a ...any) {
	r.Relation, r.Reason = Unknown, fmt.Sprintf(format, a...)
}

func online(ctx context.Context, req Request, root, base string, m *workspace.Submodule, r *Repo) {
	if m.Gitlink == "" {
		unknown(r, "no gitlink: nothing is pinned")
		return
	}
	url, err := remoteURL(m.URL, base)
	if err != nil {
		unknown(r, "%v", err)
		return
	}
	r.URL = rewrite(url, req.InsteadOf)
	var refs *gitrepo.RemoteRefs
	if err := retry(ctx, req.Retries, func() error {
		var err error
		refs, err = req.network.LsRemote(ctx, r.URL)
		return err
	}); err != nil {
		unknown(r, "%s", reason(err))
		return
	}
	if r.Branch == "" {
		r.Branch, r.BranchFrom = refs.HeadBranch, FromRemoteHead
		if r.Branch == "" {
			unknown(r, "no branch in .gitmodules and the remote's HEAD names no branch")
			return
		}
	} else {
		r.BranchFrom = FromGitmodules
	}
	head, ok := refs.Branches[r.Branch]
	if !ok {
		unknown(r, "the remote has no branch %q", r.Branch)
		return
	}
	r.Head = head.String()
	pin := plumbing.NewHash(m.Gitlink)
	if head == pin {
		r.Relation = UpToDate
		return
	}
	var borrow []*gitrepo.Repo
	if sub, err := gitrepo.Open(filepath.Join(root, filepath.FromSlash(m.Path))); err == nil {
		borrow = append(borrow, sub)
	}
	name := StoreName(m.Path)
	store, err := gitrepo.OpenStore(filepath.Join(req.Store, name), borrow...)
	if err != nil {
		unknown(r, "open store: %v", err)
		return
	}
	r.Store = name
	var fetched plumbing.Hash
	if err := retry(ctx, req.Retries, func() error {
		var err error
		fetched, err = req.network.Fetch(ctx, store, r.URL, r.Branch, map[string]plumbing.Hash{"pin": pin})
		return err
	}); err != nil {
		unknown(r, "%s", reason(err))
		return
	}
	// The branch may have moved between listing and fetching: what was
	// fetched is the head.
	r.Head = fetched.String()
	relate(store, pin, fetched, r)
}

func offline(root string, m *workspace.Submodule, r *Repo) {
	if m.Gitlink == "" {
		unknown(r, "no gitlink: nothing is pinned")
		return
	}
	r.URL = m.URL
	sub, err := gitrepo.Open(filepath.Join(root, filepath.FromSlash(m.Path)))
	if err != nil {
		unknown(r, "offline, and the submodule is not checked out: %v", err)
		return
	}
	if r.Branch == "" {
		h, err := sub.ResolveSymbolic("refs/remotes/origin/HEAD")
		if err != nil || !strings.HasPrefix(h, "refs/remotes/origin/") {
			unknown(r, "offline: no branch in .gitmodules and no refs/remotes/origin/HEAD")
			return
		}
		r.Branch, r.BranchFrom = strings.TrimPrefix(h, "refs/remotes/origin/"), FromOriginHead
	} else {
		r.BranchFrom = FromGitmodules
	}
	head, err := sub.ResolveRef("refs/remotes/origin/" + r.Branch)
	if err != nil {
		unknown(r, "offline: no fetched refs/remotes/origin/%s", r.Branch)
		return
	}
	r.Head = head.String()
	pin := plumbing.NewHash(m.Gitlink)
	if head == pin {
		r.Relation = UpToDate
		return
	}
	relate(sub, pin, head, r)
}

// relate compares pin and head in a repository holding both.
func relate(repo *gitrepo.Repo, pin, head plumbing.Hash, r *Repo) {
	if !repo.HasCommit(pin) {
		unknown(r, "missing objects: the pin %s is not in the local repository", short(pin.String()))
		return
	}
	onlyPin, onlyHead, err := repo.Compare(pin, head)
	if err != nil {
		unknown(r, "missing objects: %v", err)
		return
	}
	r.Ahead, r.Behind = onlyPin, onlyHead
	switch {
	case onlyPin == 0 && onlyHead == 0:
		r.Relation = UpToDate
	case onlyPin == 0:
		r.Relation = Behind
	case onlyHead == 0:
		r.Relation = Ahead
	default:
		r.Relation = Diverged
	}
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// retry runs f up to 1+n times while it fails transiently, backing off.
func retry(ctx context.Context, n int, f func() error) error {
	wait := 200 * time.Millisecond
	for i := 0; ; i++ {
		err := f()
		var re *gitrepo.RemoteError
		if err == nil || i >= n || !errors.As(err, &re) || !re.Transient() {
			return err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
		wait *= 2
	}
}

func reason(err error) string {
	var re *gitrepo.RemoteError
	if errors.As(err, &re) {
		return fmt.Sprintf("%s: %v", re.Kind, re.Err)
	}
	return err.Error()
}

// rewrite applies the longest matching insteadOf prefix.
func rewrite(url string, insteadOf map[string]string) string {
	best := ""
	for from := range insteadOf {
		if strings.HasPrefix(url, from) && len(from) > len(best) {
			best = from
		}
	}
	if best == "" {
		return url
	}
	return insteadOf[best] + strings.TrimPrefix(url, best)
}

// remoteURL resolves a .gitmodules URL; a relative one ("../x.git") is
// relative to the superproject's origin remote, as git resolves it.
func remoteURL(u, base string) (string, error) {
	if !strings.HasPrefix(u, "./") && !strings.HasPrefix(u, "../") {
		return u, nil
	}
	if base == "" {
		return "", fmt.Errorf("url %q is relative and the superproject has no origin remote to resolve it against", u)
	}
	b := strings.TrimSuffix(base, "/")
	for {
		switch {
		case strings.HasPrefix(u, "./"):
			u = u[2:]
		case strings.HasPrefix(u, "../"):
			u = u[3:]
			i := strings.LastIndexAny(b, "/:")
			if i < 0 {
				return "", fmt.Errorf("url %q climbs above %q", u, base)
			}
			b = b[:i]
		default:
			sep := "/"
			if strings.HasSuffix(b, ":") {
				sep = ""
			}
			return b + sep + u, nil
		}
	}
}

// superprojectRemote is the superproject's remote.origin.url, or "".
func superprojectRemote(root string) string {
	r, err := gitrepo.Open(root)
	if err != nil {
		return ""
	}
	cfg, err := r.Config()
	if err != nil {
		return ""
	}
	return cfg.Section("remote").Subsection("origin").Option("url")
}
