// Package propose is the propose stage: each upgrade becomes a proposal, a
// directory with
//
//   - change.patch: a git-format patch that moves the submodule's gitlink
//     and its flake.lock node (rev, narHash, lastModified, revCount, all
//     computed in-process) together, so the two pins never drift;
//   - flake.nix and flake.lock: a flake whose outputs are the workspace's,
//     built with that input at the new revision, for nix build, nix flake
//     check and Hydra (hydraJobs);
//   - proposal.json: what moves where, the base it applies to, the
//     commits it brings, the policy findings the change introduces, and
//     the digest of every other file.
//
// Nothing in the workspace is written: the patch's trees and commit are
// hashed in memory, the new revision's objects come from the upgrades
// stage's stores.
package propose

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/flake"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/stage/plan"
	"github.com/lambda-os/lambda-check/internal/stage/policy"
	"github.com/lambda-os/lambda-check/internal/stage/upgrades"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// Spec identifies a proposal.json.
var Spec = artifact.Spec{Kind: artifact.KindPrefix + "proposal", Version: 1}

// Kinds of proposals.
const (
	KindUpgrade  = "upgrade"
	KindRollback = "rollback"
	// KindGroup: the upgrades of one plan level as one change (opt-in,
	// Request.Group).
	KindGroup = "group"
)

// Files of a proposal directory.
const (
	ProposalFile = "proposal.json"
	PatchFile    = "change.patch"
	FlakeFile    = "flake.nix"
	LockFile     = "flake.lock"
)

// IDPattern is what a proposal id looks like: lower-case letters, digits
// and dashes; never a path. Compiled on first use (the bounded repetition
// makes a large program every command would otherwise pay for at start).
var IDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,127}$`) })

// maxLog bounds the commits listed in a proposal.
const maxLog = 50

// Proposal is the payload of proposal.json.
type Proposal struct {
	ID        string   `json:"id"`
	Kind      string   `json:"kind"`
	Submodule string   `json:"submodule"`
	Inputs    []string `json:"inputs"`
	Branch    string   `json:"branch"`
	From      string   `json:"from"`
	To        string   `json:"to"`
	// Commits counts the commits the change brings; Log lists the newest
	// (at most 50), LogTruncated says when there are more.
	Commits      int                     `json:"commits"`
	Log          []gitrepo.CommitSummary `json:"log"`
	LogTruncated bool                    `json:"logTruncated,omitempty"`
	// Level is the plan level (0: leaves); -1 when no flake input orders it.
	Level int  `json:"level"`
	Base  Base `json:"base"`
	// Lock lists the flake.lock nodes the change moves.
	Lock []LockMove `json:"lock"`
	// Commit is the commit the patch makes on the base (hashed in memory,
	// as git am makes it with the same committer).
	Commit string `json:"commit"`
	// Files are the digests of the other files of the proposal.
	Files []workspace.FileDigest `json:"files"`
	// Build says how to build it.
	Build Build `json:"build"`
	// Findings are the policy findings the change introduces; a deny makes
	// the proposal not approvable.
	Findings   []policy.Finding `json:"findings"`
	Approvable bool             `json:"approvable"`
	// Recipe digests everything besides the id's inputs that the proposal
	// was made from (producer, policy, plan level, how Nix was reached): a
	// later run with the same recipe reuses it without rebuilding.
	Recipe string `json:"recipe,omitempty"`
	// Members are a group's upgrades, leaves first (kind group: Submodule
	// names them all, From and To are empty, Lock holds every move).
	Members []Member `json:"members,omitempty"`
}

// Member is one submodule a proposal moves.
type Member struct {
	Submodule    string                  `json:"submodule"`
	Inputs       []string                `json:"inputs"`
	Branch       string                  `json:"branch"`
	From         string                  `json:"from"`
	To           string                  `json:"to"`
	Commits      int                     `json:"commits"`
	Log          []gitrepo.CommitSummary `json:"log"`
	LogTruncated bool                    `json:"logTruncated,omitempty"`
	Lock         []LockMove              `json:"lock"`
}

// Moves are the submodules a proposal moves: a group's members, or the
// proposal itself.
func (p *Proposal) Moves() []Member {
	if p.Kind == KindGroup {
		return p.Members
	}
	return []Member{{Submodule: p.Submodule, Inputs: p.Inputs, Branch: p.Branch, From: p.From, To: p.To,
		Commits: p.Commits, Log: p.Log, LogTruncated: p.LogTruncated, Lock: p.Lock}}
}

// AuthorFor is the author of a proposal's commit: lambda-check, at the
// newest committer time of the revisions it moves to (commitTime reads a
// submodule's commit).
func AuthorFor(p *Proposal, commitTime func(submodule string, rev plumbing.Hash) (gitrepo.CommitInfo, error)) (gitrepo.Signature, error) {
	a := Author
	var newest int64
	for _, mv := range p.Moves() {
		ci, err := commitTime(mv.Submodule, plumbing.NewHash(mv.To))
		if err != nil {
			return a, err
		}
		newest = max(newest, ci.LastModified)
	}
	a.When = time.Unix(newest, 0).UTC()
	return a, nil
}

// Base is the workspace state a proposal applies to.
type Base struct {
	Head      string `json:"head"`
	Branch    string `json:"branch"`
	Gitlink   string `json:"gitlink"`
	FlakeLock string `json:"flakeLock"`
}

// LockMove is one flake.lock node moved.
type LockMove struct {
	Node string      `json:"node"`
	From flake.Attrs `json:"from"`
	To   flake.Attrs `json:"to"`
	// Added and Removed are the input's own inputs that the new revision
	// gained and lost (re-locked from its flake.lock, as Nix does).
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
}

// Build says how to build a proposal.
type Build struct {
	// Flake is the proposal's flake reference.
	Flake string `json:"flake"`
	// Locked: flake.lock was derived; otherwise Nix locks it on first use
	// (LockNote says why not).
	Locked   bool   `json:"locked"`
	LockNote string `json:"lockNote,omitempty"`
}

// Author is the author of every proposed commit (its time is the new
// head's). apply recomputes the commit with it, so there is one.
var Author = gitrepo.Signature{Name: "lambda-check", Email: "lambda-check@localhost"}

// Request is what the stage turns into proposals.
type Request struct {
	Snapshot *workspace.Snapshot
	Upgrades *upgrades.Upgrades
	// Plan orders the proposals (nil: by path).
	Plan *plan.Plan
	// Stores is the upgrades stage's store directory.
	Stores string
	// Dir is where proposal directories are written.
	Dir    string
	Policy *policy.Config
	// WorkspaceURL is how proposal flakes reach the workspace: "" for
	// git+file://<root>, or a git+https/git+ssh/github: URL CI can fetch.
	WorkspaceURL string
	// Eval evaluates flake.nix inputs (the workspace's, and a moved
	// input's at its new revision) so re-locking sees what they declare;
	// nil: the locks stand in for them.
	Eval flake.Evaluator
	// Producer is written in proposal.json and ends each patch.
	Producer artifact.Producer
	// Group, "level", proposes the upgrades of each plan level together:
	// one proposal, one patch, one flake.lock change, approved and applied
	// as a unit (levels still in order). "" proposes each alone.
	Group string
	// Quarantine holds revisions known to be bad ("submodule@rev" → why):
	// an upgrade to one is proposed blocked (a deny finding), shown but
	// never approvable.
	Quarantine map[string]string
}

// QuarantineKey names a submodule's revision in Request.Quarantine.
func QuarantineKey(submodule, rev string) string { return submodule + "@" + rev }

// Outcome is what became of one upgrade.
type Outcome struct {
	ID         string `json:"id"`
	Submodule  string `json:"submodule"`
	From       string `json:"from"`
	To         string `json:"to"`
	Level      int    `json:"level"`
	Written    bool   `json:"written"` // false: the same proposal already existed
	Approvable bool   `json:"approvable"`
	Findings   int    `json:"findings"`
	Skipped    string `json:"skipped,omitempty"`
	// Note says why an upgrade meant to be grouped was proposed alone.
	Note string `json:"note,omitempty"`
}

// Result lists the outcomes in plan order.
type Result struct {
	Outcomes []Outcome
}

// ErrBaseMoved: the workspace is not at the state the upgrades saw.
var ErrBaseMoved = errors.New("the workspace moved since the upgrades were found")

// Run writes a proposal per upgrade.
func Run(ctx context.Context, req Request) (*Result, error) {
	snap, up := req.Snapshot, req.Upgrades
	if up.Base.Head != snap.Superproject.Head || up.Base.FlakeLock != snap.FlakeLock.Digest {
		return nil, ErrBaseMoved
	}
	// The base is read only when a proposal has to be built.
	var b *base
	var res Result

	// one builds (or finds) the proposal of one upgrade, unwritten: a
	// proposal found on disk comes without files. Without a proposal, the
	// outcome says why it was skipped.
	var buildErr error
	one := func(u upgrade) (Outcome, *Proposal, map[string][]byte, string) {
		o := Outcome{Submodule: u.repo.Path, From: u.repo.Pin, To: u.repo.Head, Level: u.level}
		sub := snap.Submodule(u.repo.Path)
		if sub == nil || sub.Gitlink != u.repo.Pin {
			o.Skipped = "the gitlink moved since the upgrades were found"
			return o, nil, nil, ""
		}
		recipe := recipeOf(req, u)
		if p := reusable(req, KindUpgrade, u, snap, recipe); p != nil {
			o.ID, o.Approvable, o.Findings = p.ID, p.Approvable, len(p.Findings)
			return o, p, nil, recipe
		}
		if b == nil {
			var err error
			if b, err = readBase(ctx, snap, req); err != nil {
				buildErr = err
				return o, nil, nil, ""
			}
		}
		p, files, err := build(ctx, req, b, u)
		if ctx.Err() != nil {
			buildErr = ctx.Err()
			return o, nil, nil, ""
		}
		if err != nil {
			// One upgrade that cannot be proposed (missing objects, a tree
			// that cannot be hashed) does not stop the others.
			o.Skipped = skipReason(err)
			return o, nil, nil, ""
		}
		p.Recipe = recipe
		o.ID, o.Approvable, o.Findings = p.ID, p.Approvable, len(p.Findings)
		return o, p, files, recipe
	}
	us := ordered(up, req.Plan)
	if req.Group == "level" {
		r, err := runGrouped(ctx, req, us, one, func() (*base, error) {
			if b == nil {
				var err error
				b, err = readBase(ctx, snap, req)
				return b, err
			}
			return b, nil
		})
		if buildErr != nil {
			return nil, buildErr
		}
		return r, err
	}
	for _, u := range us {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		o, p, files, _ := one(u)
		if buildErr != nil {
			return nil, buildErr
		}
		if p != nil {
			if err := writeOne(req, &o, p, files); err != nil {
				return nil, err
			}
		}
		res.Outcomes = append(res.Outcomes, o)
	}
	return &res, nil
}

// writeOne writes a proposal built this run (one found on disk, without
// files, stays as it is).
func writeOne(req Request, o *Outcome, p *Proposal, files map[string][]byte) error {
	if files == nil {
		return nil
	}
	var err error
	if o.Written, err = write(req.Dir, p, files, req.Producer); err != nil {
		return fmt.Errorf("write proposal %s: %w", p.ID, err)
	}
	return nil
}

// recipeOf digests what a proposal depends on besides its id's inputs.
func recipeOf(req Request, u upgrade) string {
	pol, _ := json.Marshal(req.Policy)
	sum := sha256.Sum256([]byte(strings.Join([]string{
		req.Producer.Name, req.Producer.Version, string(pol), req.WorkspaceURL,
		fmt.Sprint(req.Eval != nil), fmt.Sprint(u.level), Author.Name, Author.Email,
		strings.Join(u.repo.Inputs, ","), u.repo.Branch, req.Quarantine[QuarantineKey(u.repo.Path, u.repo.Head)],
	}, "\x00")))
	return hex.EncodeToString(sum[:])
}

// reusable returns the proposal already written for this upgrade from this
// base with the same recipe (its files checked against their digests), or
// nil.
func reusable(req Request, kind string, u upgrade, snap *workspace.Snapshot, recipe string) *Proposal {
	id := ID(kind, u.repo.Path, u.repo.Pin, u.repo.Head, snap.Superproject.Head, snap.FlakeLock.Digest)
	if p, err := Load(req.Dir, id); err == nil && p.Recipe == recipe {
		return p
	}
	// A proposal of the same change made on another base whose paths did
	// not move since is reused too, wherever HEAD went meanwhile (its
	// approvals stay with it).
	// Its directory name starts as this id does (kind, submodule, target).
	prefix := id[:strings.LastIndexByte(id, '-')+1]
	ents, err := os.ReadDir(req.Dir)
	if err != nil {
		return nil
	}
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || name == id || !strings.HasPrefix(name, prefix) {
			continue
		}
		p, err := Load(req.Dir, name)
		if err != nil || p.Kind != kind || p.Submodule != u.repo.Path || p.From != u.repo.Pin || p.To != u.repo.Head || p.Recipe != recipe {
			continue
		}
		lock, err := workspace.ReadLock(snap)
		if err != nil {
			return nil
		}
		if sub := snap.Submodule(p.Submodule); sub != nil && sub.Gitlink == p.Base.Gitlink && LockMoved(p, lock) == "" {
			return p
		}
	}
	return nil
}

// skipReason says in the operator's words why an upgrade was not proposed.
func skipReason(err error) string {
	if errors.Is(err, gitrepo.ErrMissingObject) {
		return "objects of the new revision are missing from every local copy (" + err.Error() + "): fetch the repository again (lambda-check upgrades fetches what the remote has), or upgrade it by hand"
	}
	return err.Error()
}

type upgrade struct {
	repo  upgrades.Repo
	level int
	kind  string
	// store holds the target revision (nil: the upgrades store).
	store *gitrepo.Repo
}

// RollbackRequest asks for a rollback proposal: a submodule's gitlink (and
// its flake.lock node) moved back to an earlier revision its own
// repository holds.
type RollbackRequest struct {
	Request
	Submodule string
	To        string
}

// Rollback writes a rollback proposal through the same machinery as
// upgrades: the same patch format, proposal flake, policy check and
// governance.
func Rollback(ctx context.Context, rr RollbackRequest) (*Outcome, error) {
	req := rr.Request
	snap := req.Snapshot
	m := snap.Submodule(rr.Submodule)
	if m == nil || m.Gitlink == "" {
		return nil, fmt.Errorf("no submodule %s with a gitlink", rr.Submodule)
	}
	sub, err := gitrepo.Open(filepath.Join(snap.Root, filepath.FromSlash(rr.Submodule)))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", rr.Submodule, err)
	}
	b, err := readBase(ctx, snap, req)
	if err != nil {
		return nil, err
	}
	var inputs []string
	if e := b.reg.Repo(rr.Submodule); e != nil {
		inputs = e.Inputs()
	}
	if inputs == nil {
		inputs = []string{}
	}
	u := upgrade{repo: upgrades.Repo{Path: rr.Submodule, Name: m.Name, Branch: m.Branch, Inputs: inputs, Pin: m.Gitlink, Head: rr.To},
		level: -1, kind: KindRollback, store: sub}
	p, files, err := build(ctx, req, b, u)
	if err != nil {
		return nil, fmt.Errorf("rollback %s: %w", rr.Submodule, err)
	}
	o := &Outcome{ID: p.ID, Submodule: p.Submodule, From: p.From, To: p.To, Level: -1, Approvable: p.Approvable, Findings: len(p.Findings)}
	o.Written, err = write(req.Dir, p, files, req.Producer)
	return o, err
}

// ordered lists the upgrades: by plan level (leaves first), then the
// ones no input orders; by path within each.
func ordered(up *upgrades.Upgrades, p *plan.Plan) []upgrade {
	level := map[string]int{}
	if p != nil {
		for lv, steps := range p.Levels {
			for _, s := range steps {
				for _, in := range s.Inputs {
					level[in] = lv
				}
			}
		}
	}
	var out []upgrade
	for _, r := range up.Repos {
		if !r.IsUpgrade() {
			continue
		}
		lv := -1
		for _, in := range r.Inputs {
			if l, ok := level[in]; ok {
				lv = max(lv, l)
			}
		}
		out = append(out, upgrade{repo: r, level: lv})
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].level, out[j].level
		if a < 0 {
			a = 1 << 30
		}
		if b < 0 {
			b = 1 << 30
		}
		if a != b {
			return a < b
		}
		return out[i].repo.Path < out[j].repo.Path
	})
	return out
}

// ID derives a proposal's id from what it changes and what it applies to:
// the same change to the same base is the same proposal.
func ID(kind, submodule, from, to, baseHead, baseLock string) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{kind, submodule, from, to, baseHead, baseLock}, "\x00")))
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, filepath.Base(submodule))
	name = strings.Trim(name, "-")
	if len(name) > 60 {
		name = name[:60]
	}
	prefix := map[string]string{KindUpgrade: "up", KindRollback: "rb", KindGroup: "grp"}[kind]
	return fmt.Sprintf("%s-%s-%s-%s", prefix, name, to[:min(12, len(to))], hex.EncodeToString(sum[:5]))
}

// base is what every proposal of a run applies to.
type base struct {
	repo                 *gitrepo.Repo
	head                 plumbing.Hash
	lockBytes            []byte
	lock                 *flake.Lock
	reg                  *workspace.Registry
	wsLocked, wsOriginal flake.Attrs
	wsURL, lockNote      string
	// declared is the workspace's flake.nix inputs, nil when not evaluated.
	declared map[string]*flake.DeclaredInput
}

// readBase reads HEAD's flake.lock (which must be the work tree's), the
// registry and the workspace input of proposal flakes, and makes the
// proposals directory.
func readBase(ctx context.Context, snap *workspace.Snapshot, req Request) (*base, error) {
	repo, err := gitrepo.Open(snap.Root)
	if err != nil {
		return nil, err
	}
	b := &base{repo: repo, head: plumbing.NewHash(snap.Superproject.Head)}
	if b.lockBytes, err = repo.ReadFile(b.head, "flake.lock"); err != nil {
		return nil, fmt.Errorf("read flake.lock at HEAD: %w", err)
	}
	if artifact.Digest(b.lockBytes) != snap.FlakeLock.Digest {
		return nil, fmt.Errorf("flake.lock has uncommitted changes: proposals apply to HEAD's; commit or stash them first")
	}
	if b.lock, err = flake.ParseLock(b.lockBytes); err != nil {
		return nil, err
	}
	if b.reg, err = workspace.BuildRegistry(ctx, workspace.RegistryRequest{Snapshot: snap, Lock: b.lock}); err != nil {
		return nil, err
	}
	b.wsLocked, b.wsOriginal, b.wsURL, b.lockNote = workspaceInput(repo, b.head, snap, req.WorkspaceURL)
	if req.Eval != nil && snap.FlakeNix.Digest != "" {
		b.declared, _ = flake.EvaluateInputs(ctx, req.Eval, filepath.Join(snap.Root, "flake.nix"), "")
	}
	return b, os.MkdirAll(req.Dir, 0o755)
}

func build(ctx context.Context, req Request, b *base, u upgrade) (*Proposal, map[string][]byte, error) {
	repo, head, baseLock, lockBytes, reg := b.repo, b.head, b.lock, b.lockBytes, b.reg
	wsLocked, wsOriginal, wsURL, lockNote := b.wsLocked, b.wsOriginal, b.wsURL, b.lockNote
	r := u.repo
	snap := req.Snapshot
	from, to := plumbing.NewHash(r.Pin), plumbing.NewHash(r.Head)
	kind := u.kind
	if kind == "" {
		kind = KindUpgrade
	}
	store := u.store
	if store == nil {
		s, err := gitrepo.OpenBare(filepath.Join(req.Stores, r.Store))
		if err != nil {
			return nil, nil, fmt.Errorf("the upgrades store for %s: %w (run upgrades again)", r.Path, err)
		}
		store = s
	}
	if !store.HasCommit(to) {
		return nil, nil, fmt.Errorf("%s is not in the upgrades store (run upgrades again)", r.Head)
	}
	// The commits the change brings; for a rollback, the ones it removes.
	log, err := store.Log(from, to)
	if kind == KindRollback {
		log, err = store.Log(to, from)
	}
	if err != nil {
		return nil, nil, err
	}
	p := &Proposal{
		Kind: kind, Submodule: r.Path, Inputs: r.Inputs, Branch: r.Branch, From: r.Pin, To: r.Head,
		Commits: len(log), Level: u.level,
		Base: Base{Head: snap.Superproject.Head, Branch: snap.Superproject.Branch, Gitlink: r.Pin, FlakeLock: artifact.Digest(lockBytes)},
		Lock: []LockMove{}, Findings: []policy.Finding{},
	}
	p.ID = ID(p.Kind, p.Submodule, p.From, p.To, p.Base.Head, p.Base.FlakeLock)
	if len(log) > maxLog {
		log, p.LogTruncated = log[:maxLog], true
	}
	p.Log = log

	// Move every root pin of the repository in flake.lock.
	newLock := cloneLock(baseLock)
	var moved []workspace.Pin
	if e := reg.Repo(r.Path); e != nil {
		moved = e.RootPins()
	}
	var unmovable []policy.Finding
	var overrides map[string][]string
	for _, pin := range moved {
		n := newLock.Nodes[pin.Node]
		if len(pin.Inputs) > 0 {
			// An earlier move renamed nodes: find it by its root input.
			if id, err := newLock.Resolve(newLock.Root, pin.Inputs[0]); err == nil {
				n = newLock.Nodes[id]
			}
		}
		if t := n.Locked.Type(); t != "git" && t != "github" {
			// Moving only the gitlink would leave the two pins apart:
			// never approvable.
			unmovable = append(unmovable, policy.Finding{
				Rule: "lock-drift", Severity: policy.Deny,
				Subject: policy.Subject{Kind: policy.KindSubmodule, Name: r.Path},
				Message: fmt.Sprintf("flake.lock pins this repository through a %s input (node %s), which a proposal cannot move: applying it would leave the gitlink and the lock apart", t, pin.Node),
				Hint:    "lock the input to its upstream repository first (see local-override)",
			})
			continue
		}
		if n.Locked.String("rev") == r.Head {
			continue // the lock already pins the target (it drifted from the gitlink)
		}
		attrs, err := relock(store, to, n.Locked)
		if err != nil {
			return nil, nil, fmt.Errorf("lock %s at %s: %w", pin.Node, r.Head, err)
		}
		move := LockMove{Node: pin.Node, From: n.Locked, To: attrs}
		direct := ""
		for _, in := range pin.Inputs {
			if ref := newLock.Nodes[newLock.Root].Inputs[in]; !ref.IsFollows() {
				direct = in
				break
			}
		}
		if direct == "" {
			// Reached only through follows: the node moves in place.
			n.Locked = attrs
			p.Lock = append(p.Lock, move)
			continue
		}
		// The input's own inputs are re-locked as Nix does: from the new
		// revision's flake.lock, with the workspace's follows applied.
		rl := flake.Relock{Workspace: newLock, Input: direct, Locked: attrs}
		if rl.DepLock, rl.DepInputs, err = depFlake(ctx, req.Eval, store, to); err != nil {
			return nil, nil, fmt.Errorf("%s at %s: %w", direct, short(r.Head), err)
		}
		if d := b.declared[direct]; d != nil {
			rl.Overrides = d.Inputs
			if rl.Overrides == nil {
				rl.Overrides = map[string]*flake.DeclaredInput{}
			}
		}
		got, err := rl.Apply()
		if err == nil {
			overrides = got.Overrides
		}
		if errors.Is(err, flake.ErrNeedsFetch) {
			unmovable = append(unmovable, policy.Finding{
				Rule: "lock-drift", Severity: policy.Deny,
				Subject: policy.Subject{Kind: policy.KindInput, Name: direct},
				Message: fmt.Sprintf("flake.lock cannot be re-locked here: %v", err),
				Hint:    fmt.Sprintf("lock it where the network is reachable: nix flake lock --update-input %s, and commit the result with the gitlink", direct),
			})
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("re-lock %s: %w", direct, err)
		}
		move.Added, move.Removed = got.Added, got.Removed
		p.Lock = append(p.Lock, move)
		newLock = got.Lock
	}
	newLockBytes, err := newLock.Marshal()
	if err != nil {
		return nil, nil, err
	}

	// The patch.
	author := Author
	ci, err := store.CommitTime(to)
	if err != nil {
		return nil, nil, err
	}
	author.When = time.Unix(ci.LastModified, 0).UTC()
	msg := Message(p)
	edits := []gitrepo.Edit{{Path: r.Path, Mode: filemode.Submodule, Hash: to}}
	paths := []string{r.Path}
	if len(p.Lock) > 0 {
		edits = append(edits, gitrepo.Edit{Path: "flake.lock", Mode: filemode.Regular, Content: newLockBytes})
		paths = append(paths, "flake.lock")
	}
	ch, err := repo.BuildChange(head, edits, author, msg)
	if err != nil {
		return nil, nil, err
	}
	p.Commit = ch.Commit.String()
	patch, err := gitrepo.FormatPatch(ch, author, msg, req.Producer.Name+" "+req.Producer.Version)
	if err != nil {
		return nil, nil, err
	}
	files := map[string][]byte{PatchFile: patch}

	// The proposal flake: the workspace at its base with the input moved.
	p.Build.Flake = "path:" + filepath.Join(req.Dir, p.ID)
	input := directInput(baseLock, r.Inputs, p.Lock)
	if len(p.Lock) == 1 && input != "" {
		movedID, err := newLock.Resolve(newLock.Root, input)
		if err != nil {
			return nil, nil, err
		}
		node := newLock.Nodes[movedID]
		ov := &flake.Overlay{Workspace: baseLock, Moved: newLock, Overrides: overrides, WorkspaceLocked: wsLocked, WorkspaceOriginal: wsOriginal,
			Input: input, Locked: node.Locked, Original: originalFor(node.Locked)}
		nix, lock, note := proposalFlake(p, ov, wsURL, lockNote)
		files[FlakeFile] = nix
		if lock != nil {
			files[LockFile] = lock
			p.Build.Locked = true
		} else {
			p.Build.LockNote = note
		}
	} else {
		p.Build.LockNote = "no proposal flake: the repository is no single flake input of the workspace"
	}

	// What the change introduces, judged by the change rules.
	findings, err := policy.CheckChange(ctx, policy.ChangeRequest{Config: req.Policy, Snapshot: snap, Base: baseLock, New: newLock,
		Paths: paths, Origin: "proposal " + p.ID})
	if err != nil {
		return nil, nil, err
	}
	p.Findings = append(append([]policy.Finding{}, unmovable...), findings...)
	if why, bad := req.Quarantine[QuarantineKey(u.repo.Path, u.repo.Head)]; bad && kind == KindUpgrade {
		p.Findings = append(p.Findings, policy.Finding{Rule: "quarantine", Severity: policy.Deny,
			Subject: policy.Subject{Kind: policy.KindSubmodule, Name: u.repo.Path},
			Message: fmt.Sprintf("revision %s is quarantined: %s", short(u.repo.Head), why),
			Hint:    fmt.Sprintf("it is proposed again when upstream moves past it; to allow it now: lambda-check quarantine clear %s", QuarantineKey(u.repo.Path, short(u.repo.Head)))})
	}
	p.Approvable = !policy.Denies(p.Findings)

	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p.Files = append(p.Files, workspace.FileDigest{Path: n, Digest: artifact.Digest(files[n])})
	}
	return p, files, nil
}

// directInput is the root input that locks the moved node directly (not
// through follows), which the proposal flake overrides; "" if none.
func directInput(l *flake.Lock, inputs []string, moves []LockMove) string {
	if len(moves) != 1 {
		return ""
	}
	for _, in := range inputs {
		if ref, ok := l.Nodes[l.Root].Inputs[in]; ok && !ref.IsFollows() && ref.Node == moves[0].Node {
			return in
		}
	}
	return ""
}

// depFlake reads a moved input's flake.lock at its new revision and, when
// ev can evaluate it, the inputs its flake.nix declares (nil otherwise:
// the lock stands in for them).
func depFlake(ctx context.Context, ev flake.Evaluator, store *gitrepo.Repo, rev plumbing.Hash) (*flake.Lock, []string, error) {
	var lock *flake.Lock
	b, err := store.ReadFile(rev, "flake.lock")
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, nil, fmt.Errorf("read its flake.lock: %w", err)
	default:
		if lock, err = flake.ParseLock(b); err != nil {
			return nil, nil, fmt.Errorf("its flake.lock: %w", err)
		}
	}
	if ev == nil {
		return lock, nil, nil
	}
	nix, err := store.ReadFile(rev, "flake.nix")
	if errors.Is(err, fs.ErrNotExist) {
		return lock, []string{}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read its flake.nix: %w", err)
	}
	dir, err := os.MkdirTemp("", "lambda-check-flake-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	f := filepath.Join(dir, "flake.nix")
	if err := os.WriteFile(f, nix, 0o644); err != nil {
		return nil, nil, err
	}
	decl, e := flake.EvaluateInputs(ctx, ev, f, "")
	if !e.Evaluated {
		// Its inputs could not be read (it imports files of its own, say):
		// the lock stands in for them.
		return lock, nil, nil
	}
	names := make([]string, 0, len(decl))
	for n := range decl {
		names = append(names, n)
	}
	sort.Strings(names)
	return lock, names, nil
}

// relock computes the locked attributes of a node at rev, keeping the
// attributes that are not computed (url, ref, owner, ...).
func relock(store *gitrepo.Repo, rev plumbing.Hash, old flake.Attrs) (flake.Attrs, error) {
	var got flake.Attrs
	var err error
	switch old.Type() {
	case "git":
		got, err = flake.LockGit(store, rev, old.String("url"), old.String("ref"))
	case "github":
		got, err = flake.LockGitHub(store, rev, old.String("owner"), old.String("repo"))
	default:
		return nil, fmt.Errorf("input type %q is not moved by a proposal", old.Type())
	}
	if err != nil {
		return nil, err
	}
	out := flake.Attrs{}
	for k, v := range old {
		out[k] = v
	}
	for _, k := range []string{"lastModified", "narHash", "rev", "revCount"} {
		if v, ok := got[k]; ok {
			out[k] = v
		}
	}
	return out, nil
}

func cloneLock(l *flake.Lock) *flake.Lock {
	out := &flake.Lock{Version: l.Version, Root: l.Root, Nodes: make(map[string]*flake.Node, len(l.Nodes))}
	for k, n := range l.Nodes {
		c := *n
		out.Nodes[k] = &c
	}
	return out
}

func short(h string) string { return h[:min(12, len(h))] }

// Message is the commit message of a proposal's patch.
func Message(p *Proposal) string {
	if p.Kind == KindGroup {
		return groupMessage(p)
	}
	var b strings.Builder
	name := filepath.Base(p.Submodule)
	if p.Kind == KindRollback {
		fmt.Fprintf(&b, "Roll back %s to %s\n\n", name, short(p.To))
		fmt.Fprintf(&b, "Move %s back from %s to %s, the last pin its module passed verification under (%d commits removed)", p.Submodule, short(p.From), short(p.To), p.Commits)
	} else {
		fmt.Fprintf(&b, "Upgrade %s to %s\n\n", name, short(p.To))
		fmt.Fprintf(&b, "Move %s from %s to %s (%d commits on %s)", p.Submodule, short(p.From), short(p.To), p.Commits, p.Branch)
	}
	if len(p.Lock) > 0 {
		var nodes []string
		for _, m := range p.Lock {
			nodes = append(nodes, m.Node)
		}
		fmt.Fprintf(&b, "\nand its flake.lock entry (%s) with it, so the two pins stay equal", strings.Join(nodes, ", "))
	}
	b.WriteString(".\n\n")
	for _, c := range p.Log {
		fmt.Fprintf(&b, "  %s %s\n", c.Hash[:12], c.Subject)
	}
	if p.LogTruncated {
		fmt.Fprintf(&b, "  ... and %d more\n", p.Commits-len(p.Log))
	}
	fmt.Fprintf(&b, "\nLambda-Check-Proposal: %s\n", p.ID)
	return b.String()
}

// workspaceInput returns the workspace input of proposal flakes: its
// locked and original attributes and URL; or a note on why proposal flakes
// cannot be locked.
func workspaceInput(repo *gitrepo.Repo, head plumbing.Hash, snap *workspace.Snapshot, configured string) (flake.Attrs, flake.Attrs, string, string) {
	branch := snap.Superproject.Branch
	switch {
	case configured == "" && branch == "":
		return nil, nil, "git+file://" + snap.Root + "?rev=" + head.String(), "the workspace's HEAD is detached: Nix locks the proposal flake on first use"
	case configured == "":
		u := "file://" + snap.Root
		locked, err := flake.LockGit(repo, head, u, branch)
		if err != nil {
			return nil, nil, flake.GitRef(u, branch, head.String()), "workspace input not locked: " + err.Error()
		}
		return locked, flake.Attrs{"ref": branch, "rev": head.String(), "type": "git", "url": u}, flake.GitRef(u, branch, head.String()), ""
	case strings.HasPrefix(configured, "github:"):
		owner, name, _ := strings.Cut(strings.TrimPrefix(configured, "github:"), "/")
		locked, err := flake.LockGitHub(repo, head, owner, name)
		u := fmt.Sprintf("github:%s/%s/%s", owner, name, head)
		if err != nil {
			return nil, nil, u, "workspace input not locked: " + err.Error()
		}
		return locked, flake.Attrs{"owner": owner, "repo": name, "rev": head.String(), "type": "github"}, u, ""
	default:
		u := strings.TrimPrefix(configured, "git+")
		return nil, nil, flake.GitRef(u, "", head.String()), "the workspace is reached through " + configured + ": Nix locks the proposal flake on first use"
	}
}

// originalFor is the "original" Nix records for the URL the proposal flake
// declares for the moved input: its locked reference, pinned to the rev.
func originalFor(locked flake.Attrs) flake.Attrs {
	switch locked.Type() {
	case "github":
		return flake.Attrs{"owner": locked["owner"], "repo": locked["repo"], "rev": locked["rev"], "type": "github"}
	default:
		o := flake.Attrs{"rev": locked["rev"], "type": locked.Type(), "url": locked["url"]}
		if ref, ok := locked["ref"]; ok {
			o["ref"] = ref
		}
		return o
	}
}

// proposalFlake writes the proposal's flake.nix and, when it can be
// derived exactly, its flake.lock.
func proposalFlake(p *Proposal, ov *flake.Overlay, wsURL, lockNote string) ([]byte, []byte, string) {
	var b bytes.Buffer
	in := ov.Input
	fmt.Fprintf(&b, "# lambda-check proposal %s: %s %s -> %s.\n", p.ID, in, short(p.From), short(p.To))
	b.WriteString("# The workspace at its base commit, built with this one input moved:\n")
	fmt.Fprintf(&b, "#   nix build path:<this directory>#packages.<system>.<name>, nix flake check path:<this directory>\n")
	b.WriteString("{\n")
	fmt.Fprintf(&b, "  description = %q;\n\n", fmt.Sprintf("lambda-check proposal %s", p.ID))
	b.WriteString("  inputs = {\n")
	fmt.Fprintf(&b, "    %s.url = %q;\n", flake.WorkspaceInput, wsURL)
	fmt.Fprintf(&b, "    %s.inputs.%s.follows = %q;\n", flake.WorkspaceInput, nixAttr(in), in)
	fmt.Fprintf(&b, "    %s.url = %q;\n", nixAttr(in), flake.RefAt(ov.Original, ov.Original.String("rev")))
	follows, err := ov.InputFollows()
	if err == nil {
		names := make([]string, 0, len(follows))
		for n := range follows {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(&b, "    %s.inputs.%s.follows = %q;\n", nixAttr(in), nixAttr(n), strings.Join(follows[n], "/"))
		}
	}
	b.WriteString("  };\n\n")
	b.WriteString("  outputs = { self, workspace, ... }: {\n")
	b.WriteString("    packages = workspace.packages or { };\n")
	b.WriteString("    checks = workspace.checks or { };\n")
	b.WriteString("    hydraJobs = {\n      packages = workspace.packages or { };\n      checks = workspace.checks or { };\n    };\n")
	b.WriteString("  };\n}\n")
	if err != nil {
		return b.Bytes(), nil, err.Error()
	}
	if lockNote != "" {
		return b.Bytes(), nil, lockNote
	}
	l, err := ov.Lock()
	if err != nil {
		return b.Bytes(), nil, err.Error()
	}
	lb, err := l.Marshal()
	if err != nil {
		return b.Bytes(), nil, err.Error()
	}
	return b.Bytes(), lb, ""
}

// nixAttr quotes an attribute name when Nix needs it.
var plainAttr = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_'-]*$`)

func nixAttr(s string) string {
	if plainAttr.MatchString(s) {
		return s
	}
	return fmt.Sprintf("%q", s)
}

// Envelope wraps a proposal as proposal.json.
func Envelope(p *Proposal, producer artifact.Producer) *artifact.Envelope[*Proposal] {
	return &artifact.Envelope[*Proposal]{Kind: Spec.Kind, SchemaVersion: Spec.Version, Producer: producer, Payload: p}
}

// write puts a proposal's files in dir/<id>, atomically: a reader sees the
// old directory or the new one. It reports false when the same proposal
// was already there, byte for byte.
func write(dir string, p *Proposal, files map[string][]byte, producer artifact.Producer) (bool, error) {
	if !IDPattern().MatchString(p.ID) {
		return false, fmt.Errorf("proposal id %q does not match %s", p.ID, IDPattern())
	}
	b, err := artifact.Encode(Envelope(p, producer))
	if err != nil {
		return false, err
	}
	all := map[string][]byte{ProposalFile: b}
	for n, c := range files {
		all[n] = c
	}
	target := filepath.Join(dir, p.ID)
	if same(target, all) {
		return false, nil
	}
	tmp, err := os.MkdirTemp(dir, ".tmp-"+p.ID+"-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	for n, c := range all {
		if err := artifact.WriteFile(filepath.Join(tmp, n), c, 0o644); err != nil {
			return false, err
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return false, err
	}
	if _, err := os.Stat(target); err == nil {
		old := tmp + ".old"
		if err := os.Rename(target, old); err != nil {
			return false, err
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, target); err != nil {
		return false, err
	}
	return true, nil
}

// same reports whether dir holds exactly these files with these bytes.
func same(dir string, files map[string][]byte) bool {
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != len(files) {
		return false
	}
	for _, e := range ents {
		want, ok := files[e.Name()]
		if !ok {
			return false
		}
		got, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || !bytes.Equal(got, want) {
			return false
		}
	}
	return true
}
