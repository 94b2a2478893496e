package gitrepo

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"
)

// Remote error kinds: why a remote could not be queried.
const (
	RemoteUnreachable = "unreachable" // network: refused, reset, no route, DNS
	RemoteTimeout     = "timeout"
	RemoteAuth        = "auth" // credentials missing or refused
	RemoteNotFound    = "not-found"
	RemoteEmpty       = "empty"
	RemoteOther       = "error"
)

// RemoteError is a failed remote operation, classified.
type RemoteError struct {
	Kind string
	URL  string
	Err  error
}

func (e *RemoteError) Error() string { return fmt.Sprintf("remote %s: %s: %v", e.URL, e.Kind, e.Err) }
func (e *RemoteError) Unwrap() error { return e.Err }

// Transient reports whether trying again may succeed.
func (e *RemoteError) Transient() bool {
	return e.Kind == RemoteUnreachable || e.Kind == RemoteTimeout
}

func classifyRemote(ctx context.Context, url string, err error) error {
	if err == nil {
		return nil
	}
	kind := RemoteOther
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	msg := err.Error()
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		kind = RemoteTimeout
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed),
		errors.Is(err, transport.ErrInvalidAuthMethod), strings.Contains(msg, "ssh: handshake failed"),
		strings.Contains(msg, "SSH_AUTH_SOCK"), strings.Contains(msg, "unable to authenticate"):
		kind = RemoteAuth
	case errors.Is(err, transport.ErrRepositoryNotFound), strings.Contains(msg, "does not appear to be a git repository"):
		kind = RemoteNotFound
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		kind = RemoteEmpty
	case errors.As(err, &ne) && ne.Timeout():
		kind = RemoteTimeout
	case errors.As(err, &oe), errors.As(err, &de), strings.Contains(msg, "connection refused"),
		strings.Contains(msg, "connection reset"), strings.Contains(msg, "no route to host"):
		kind = RemoteUnreachable
	}
	return &RemoteError{Kind: kind, URL: url, Err: err}
}

// RemoteRefs is what a remote advertises.
type RemoteRefs struct {
	// HeadBranch is the branch the remote's HEAD names ("" when the
	// remote does not say, and no single branch has HEAD's commit).
	HeadBranch string
	// Branches maps branch names to their commits.
	Branches map[string]plumbing.Hash
}

// LsRemote lists a remote's branches and the branch its HEAD names (git
// ls-remote), through the git protocol of the URL (file, git, http(s),
// ssh); ssh authenticates ssh remotes (nil: go-git's defaults).
func LsRemote(ctx context.Context, url string, ssh *SSH) (*RemoteRefs, error) {
	boundHTTP()
	auth, err := ssh.auth(url)
	if err != nil {
		return nil, &RemoteError{Kind: RemoteAuth, URL: url, Err: err}
	}
	// git:// and ssh:// are read here, bounded; the others by go-git
	// (http(s) bounded by boundHTTP, file:// a local repository).
	refs, err := advertise(ctx, url, auth)
	if err == nil && refs == nil {
		rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{url}})
		refs, err = rem.ListContext(ctx, &git.ListOptions{Auth: auth})
	}
	if err != nil {
		return nil, classifyRemote(ctx, url, err)
	}
	out := &RemoteRefs{Branches: map[string]plumbing.Hash{}}
	var head *plumbing.Reference
	for _, r := range refs {
		switch {
		case r.Name() == plumbing.HEAD:
			head = r
		case r.Name().IsBranch() && r.Type() == plumbing.HashReference:
			out.Branches[r.Name().Short()] = r.Hash()
		}
	}
	if head != nil {
		if head.Type() == plumbing.SymbolicReference && head.Target().IsBranch() {
			out.HeadBranch = head.Target().Short()
		} else {
			var same []string
			for b, h := range out.Branches {
				if h == head.Hash() {
					same = append(same, b)
				}
			}
			if len(same) == 1 {
				out.HeadBranch = same[0]
			}
		}
	}
	return out, nil
}

// OpenStore opens (creating it if needed) a bare repository lambda-check
// keeps for a remote: it borrows every object of the given repositories
// through alternates (followed transitively, as git does and go-git does
// not), so a fetch into it transfers only what they lack.
func OpenStore(dir string, borrow ...*Repo) (*Repo, error) {
	var alts []string
	seen := map[string]bool{}
	var add func(objects string, depth int) error
	add = func(objects string, depth int) error {
		objects = filepath.Clean(objects)
		if seen[objects] || depth > 5 {
			return nil
		}
		seen[objects] = true
		alts = append(alts, objects)
		f, err := os.Open(filepath.Join(objects, "info", "alternates"))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			p := strings.TrimSpace(sc.Text())
			if p == "" || strings.HasPrefix(p, "#") {
				continue
			}
			if !filepath.IsAbs(p) {
				p = filepath.Join(objects, p)
			}
			if err := add(p, depth+1); err != nil {
				return err
			}
		}
		return sc.Err()
	}
	for _, r := range borrow {
		if err := add(filepath.Join(r.GitDir, "objects"), 0); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err == nil {
		// Keep the alternates current: a submodule's git dir may move.
		var b strings.Builder
		for _, a := range alts {
			b.WriteString(a + "\n")
		}
		if err := writeFileAtomic(filepath.Join(dir, "objects", "info", "alternates"), []byte(b.String())); err != nil {
			return nil, err
		}
		return OpenBare(dir)
	}
	return Init(dir, InitOptions{Alternates: alts})
}

// Fetch fetches branch from url into the store and returns the commit it
// points at. haves are commits the store already has (through its
// alternates) that the remote is told about, so it sends only the
// difference; they are kept as refs/lambda-check/have/<name>.
func (r *Repo) Fetch(ctx context.Context, url, branch string, haves map[string]plumbing.Hash, ssh *SSH) (plumbing.Hash, error) {
	boundHTTP()
	auth, err := ssh.auth(url)
	if err != nil {
		return plumbing.ZeroHash, &RemoteError{Kind: RemoteAuth, URL: url, Err: err}
	}
	for name, h := range haves {
		if !r.HasCommit(h) {
			continue
		}
		if err := r.SetRef("refs/lambda-check/have/"+name, h); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	dst := plumbing.ReferenceName("refs/remotes/origin/" + branch)
	rem := git.NewRemote(r.Storage(), &config.RemoteConfig{Name: "origin", URLs: []string{url}})
	err = rem.FetchContext(ctx, &git.FetchOptions{
		Auth:     auth,
		RefSpecs: []config.RefSpec{config.RefSpec("+refs/heads/" + branch + ":" + dst.String())},
		Tags:     git.NoTags,
		Force:    true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return plumbing.ZeroHash, classifyRemote(ctx, url, err)
	}
	ref, err := r.Storage().Reference(dst)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("fetch %s from %s: %w", branch, url, err)
	}
	return ref.Hash(), nil
}

// ResolveRef returns the commit a ref (a full name) points at.
func (r *Repo) ResolveRef(name string) (plumbing.Hash, error) {
	s, err := r.readRef(name)
	for i := 0; err == nil && strings.HasPrefix(s, "ref: ") && i < 5; i++ {
		s, err = r.readRef(strings.TrimPrefix(s, "ref: "))
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if s == "" {
		return plumbing.ZeroHash, fmt.Errorf("ref %s: %w", name, plumbing.ErrReferenceNotFound)
	}
	return plumbing.NewHash(s), nil
}

// Compare counts the commits reachable from a but not b, and from b but not
// a (git rev-list --left-right --count a...b).
func (r *Repo) Compare(a, b plumbing.Hash) (onlyA, onlyB int, err error) {
	w, err := r.sides(a, b)
	if err != nil {
		return 0, 0, err
	}
	for _, f := range w.flags {
		switch f {
		case sideA:
			onlyA++
		case sideB:
			onlyB++
		}
	}
	return onlyA, onlyB, nil
}

const (
	sideA = 1 << iota
	sideB
	sideBoth = sideA | sideB
)

// walked is what a two-sided history walk saw: each commit's sides and the
// commits read.
type walked struct {
	flags   map[plumbing.Hash]uint8
	commits map[plumbing.Hash]*commitData
}

// slop is how many commits past the point where only common history is
// left the walk goes on, against committer clocks that went backwards
// (git's rev-list uses the same margin).
const slop = 5

// sides walks the histories of a and b newest first (by committer time),
// marking each commit with the sides it is reachable from, and stops once
// only commits reachable from both are left (plus slop): the history
// behind the merge base is never read, as git rev-list a...b does.
func (r *Repo) sides(a, b plumbing.Hash) (*walked, error) {
	w := &walked{flags: map[plumbing.Hash]uint8{}, commits: map[plumbing.Hash]*commitData{}}
	get := func(h plumbing.Hash) (*commitData, error) {
		if c, ok := w.commits[h]; ok {
			return c, nil
		}
		c, err := r.readCommit(h)
		if err != nil {
			return nil, err
		}
		w.commits[h] = c
		return c, nil
	}
	q := &commitQueue{}
	push := func(h plumbing.Hash, f uint8) error {
		old := w.flags[h]
		if old|f == old {
			return nil
		}
		w.flags[h] = old | f
		c, err := get(h)
		if err != nil {
			return err
		}
		heap.Push(q, queued{h, c.Time, w})
		return nil
	}
	if err := push(a, sideA); err != nil {
		return nil, err
	}
	if err := push(b, sideB); err != nil {
		return nil, err
	}
	left := slop
	for q.Len() > 0 {
		if q.allBoth() {
			if left == 0 {
				break
			}
			left--
		}
		it := heap.Pop(q).(queued)
		c := w.commits[it.h]
		for _, p := range c.Parents {
			if err := push(p, w.flags[it.h]); err != nil {
				return nil, err
			}
		}
	}
	return w, nil
}

type queued struct {
	h    plumbing.Hash
	time int64
	w    *walked
}

// commitQueue is a max-heap of commits by committer time (ties by id, so
// the walk is the same every time).
type commitQueue []queued

func (q commitQueue) Len() int { return len(q) }
func (q commitQueue) Less(i, j int) bool {
	if q[i].time != q[j].time {
		return q[i].time > q[j].time
	}
	return bytes.Compare(q[i].h[:], q[j].h[:]) < 0
}
func (q commitQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *commitQueue) Push(x any)   { *q = append(*q, x.(queued)) }
func (q *commitQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}

func (q commitQueue) allBoth() bool {
	for _, it := range q {
		if it.w.flags[it.h] != sideBoth {
			return false
		}
	}
	return true
}

// Log returns the commits reachable from to but not from from, newest
// first (by committer time, then id), as git log from..to lists them.
func (r *Repo) Log(from, to plumbing.Hash) ([]CommitSummary, error) {
	w, err := r.sides(from, to)
	if err != nil {
		return nil, err
	}
	var out []CommitSummary
	for h, f := range w.flags {
		if f != sideB {
			continue
		}
		c := w.commits[h]
		out = append(out, CommitSummary{Hash: h.String(), Author: c.Author, Time: c.Time, Subject: c.Subject})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Time != out[j].Time {
			return out[i].Time > out[j].Time
		}
		return out[i].Hash < out[j].Hash
	})
	return out, nil
}

// CommitSummary is one line of a log.
type CommitSummary struct {
	Hash    string `json:"hash"`
	Author  string `json:"author"`
	Time    int64  `json:"time"`
	Subject string `json:"subject"`
}

// ResolveSymbolic returns the target of a symbolic ref file ("ref: X").
func (r *Repo) ResolveSymbolic(name string) (string, error) {
	s, err := r.readRef(name)
	if err != nil {
		return "", err
	}
	t, ok := strings.CutPrefix(s, "ref: ")
	if !ok {
		return "", fmt.Errorf("ref %s is not symbolic", name)
	}
	return t, nil
}
