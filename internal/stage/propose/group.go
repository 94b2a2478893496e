package propose

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/flake"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/stage/policy"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// GroupID names a group proposal from its members' moves and its base.
func GroupID(level int, members []Member, baseHead, baseLock string) string {
	parts := []string{KindGroup, fmt.Sprint(level), baseHead, baseLock}
	for _, m := range members {
		parts = append(parts, m.Submodule, m.From, m.To)
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return fmt.Sprintf("grp-level-%d-%d-upgrades-%s", level, len(members), hex.EncodeToString(sum[:6]))
}

// group makes one proposal of the member proposals of one plan level,
// built on the same base: every gitlink and every flake.lock move in one
// change and one patch. It fails (and the members are proposed alone)
// when two members move the same flake.lock node.
func group(req Request, b *base, level int, ms []*Proposal, recipe string) (*Proposal, map[string][]byte, error) {
	p := &Proposal{Kind: KindGroup, Level: level, Base: ms[0].Base, Inputs: []string{}, Lock: []LockMove{},
		Findings: []policy.Finding{}, Recipe: recipe, Approvable: true}
	var names []string
	moved := map[string]string{}
	for _, m := range ms {
		for _, mv := range m.Lock {
			if other, ok := moved[mv.Node]; ok {
				return nil, nil, fmt.Errorf("%s and %s both move flake.lock node %s", other, m.Submodule, mv.Node)
			}
			moved[mv.Node] = m.Submodule
		}
		p.Members = append(p.Members, m.Moves()[0])
		p.Inputs = append(p.Inputs, m.Inputs...)
		p.Lock = append(p.Lock, m.Lock...)
		p.Commits += m.Commits
		p.Findings = append(p.Findings, m.Findings...)
		p.Approvable = p.Approvable && m.Approvable
		names = append(names, m.Submodule)
	}
	p.Submodule = strings.Join(names, " + ")
	p.Branch = ms[0].Base.Branch
	p.ID = GroupID(level, p.Members, p.Base.Head, p.Base.FlakeLock)
	p.Build = Build{LockNote: "a group has no proposal flake: each member's input moves in the workspace's flake.lock; build the workspace once it is applied"}

	// The change: every gitlink, and flake.lock with every node moved, as
	// apply recomputes it.
	var edits []gitrepo.Edit
	for _, m := range p.Members {
		edits = append(edits, gitrepo.Edit{Path: m.Submodule, Mode: filemode.Submodule, Hash: plumbing.NewHash(m.To)})
	}
	if len(p.Lock) > 0 {
		lock, err := flake.ParseLock(b.lockBytes)
		if err != nil {
			return nil, nil, err
		}
		for _, mv := range p.Lock {
			n := lock.Nodes[mv.Node]
			if n == nil {
				return nil, nil, fmt.Errorf("flake.lock has no node %q", mv.Node)
			}
			n.Locked = mv.To
		}
		nb, err := lock.Marshal()
		if err != nil {
			return nil, nil, err
		}
		edits = append(edits, gitrepo.Edit{Path: "flake.lock", Mode: filemode.Regular, Content: nb})
	}
	author, err := AuthorFor(p, func(submodule string, rev plumbing.Hash) (gitrepo.CommitInfo, error) {
		for _, m := range ms {
			if m.Submodule == submodule {
				s, err := gitrepo.OpenBare(filepath.Join(req.Stores, storeOf(req, submodule)))
				if err != nil {
					return gitrepo.CommitInfo{}, err
				}
				return s.CommitTime(rev)
			}
		}
		return gitrepo.CommitInfo{}, fmt.Errorf("no member %s", submodule)
	})
	if err != nil {
		return nil, nil, err
	}
	msg := Message(p)
	ch, err := b.repo.BuildChange(b.head, edits, author, msg)
	if err != nil {
		return nil, nil, err
	}
	p.Commit = ch.Commit.String()
	patch, err := gitrepo.FormatPatch(ch, author, msg, req.Producer.Name+" "+req.Producer.Version)
	if err != nil {
		return nil, nil, err
	}
	files := map[string][]byte{PatchFile: patch}
	p.Files = []workspace.FileDigest{{Path: PatchFile, Digest: artifact.Digest(patch)}}
	sort.Strings(p.Inputs)
	return p, files, nil
}

// storeOf is the upgrades store of a submodule.
func storeOf(req Request, submodule string) string {
	for _, r := range req.Upgrades.Repos {
		if r.Path == submodule {
			return r.Store
		}
	}
	return ""
}

// groupMessage is a group's commit message: one line per member, then
// each member's commits.
func groupMessage(p *Proposal) string {
	var b strings.Builder
	var names []string
	for _, m := range p.Members {
		names = append(names, filepath.Base(m.Submodule))
	}
	fmt.Fprintf(&b, "Upgrade %s\n\nMove, together (plan level %d):\n", strings.Join(names, ", "), p.Level)
	for _, m := range p.Members {
		fmt.Fprintf(&b, "  %s from %s to %s (%d commits on %s)\n", m.Submodule, short(m.From), short(m.To), m.Commits, m.Branch)
	}
	if len(p.Lock) > 0 {
		var nodes []string
		for _, mv := range p.Lock {
			nodes = append(nodes, mv.Node)
		}
		fmt.Fprintf(&b, "and their flake.lock entries (%s) with them, so the pins stay equal.\n", strings.Join(nodes, ", "))
	}
	for _, m := range p.Members {
		fmt.Fprintf(&b, "\n%s:\n", m.Submodule)
		for _, c := range m.Log {
			fmt.Fprintf(&b, "  %s %s\n", c.Hash[:12], c.Subject)
		}
		if m.LogTruncated {
			fmt.Fprintf(&b, "  ... and %d more\n", m.Commits-len(m.Log))
		}
	}
	fmt.Fprintf(&b, "\nLambda-Check-Proposal: %s\n", p.ID)
	return b.String()
}

// groupRecipe digests the members' recipes.
func groupRecipe(rs []string) string {
	sum := sha256.Sum256([]byte(strings.Join(rs, "\x00")))
	return hex.EncodeToString(sum[:])
}

// runGrouped proposes each plan level's upgrades as one group (a level of
// one upgrade, or one that cannot be grouped, as single proposals).
func runGrouped(ctx context.Context, req Request, us []upgrade, one func(upgrade) (Outcome, *Proposal, map[string][]byte, string), baseOf func() (*base, error)) (*Result, error) {
	var res Result
	byLevel := map[int][]upgrade{}
	var levels []int
	for _, u := range us {
		if _, ok := byLevel[u.level]; !ok {
			levels = append(levels, u.level)
		}
		byLevel[u.level] = append(byLevel[u.level], u)
	}
	for _, lv := range levels {
		// A group already made for exactly these upgrades on this base,
		// with the same recipes, is reused without building its members.
		if lv >= 0 && len(byLevel[lv]) > 1 {
			if o, ok := reuseGroup(req, lv, byLevel[lv]); ok {
				res.Outcomes = append(res.Outcomes, o)
				continue
			}
		}
		var ms []*Proposal
		var files []map[string][]byte
		var recipes []string
		var outs []Outcome
		for _, u := range byLevel[lv] {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			o, p, f, recipe := one(u)
			if p == nil {
				res.Outcomes = append(res.Outcomes, o) // skipped
				continue
			}
			ms, files, recipes, outs = append(ms, p), append(files, f), append(recipes, recipe), append(outs, o)
		}
		if lv < 0 || len(ms) < 2 {
			for i, p := range ms {
				if err := writeOne(req, &outs[i], p, files[i]); err != nil {
					return nil, err
				}
				res.Outcomes = append(res.Outcomes, outs[i])
			}
			continue
		}
		b, err := baseOf()
		if err != nil {
			return nil, err
		}
		g, gf, err := group(req, b, lv, ms, groupRecipe(recipes))
		if err != nil {
			// Members that cannot move together (two re-lock the same
			// node) are proposed alone, in order.
			for i, p := range ms {
				outs[i].Note = "not grouped: " + err.Error()
				if err := writeOne(req, &outs[i], p, files[i]); err != nil {
					return nil, err
				}
				res.Outcomes = append(res.Outcomes, outs[i])
			}
			continue
		}
		o := Outcome{ID: g.ID, Submodule: g.Submodule, Level: lv, Approvable: g.Approvable, Findings: len(g.Findings)}
		if o.Written, err = write(req.Dir, g, gf, req.Producer); err != nil {
			return nil, fmt.Errorf("write proposal %s: %w", g.ID, err)
		}
		res.Outcomes = append(res.Outcomes, o)
	}
	return &res, nil
}

// reuseGroup finds the group proposal of a level's upgrades written by an
// earlier run on the same base with the same recipes.
func reuseGroup(req Request, lv int, us []upgrade) (Outcome, bool) {
	snap := req.Snapshot
	var members []Member
	var recipes []string
	for _, u := range us {
		if sub := snap.Submodule(u.repo.Path); sub == nil || sub.Gitlink != u.repo.Pin {
			return Outcome{}, false
		}
		members = append(members, Member{Submodule: u.repo.Path, From: u.repo.Pin, To: u.repo.Head})
		recipes = append(recipes, recipeOf(req, u))
	}
	id := GroupID(lv, members, snap.Superproject.Head, snap.FlakeLock.Digest)
	g, err := Load(req.Dir, id)
	if err != nil || g.Recipe != groupRecipe(recipes) {
		return Outcome{}, false
	}
	return Outcome{ID: g.ID, Submodule: g.Submodule, Level: lv, Approvable: g.Approvable, Findings: len(g.Findings)}, true
}
