package policy

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"golang.org/x/sync/errgroup"

	"github.com/lambda-os/lambda-check/internal/flake"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

var lockIntegrityRule = define("lock-integrity", "flake.lock's narHash and lastModified match the locked revision, recomputed from the local repository", true, Deny,
	noOptionsFor, checkLockIntegrity)

func checkLockIntegrity(ctx context.Context, in *Input, _ *noOptions) (Output, error) {
	if in.Lock == nil {
		return Output{Notes: noLock}, nil
	}
	type job struct {
		path string
		pin  workspace.Pin
	}
	var jobs []job
	for _, r := range in.Registry.Repos {
		for _, p := range r.Pins {
			switch in.Lock.Nodes[p.Node].Locked.Type() {
			case "git", "github":
				if p.Rev != "" {
					jobs = append(jobs, job{r.Path, p})
				}
			}
		}
	}
	results := make([]*Finding, len(jobs))
	checked := make([]bool, len(jobs))
	computed := make([]*IntegrityEntry, len(jobs))
	cached := 0
	kept := map[string]IntegrityEntry{}
	for i, j := range jobs {
		if e, ok := in.Previous[integrityKey(in.Lock, j.pin)]; ok {
			computed[i] = &e
			cached++
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(in.Par)
	for i, j := range jobs {
		if computed[i] != nil {
			continue
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			repo, err := gitrepo.Open(filepath.Join(in.Root, filepath.FromSlash(j.path)))
			if err != nil {
				return nil // not checked out: counted as skipped
			}
			rev := plumbing.NewHash(j.pin.Rev)
			if !repo.HasCommit(rev) {
				return nil
			}
			locked := in.Lock.Nodes[j.pin.Node].Locked
			var got flake.Attrs
			if locked.Type() == "git" {
				got, err = flake.LockGit(repo, rev, locked.String("url"), locked.String("ref"))
			} else {
				got, err = flake.LockGitHub(repo, rev, locked.String("owner"), locked.String("repo"))
			}
			if err != nil {
				return fmt.Errorf("%s at %s: %w", j.path, short(j.pin.Rev), err)
			}
			e := IntegrityEntry{NarHash: got.String("narHash")}
			e.LastModified, _ = got.Int("lastModified")
			e.RevCount, _ = got.Int("revCount")
			computed[i] = &e
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Output{}, err
	}
	for i, j := range jobs {
		e := computed[i]
		if e == nil {
			continue
		}
		checked[i] = true
		kept[integrityKey(in.Lock, j.pin)] = *e
		locked := in.Lock.Nodes[j.pin.Node].Locked
		have := map[string]any{"narHash": e.NarHash, "lastModified": e.LastModified}
		if locked.Type() == "git" {
			have["revCount"] = e.RevCount
		}
		var bad []string
		for _, k := range []string{"narHash", "lastModified", "revCount"} {
			want, ok := locked[k]
			if !ok {
				continue
			}
			if h, ok := have[k]; ok && h != want {
				bad = append(bad, fmt.Sprintf("%s is %v, recomputed %v", k, want, h))
			}
		}
		if len(bad) > 0 {
			results[i] = &Finding{
				Subject: in.inputSubject(j.pin.Node),
				Message: fmt.Sprintf("flake.lock entry for %s at %s does not match the repository: %s", j.path, short(j.pin.Rev), strings.Join(bad, "; ")),
				Hint:    "the lock was edited by hand or the history was rewritten: re-lock the input with 'nix flake lock --update-input' and review the change",
			}
		}
	}
	var out []Finding
	n := 0
	var absent []string
	for i, j := range jobs {
		if checked[i] {
			n++
		} else {
			absent = append(absent, fmt.Sprintf("%s at %s", j.path, short(j.pin.Rev)))
		}
		if results[i] != nil {
			out = append(out, *results[i])
		}
	}
	// Whether a result came from an earlier run is left out of the
	// artifact, which depends only on the workspace (the command says it).
	notes := []string{fmt.Sprintf("%d of %d locked revisions of the workspace's repositories checked", n, len(jobs))}
	if len(absent) > 0 {
		sort.Strings(absent)
		notes = append(notes, fmt.Sprintf("%d not checked, not in the local repository: %s", len(absent), strings.Join(absent, ", ")))
	}
	if other := lockedRepos(in.Lock) - len(jobs); other > 0 {
		notes = append(notes, fmt.Sprintf("%d locked git inputs are no submodule of the workspace (nothing local to check them against)", other))
	}
	return Output{Findings: out, Notes: notes, Integrity: kept, Reused: cached}, nil
}

// lockedRepos counts the git and github nodes with a revision.
func lockedRepos(l *flake.Lock) int {
	n := 0
	for id, node := range l.Nodes {
		if id == l.Root || node.Locked == nil || node.Locked.String("rev") == "" {
			continue
		}
		if t := node.Locked.Type(); t == "git" || t == "github" {
			n++
		}
	}
	return n
}

// integrityKey names what a lock entry's attributes are computed from: the
// input type (which fixes how the tree is exported) and the commit.
func integrityKey(l *flake.Lock, p workspace.Pin) string {
	return l.Nodes[p.Node].Locked.Type() + ":" + p.Rev
}
