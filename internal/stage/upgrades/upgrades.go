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
	// Problems groups the repositories that could not be checked by
	// cause (no SSH credentials, a host that does not resolve, ...), each
	// with the fix, so one cause is said once.
	Problems []Problem `json:"problems"`
}

// Problem is one cause that kept remotes from being checked.
type Problem struct {
	Kind  string   `json:"kind"`
	Cause string   `json:"cause"`
	Hint  string   `json:"hint,omitempty"`
	Repos []string `json:"repos"`
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
	// URL is the remote queried: where git fetches the submodule from
	// (its own remote, else the superproject's submodule.<name>.url, else
	// .gitmodules), after git's and lambda-check's insteadOf rules.
	URL string `json:"url"`
	// URLFrom says which of those settings the URL came from.
	URLFrom    string `json:"urlFrom,omitempty"`
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
	// Nested counts submodules inside submodules: their parent repository
	// pins them, so they are not checked here.
	Nested int `json:"nested"`
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
	// Git is the user's git configuration (system and global layers),
	// whose insteadOf rules apply as git applies them; nil: none.
	Git *gitrepo.GitConfig
	// SSH authenticates ssh remotes; nil: go-git's defaults.
	SSH *gitrepo.SSH
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

type gitRemote struct{ ssh *gitrepo.SSH }

func (g gitRemote) LsRemote(ctx context.Context, url string) (*gitrepo.RemoteRefs, error) {
	return gitrepo.LsRemote(ctx, url, g.ssh)
}

func (g gitRemote) Fetch(ctx context.Context, s *gitrepo.Repo, url, branch string, haves map[string]plumbing.Hash) (plumbing.Hash, error) {
	return s.Fetch(ctx, url, branch, haves, g.ssh)
}

// Run checks every submodule.
func Run(ctx context.Context, req Request) (*Result, error) {
	snap := req.Snapshot
	if req.Parallelism <= 0 {
		req.Parallelism = 64
	}
	if req.network == nil {
		req.network = gitRemote{ssh: req.SSH}
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
	super, err := gitrepo.Open(snap.Root)
	if err != nil {
		return nil, err
	}
	// Submodules of submodules are their parent repository's to pin.
	var top []*workspace.Submodule
	nested := 0
	for i := range snap.Submodules {
		if snap.Submodules[i].Parent != "" {
			nested++
			continue
		}
		top = append(top, &snap.Submodules[i])
	}
	out := Upgrades{Offline: req.Offline, Repos: make([]Repo, len(top)), Problems: []Problem{},
		Base: BaseState{Head: snap.Superproject.Head, FlakeLock: snap.FlakeLock.Digest}}
	var mu sync.Mutex
	done := 0
	sem := make(chan struct{}, req.Parallelism)
	var wg sync.WaitGroup
	for i, m := range top {
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
				online(rctx, req, super, m, r)
				cancel()
			}
			if req.Progress != nil {
				mu.Lock()
				done++
				req.Progress(done, len(top))
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
	out.Summary.Nested = nested
	out.Problems = problems(out.Repos)
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

// remoteFailed records a remote that could not be queried.
func remoteFailed(r *Repo, err error) {
	unknown(r, "%s", reason(err))
}

// missingPin starts the reason of a pin absent from its repository.
const missingPin = "missing objects: the pin "

// causeOf is what an unknown relation's reason shares with others of the
// same cause: its kind, and the message without the repository's URL and
// revisions.
func causeOf(r *Repo) (kind, cause string) {
	if strings.HasPrefix(r.Reason, missingPin) && strings.HasSuffix(r.Reason, " is not in the local repository") {
		return kindMissingPin, "missing objects: the pin (the gitlink's commit) is not in the local repository"
	}
	k, msg, ok := strings.Cut(r.Reason, ": ")
	switch k {
	case gitrepo.RemoteUnreachable, gitrepo.RemoteTimeout, gitrepo.RemoteAuth, gitrepo.RemoteNotFound, gitrepo.RemoteEmpty, gitrepo.RemoteOther:
	default:
		ok = false
	}
	if !ok {
		return "", r.Reason
	}
	if r.URL != "" {
		msg = strings.ReplaceAll(msg, r.URL, "<url>")
	}
	return k, msg
}

// problems groups the repositories that could not be checked by cause.
func problems(repos []Repo) []Problem {
	out := []Problem{}
	at := map[string]int{}
	for _, r := range repos {
		if r.Relation != Unknown {
			continue
		}
		kind, cause := causeOf(&r)
		k := kind + "\x00" + cause
		i, ok := at[k]
		if !ok {
			i = len(out)
			at[k] = i
			out = append(out, Problem{Kind: kind, Cause: cause, Hint: hintFor(kind, cause), Repos: []string{}})
		}
		out[i].Repos = append(out[i].Repos, r.Path)
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].Repos) > len(out[j].Repos) })
	return out
}

// kindMissingPin groups pins absent from their repositories.
const kindMissingPin = "missing-pin"

func hintFor(kind, cause string) string {
	switch {
	case kind == kindMissingPin:
		return "fetch it: git submodule update --init PATH; if the remote no longer has it (force-pushed, or never pushed), the gitlink names a commit that is gone: move it to one the remote has"
	case cause == gitrepo.ErrNoSSHCredentials.Error():
		return "start an SSH agent with a key (ssh-agent; ssh-add), or give this user an identity file; for public repositories over https instead: git config --global url.https://github.com/.insteadOf git@github.com: (or upgrades.insteadOf in lambda-check's config)"
	case cause == gitrepo.ErrNoKnownHosts.Error():
		return "record the server's host key (ssh-keyscan HOST >> ~/.ssh/known_hosts, after checking it) or point SSH_KNOWN_HOSTS at a known_hosts file"
	case strings.Contains(cause, "no such host"), strings.Contains(cause, "server misbehaving"), strings.Contains(cause, "Temporary failure in name resolution"):
		return "the host name does not resolve: check DNS and the network, or run with --offline to compare with what was last fetched"
	case kind == gitrepo.RemoteUnreachable || kind == gitrepo.RemoteTimeout:
		return "the remote did not answer: check the network (or raise upgrades.timeout), or run with --offline to compare with what was last fetched"
	case kind == gitrepo.RemoteAuth:
		return "the remote refused the credentials: check the key or token this user has for it"
	case kind == gitrepo.RemoteNotFound:
		return "check the URL: git config submodule.<name>.url in the workspace, or remote.origin.url in the submodule"
	}
	return ""
}

func online(ctx context.Context, req Request, super *gitrepo.Repo, m *workspace.Submodule, r *Repo) {
	if m.Gitlink == "" {
		unknown(r, "no gitlink: nothing is pinned")
		return
	}
	root := super.WorkTree
	remote, err := gitrepo.SubmoduleRemote(req.Git, super, m.Name, m.Path, m.URL, req.InsteadOf)
	if err != nil {
		unknown(r, "%v", err)
		return
	}
	r.URL, r.URLFrom = remote.URL, remote.From
	var refs *gitrepo.RemoteRefs
	if err := retry(ctx, req.Retries, func() error {
		var err error
		refs, err = req.network.LsRemote(ctx, r.URL)
		return err
	}); err != nil {
		remoteFailed(r, err)
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
	if store.HasCommit(head) {
		// Already here (fetched before, or in the submodule, which the
		// store borrows from): nothing to transfer.
		relate(store, pin, head, r)
		return
	}
	var fetched plumbing.Hash
	if err := retry(ctx, req.Retries, func() error {
		var err error
		fetched, err = req.network.Fetch(ctx, store, r.URL, r.Branch, map[string]plumbing.Hash{"pin": pin})
		return err
	}); err != nil {
		remoteFailed(r, err)
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
		unknown(r, missingPin+"%s is not in the local repository", short(pin.String()))
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
