package propose

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/flake"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/stage/upgrades"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// Statuses a proposal can be in before governance decides on it. They are
// derived from the proposal and the workspace, never stored.
const (
	StatusPending    = "pending"    // applies to the workspace as it is
	StatusBlocked    = "blocked"    // a deny finding: never approvable
	StatusStale      = "stale"      // what it changes moved: its gitlink or the flake.lock nodes it moves
	StatusSuperseded = "superseded" // another proposal moves the same pin further
)

// Listed is a proposal as found in the proposals directory.
type Listed struct {
	Proposal *Proposal
	Status   string
	// Why says what makes it stale or superseded.
	Why string
	// Problem is set when the directory does not hold a valid proposal.
	Problem string
	Dir     string
}

// ErrNoProposal: no proposal has that id.
var ErrNoProposal = errors.New("no such proposal")

// Load reads and checks one proposal directory: proposal.json decoded
// strictly, the id matching the directory, and every file's digest.
func Load(dir, id string) (*Proposal, error) {
	if !IDPattern().MatchString(id) {
		return nil, fmt.Errorf("%q is not a proposal id (%s)", id, IDPattern())
	}
	pd := filepath.Join(dir, id)
	env, _, err := artifact.Read[Proposal](filepath.Join(pd, ProposalFile), Spec)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoProposal, id)
	}
	if err != nil {
		return nil, err
	}
	p := &env.Payload
	if p.ID != id {
		return nil, fmt.Errorf("proposal %s: proposal.json names id %q", id, p.ID)
	}
	for _, f := range p.Files {
		if filepath.Base(f.Path) != f.Path {
			return nil, fmt.Errorf("proposal %s: file %q is not a plain name", id, f.Path)
		}
		d, err := artifact.DigestFile(filepath.Join(pd, f.Path))
		if err != nil {
			return nil, fmt.Errorf("proposal %s: %w", id, err)
		}
		if d != f.Digest {
			return nil, fmt.Errorf("proposal %s: %s does not match its digest (changed after it was written)", id, f.Path)
		}
	}
	return p, nil
}

// List reads every proposal in dir and derives its status against the
// workspace snapshot; stores is the upgrades stage's store directory (to
// tell which target is newer).
func List(dir string, snap *workspace.Snapshot, stores string) ([]Listed, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Listed
	for _, e := range ents {
		if !e.IsDir() || !IDPattern().MatchString(e.Name()) {
			continue
		}
		l := Listed{Dir: filepath.Join(dir, e.Name())}
		p, err := Load(dir, e.Name())
		if err != nil {
			l.Problem = err.Error()
			l.Proposal = &Proposal{ID: e.Name()}
			out = append(out, l)
			continue
		}
		l.Proposal = p
		out = append(out, l)
	}
	// A proposal is bound to what it changes, not to HEAD: another change
	// landing elsewhere leaves it pending (or approved), and apply moves it
	// onto the new HEAD.
	cur, lockErr := workspace.ReadLock(snap)
	for i := range out {
		l := &out[i]
		if l.Problem != "" {
			continue
		}
		p := l.Proposal
		moved := ""
		if lockErr != nil {
			if p.Base.FlakeLock != snap.FlakeLock.Digest {
				moved = "flake.lock changed"
			}
		} else {
			moved = LockMoved(p, cur)
		}
		gitlink := ""
		for _, mv := range p.Moves() {
			if sub := snap.Submodule(mv.Submodule); sub == nil || sub.Gitlink != mv.From {
				gitlink = "the gitlink moved"
				if p.Kind == KindGroup {
					gitlink = "the gitlink of " + mv.Submodule + " moved"
				}
				break
			}
		}
		switch {
		case gitlink != "":
			l.Status, l.Why = StatusStale, gitlink
		case moved != "":
			l.Status, l.Why = StatusStale, moved
		case !p.Approvable:
			l.Status, l.Why = StatusBlocked, "a deny finding"
		default:
			l.Status = StatusPending
			if p.Base.Head != snap.Superproject.Head {
				l.Why = "the workspace moved elsewhere since its base: it applies onto HEAD"
			}
		}
		if by := supersededBy(p, out, stores); by != "" && l.Status != StatusStale {
			l.Status, l.Why = StatusSuperseded, "by "+by
		}
	}
	// The same change proposed again onto the current HEAD (made anew, by
	// another build or policy) supersedes the older proposals of it.
	atHead := map[string]string{}
	for _, l := range out {
		if l.Problem == "" && l.Status != StatusStale && l.Proposal.Base.Head == snap.Superproject.Head {
			atHead[ChangeKey(l.Proposal)] = l.Proposal.ID
		}
	}
	// A group proposed onto HEAD supersedes its members' singles (after
	// the singles: it wins over a single at HEAD too).
	for _, l := range out {
		if l.Problem == "" && l.Status != StatusStale && l.Proposal.Kind == KindGroup && l.Proposal.Base.Head == snap.Superproject.Head {
			for _, m := range l.Proposal.Members {
				atHead[memberKey(m)] = l.Proposal.ID
			}
		}
	}
	for i := range out {
		l := &out[i]
		if l.Problem != "" || l.Status == StatusStale || l.Status == StatusSuperseded {
			continue
		}
		if by := atHead[ChangeKey(l.Proposal)]; by != "" && by != l.Proposal.ID {
			l.Status, l.Why = StatusSuperseded, "by "+by+" (the same change, proposed onto HEAD)"
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Proposal, out[j].Proposal
		if a.Submodule != b.Submodule {
			return a.Submodule < b.Submodule
		}
		return a.ID < b.ID
	})
	return out, nil
}

// supersededBy names a proposal moving the same pin, from the same base,
// to a descendant of p's target.
func supersededBy(p *Proposal, all []Listed, stores string) string {
	if p.Kind == KindGroup {
		return ""
	}
	var store *gitrepo.Repo
	for _, o := range all {
		q := o.Proposal
		if o.Problem != "" || q.ID == p.ID || q.Submodule != p.Submodule || q.From != p.From || q.To == p.To || q.Kind != p.Kind {
			continue
		}
		if store == nil {
			s, err := gitrepo.OpenBare(filepath.Join(stores, upgrades.StoreName(p.Submodule)))
			if err != nil {
				return ""
			}
			store = s
		}
		onlyP, onlyQ, err := store.Compare(plumbing.NewHash(p.To), plumbing.NewHash(q.To))
		if err == nil && onlyP == 0 && onlyQ > 0 {
			return q.ID
		}
	}
	return ""
}

// Prunable reports whether a listed proposal may be removed: it can never
// be applied (stale: the workspace moved from its base; superseded: another
// proposal moves the same pin further) and nobody decided on it (no record
// in decisions/<id>/). A proposal with decisions stays: they and the
// proposal they are bound to are the record of what was decided.
func Prunable(l Listed, decisions string) bool {
	if l.Proposal == nil || l.Problem != "" {
		return false
	}
	if l.Status != StatusStale && l.Status != StatusSuperseded {
		return false
	}
	_, err := os.Stat(filepath.Join(decisions, l.Proposal.ID))
	return errors.Is(err, fs.ErrNotExist)
}

// Prune removes the prunable proposals and returns their ids. Each goes
// as a whole (renamed aside first, so a kill leaves no half directory).
func Prune(dir, decisions string, ls []Listed) ([]string, error) {
	var removed []string
	for _, l := range ls {
		if !Prunable(l, decisions) {
			continue
		}
		src := filepath.Join(dir, l.Proposal.ID)
		aside, err := os.MkdirTemp(dir, ".tmp-prune-")
		if err != nil {
			return removed, err
		}
		if err := os.Rename(src, filepath.Join(aside, l.Proposal.ID)); err != nil {
			os.Remove(aside)
			return removed, err
		}
		if err := os.RemoveAll(aside); err != nil {
			return removed, err
		}
		removed = append(removed, l.Proposal.ID)
	}
	return removed, nil
}

// LockMoved says how the lock l no longer holds what p moves from (a node
// gone, or locked elsewhere), or "" when every node it moves is as it was.
// A lock without nodes to move (l nil: no flake.lock) never moved.
func LockMoved(p *Proposal, l *flake.Lock) string {
	for _, mv := range p.Lock {
		if l == nil {
			return "flake.lock is gone"
		}
		n := l.Nodes[mv.Node]
		if n == nil {
			return fmt.Sprintf("flake.lock has no node %s any more", mv.Node)
		}
		if !SameAttrs(n.Locked, mv.From) {
			return fmt.Sprintf("flake.lock locks %s elsewhere now", mv.Node)
		}
	}
	return ""
}

// SameAttrs compares locked attributes as JSON values.
func SameAttrs(a, b flake.Attrs) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// ChangeKey names what a proposal changes, whatever its base: its kind,
// submodule, the move of the gitlink and of every flake.lock node. Two
// proposals with the same key make the same change.
func ChangeKey(p *Proposal) string {
	if p.Kind == KindGroup {
		keys := []string{KindGroup}
		for _, m := range p.Members {
			keys = append(keys, memberKey(m))
		}
		return strings.Join(keys, "\x01")
	}
	lock, _ := json.Marshal(p.Lock)
	return strings.Join([]string{p.Kind, p.Submodule, p.From, p.To, string(lock)}, "\x00")
}

// memberKey is the change key of a group member as a single upgrade.
func memberKey(m Member) string {
	lock, _ := json.Marshal(m.Lock)
	return strings.Join([]string{KindUpgrade, m.Submodule, m.From, m.To, string(lock)}, "\x00")
}

// Resolve finds the proposal an operator means by id: the proposal of
// that id, else the one whose id starts with it (ids are long: a unique
// prefix is enough, as with git's commits). Several matches are an error
// that names them.
func Resolve(dir, id string) (string, error) {
	if id == "" || strings.ContainsAny(id, "/\\") || strings.HasPrefix(id, ".") {
		return "", fmt.Errorf("%q is not a proposal id (%s)", id, IDPattern())
	}
	if st, err := os.Stat(filepath.Join(dir, id)); err == nil && st.IsDir() && IDPattern().MatchString(id) {
		return id, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	var match []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), id) && IDPattern().MatchString(e.Name()) {
			match = append(match, e.Name())
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("%w: %s", ErrNoProposal, id)
	case 1:
		return match[0], nil
	}
	sort.Strings(match)
	return "", fmt.Errorf("%q is the start of %d proposal ids (%s): give more of it", id, len(match), strings.Join(match, ", "))
}
