package governance

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/flake"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// ApplyRequest applies one approved proposal.
type ApplyRequest struct {
	Env
	ID string
	// NoCommit stages the change (index and work tree) without committing.
	NoCommit bool
	// Committer commits; the author is the proposal's (lambda-check).
	Committer gitrepo.Signature
	// Where the new revision is fetched from when the submodule lacks it:
	// the remote git would fetch from (Git: the user's git configuration;
	// InsteadOf: upgrades.insteadOf, applied after git's rules), reached
	// with SSH's credentials.
	Git       *gitrepo.GitConfig
	SSH       *gitrepo.SSH
	InsteadOf map[string]string

	// Journal is where the apply saves what it changes before its first
	// change (see Recover); "" keeps no journal.
	Journal string

	failAt  string // tests: fail after this step
	crashAt string // tests: stop dead after this step, as a kill would
}

// ApplyResult says what apply did.
type ApplyResult struct {
	Applied Applied
	// SkippedHooks are the superproject's commit hooks the in-process
	// commit did not run.
	SkippedHooks []string
}

// ErrNotClean: the workspace is not clean where the proposal touches it.
var ErrNotClean = errors.New("the workspace is not clean where the proposal touches it")

// Apply checks that the proposal is approved, unchanged and still fits the
// workspace, recomputes the change and checks it is exactly the one
// proposed (the same commit id), then moves the submodule's checkout, the
// gitlink and flake.lock, and commits exactly those paths. Any failure
// puts the workspace back as it was.
func Apply(ctx context.Context, req ApplyRequest) (*ApplyResult, error) {
	st, err := EvaluateOne(req.Env, req.ID)
	if err != nil {
		return nil, err
	}
	if st.State == StateApplied && st.Applied != nil {
		where := "in " + st.Applied.Commit
		if st.Applied.Staged {
			where = "staged in the index"
		}
		return &ApplyResult{Applied: *st.Applied}, &Done{What: fmt.Sprintf("%s: already applied %s", req.ID, where)}
	}
	if st.State != StateApproved {
		why := ""
		if st.Why != "" {
			why = " (" + st.Why + ")"
		}
		return nil, transition("proposal %s is %s%s: only an approved proposal is applied", req.ID, st.State, why)
	}
	b, err := LoadBound(req.Proposals, req.ID)
	if err != nil {
		return nil, err
	}
	p := b.Proposal
	snap := req.Snapshot
	moves := p.Moves()
	touched := map[string]bool{"flake.lock": true}
	for _, mv := range moves {
		touched[mv.Submodule] = true
	}
	for _, c := range append(append([]workspace.FileChange{}, snap.Superproject.Staged...), snap.Superproject.Unstaged...) {
		if touched[c.Path] {
			return nil, fmt.Errorf("%w: %s is %s", ErrNotClean, c.Path, c.Change)
		}
	}
	super, err := gitrepo.Open(snap.Root)
	if err != nil {
		return nil, err
	}
	// Each submodule the proposal moves: clean at its old gitlink, with
	// the new revision (fetched from its remote when it lacks it).
	type moving struct {
		propose.Member
		repo     *gitrepo.Repo
		from, to plumbing.Hash
	}
	var subs []moving
	for _, mv := range moves {
		m := snap.Submodule(mv.Submodule)
		if m == nil || m.State != workspace.StateClean || m.Gitlink != mv.From {
			state := "missing"
			if m != nil {
				state = m.State
			}
			return nil, fmt.Errorf("%w: %s is %s", ErrNotClean, mv.Submodule, state)
		}
		sub, err := gitrepo.Open(filepath.Join(snap.Root, filepath.FromSlash(mv.Submodule)))
		if err != nil {
			return nil, err
		}
		to := plumbing.NewHash(mv.To)
		if !sub.HasCommit(to) {
			remote, err := gitrepo.SubmoduleRemote(req.Git, super, m.Name, m.Path, m.URL, req.InsteadOf)
			if err != nil {
				return nil, err
			}
			// The submodule's own refs tell the remote what it has.
			if _, err := sub.Fetch(ctx, remote.URL, mv.Branch, nil, req.SSH); err != nil {
				return nil, fmt.Errorf("fetch %s into %s: %w", mv.To[:12], mv.Submodule, err)
			}
			if !sub.HasCommit(to) {
				return nil, fmt.Errorf("the remote of %s no longer has %s", mv.Submodule, mv.To)
			}
		}
		subs = append(subs, moving{Member: mv, repo: sub, from: plumbing.NewHash(mv.From), to: to})
	}
	head := plumbing.NewHash(p.Base.Head)

	// Recompute the change, and check it is the one approved.
	lockBytes, err := super.ReadFile(head, "flake.lock")
	if err != nil && len(p.Lock) > 0 {
		return nil, err
	}
	if len(p.Lock) > 0 && artifact.Digest(lockBytes) != p.Base.FlakeLock {
		return nil, fmt.Errorf("%w: flake.lock at HEAD is not the proposal's base", ErrNotClean)
	}
	var newLock []byte
	if len(p.Lock) > 0 {
		lock, err := flake.ParseLock(lockBytes)
		if err != nil {
			return nil, err
		}
		for _, mv := range p.Lock {
			n := lock.Nodes[mv.Node]
			if n == nil {
				return nil, fmt.Errorf("flake.lock has no node %q", mv.Node)
			}
			n.Locked = mv.To
		}
		if newLock, err = lock.Marshal(); err != nil {
			return nil, err
		}
	}
	author, err := propose.AuthorFor(p, func(submodule string, rev plumbing.Hash) (gitrepo.CommitInfo, error) {
		for _, s := range subs {
			if s.Submodule == submodule {
				return s.repo.CommitTime(rev)
			}
		}
		return gitrepo.CommitInfo{}, fmt.Errorf("no submodule %s", submodule)
	})
	if err != nil {
		return nil, err
	}
	var edits []gitrepo.Edit
	for _, s := range subs {
		edits = append(edits, gitrepo.Edit{Path: s.Submodule, Mode: filemode.Submodule, Hash: s.to})
	}
	if len(p.Lock) > 0 {
		edits = append(edits, gitrepo.Edit{Path: "flake.lock", Mode: filemode.Regular, Content: newLock})
	}
	ch, err := super.BuildChange(head, edits, author, propose.Message(p))
	if err != nil {
		return nil, err
	}
	if ch.Commit.String() != p.Commit {
		return nil, fmt.Errorf("the change recomputed from the proposal is commit %s, not the proposal's %s: refusing", ch.Commit, p.Commit)
	}
	// Another change landed since the base, elsewhere (List would call the
	// proposal stale otherwise): the same change, recomputed onto HEAD,
	// must touch only the proposal's paths.
	onto := ""
	if cur := snap.Superproject.Head; cur != p.Base.Head {
		head = plumbing.NewHash(cur)
		if ch, newLock, err = rebase(super, head, p, edits, author); err != nil {
			return nil, err
		}
		onto = cur
	}

	// Another git process working in any of the repositories holds its
	// locks: refuse before changing anything.
	refs := []string{"index", "HEAD"}
	if h, err := super.Head(); err == nil && h.Branch != "" {
		refs = append(refs, "refs/heads/"+h.Branch)
	}
	if err := super.Unlocked(refs...); err != nil {
		return nil, err
	}
	for _, s := range subs {
		if err := s.repo.Unlocked("index", "HEAD"); err != nil {
			return nil, err
		}
	}

	// Everything to put back.
	lockPath := filepath.Join(snap.Root, "flake.lock")
	oldLock, err := os.ReadFile(lockPath)
	if err != nil && len(p.Lock) > 0 {
		return nil, err
	}
	oldSuperIndex, err := super.IndexBytes()
	if err != nil {
		return nil, err
	}
	type saved struct{ index, head []byte }
	olds := make([]saved, len(subs))
	for i, s := range subs {
		if olds[i].index, err = s.repo.IndexBytes(); err != nil {
			return nil, err
		}
		if olds[i].head, err = os.ReadFile(filepath.Join(s.repo.GitDir, "HEAD")); err != nil {
			return nil, err
		}
	}
	committed := false
	branchRef := "HEAD"
	if h, err := super.Head(); err == nil && h.Branch != "" {
		branchRef = "refs/heads/" + h.Branch
	}
	// Saved before the first change: a crash from here on is undone by
	// the next lock holder (Recover).
	if req.Journal != "" {
		jr := &journal{Proposal: p.ID, Root: snap.Root, Decisions: req.Decisions, BranchRef: branchRef, Head: head.String(),
			HasLock: len(p.Lock) > 0, FlakeLock: oldLock, Index: oldSuperIndex}
		for i, s := range subs {
			jr.Subs = append(jr.Subs, journalSub{Path: s.Submodule, From: s.From, Index: olds[i].index, HEAD: olds[i].head})
		}
		if err := writeJournal(req.Journal, jr); err != nil {
			return nil, fmt.Errorf("write the apply journal: %w", err)
		}
	}
	rollback := func(cause error) error {
		if errors.Is(cause, errCrashed) {
			return cause // a test's kill: nothing runs after it
		}
		defer func() {
			if req.Journal != "" {
				os.Remove(req.Journal)
			}
		}()
		var errs []string
		if committed {
			if err := super.SetRef(branchRef, head); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if err := super.RestoreIndex(oldSuperIndex); err != nil {
			errs = append(errs, err.Error())
		}
		if len(p.Lock) > 0 {
			if err := artifact.WriteFile(lockPath, oldLock, 0o644); err != nil {
				errs = append(errs, err.Error())
			}
		}
		for i, s := range subs {
			if err := s.repo.Checkout(s.from, true); err != nil {
				errs = append(errs, err.Error())
			}
			if err := s.repo.RestoreIndex(olds[i].index); err != nil {
				errs = append(errs, err.Error())
			}
			if err := artifact.WriteFile(filepath.Join(s.repo.GitDir, "HEAD"), olds[i].head, 0o644); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("apply failed (%v) and putting the workspace back failed too: %s", cause, strings.Join(errs, "; "))
		}
		return fmt.Errorf("apply failed, the workspace is as it was: %w", cause)
	}
	step := func(name string, f func() error) error {
		if err := f(); err != nil {
			return err
		}
		if req.failAt == name {
			return fmt.Errorf("injected failure after %s", name)
		}
		if req.crashAt == name {
			return errCrashed
		}
		return nil
	}
	for _, s := range subs {
		if err := step("checkout", func() error { return s.repo.Checkout(s.to, false) }); err != nil {
			return nil, rollback(err)
		}
	}
	if len(p.Lock) > 0 {
		if err := step("lock", func() error { return artifact.WriteFile(lockPath, newLock, 0o644) }); err != nil {
			return nil, rollback(err)
		}
	}
	err = step("index", func() error {
		if _, err := super.WriteChange(ch); err != nil {
			return err
		}
		var updates []gitrepo.Entry
		for _, s := range subs {
			updates = append(updates, gitrepo.Entry{Path: s.Submodule, Mode: filemode.Submodule, Hash: s.to})
		}
		if len(p.Lock) > 0 {
			updates = append(updates, gitrepo.Entry{Path: "flake.lock", Mode: filemode.Regular, Hash: gitrepo.BlobHash(newLock)})
		}
		return super.UpdateIndex(updates)
	})
	if err != nil {
		return nil, rollback(err)
	}
	res := &ApplyResult{Applied: Applied{Proposal: p.ID, ProposalDigest: b.Digest, Staged: req.NoCommit,
		Time: req.Now.UTC().Format(time.RFC3339), Signers: []string{}, Onto: onto}}
	if !req.NoCommit {
		res.SkippedHooks = super.CommitHooks()
	}
	for _, s := range st.Approvals {
		res.Applied.Signers = append(res.Applied.Signers, s.Key)
	}
	if !req.NoCommit {
		msg := propose.Message(p)
		for _, s := range st.Approvals {
			line := "Approved-by: " + s.Key
			if s.Owner != "" {
				line += " (" + s.Owner + ")"
			}
			msg += line + "\n"
		}
		committer := req.Committer
		committer.When = req.Now
		err = step("commit", func() error {
			c, err := super.CommitTree(ch.Tree, head, author, committer, msg)
			if err != nil {
				return err
			}
			committed = true
			res.Applied.Commit = c.String()
			return nil
		})
		if err != nil {
			return nil, rollback(err)
		}
	}
	err = step("record", func() error {
		b, err := artifact.Encode(res.Applied)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(RecordsFor(req.Decisions, p.ID).Dir, 0o755); err != nil {
			return err
		}
		return artifact.WriteFile(filepath.Join(RecordsFor(req.Decisions, p.ID).Dir, AppliedFile), b, 0o644)
	})
	if err != nil {
		if !errors.Is(err, errCrashed) {
			os.Remove(filepath.Join(RecordsFor(req.Decisions, p.ID).Dir, AppliedFile))
		}
		return nil, rollback(err)
	}
	if req.Journal != "" {
		if err := os.Remove(req.Journal); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("applied, but the journal was not removed: %w", err)
		}
	}
	return res, nil
}

// rebase recomputes a proposal's change onto head: its gitlink edit, and
// the flake.lock nodes it moves set on head's flake.lock, each of which
// must still be locked where the proposal moves it from. The change must
// touch exactly the proposal's paths.
func rebase(super *gitrepo.Repo, head plumbing.Hash, p *propose.Proposal, edits []gitrepo.Edit, author gitrepo.Signature) (*gitrepo.Change, []byte, error) {
	var newLock []byte
	if len(p.Lock) > 0 {
		b, err := super.ReadFile(head, "flake.lock")
		if err != nil {
			return nil, nil, err
		}
		lock, err := flake.ParseLock(b)
		if err != nil {
			return nil, nil, err
		}
		if why := propose.LockMoved(p, lock); why != "" {
			return nil, nil, fmt.Errorf("%w: %s since the proposal's base: propose again", ErrNotClean, why)
		}
		for _, mv := range p.Lock {
			lock.Nodes[mv.Node].Locked = mv.To
		}
		if newLock, err = lock.Marshal(); err != nil {
			return nil, nil, err
		}
		edits = append([]gitrepo.Edit{}, edits...)
		edits[len(edits)-1].Content = newLock
	}
	ch, err := super.BuildChange(head, edits, author, propose.Message(p))
	if err != nil {
		return nil, nil, err
	}
	want := map[string]bool{}
	for _, mv := range p.Moves() {
		want[mv.Submodule] = true
	}
	if len(p.Lock) > 0 {
		want["flake.lock"] = true
	}
	for _, f := range ch.Files {
		if !want[f.Path] {
			return nil, nil, fmt.Errorf("the change onto %s would touch %s, which the proposal does not: refusing", head.String()[:12], f.Path)
		}
	}
	return ch, newLock, nil
}
