package policy

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/lambda-os/lambda-check/internal/flake"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
)

var lockDriftRule = define("lock-drift", "every submodule's gitlink is the revision flake.lock pins for the same repository", true, Deny,
	noOptionsFor, checkLockDrift)

func checkLockDrift(_ context.Context, in *Input, _ *noOptions) (Output, error) {
	if in.Lock == nil {
		return Output{Notes: noLock}, nil
	}
	var out []Finding
	compared := 0
	for _, r := range in.Registry.Repos {
		sub := in.Snapshot.Submodule(r.Path)
		if sub == nil || sub.Gitlink == "" {
			continue
		}
		for _, p := range r.RootPins() {
			if p.Rev == "" {
				continue // a path input has no revision; local-override reports it
			}
			compared++
			if p.Rev == sub.Gitlink {
				continue
			}
			locked := in.Lock.Nodes[p.Node].Locked
			inputs := strings.Join(p.Inputs, ", ")
			hint := driftHint(in.Root, r.Path, p.Inputs[0], sub.Gitlink, p.Rev, flake.RefAt(locked, sub.Gitlink))
			out = append(out, Finding{
				Subject: Subject{Kind: KindSubmodule, Name: r.Path},
				Message: fmt.Sprintf("gitlink is %s but flake.lock pins input %s at %s", short(sub.Gitlink), inputs, short(p.Rev)),
				Hint:    hint,
			})
		}
	}
	return Output{Findings: out, Notes: []string{fmt.Sprintf("%d gitlinks compared with flake.lock", compared)}}, nil
}

// driftHint says how to make a gitlink and its lock pin agree without a
// downgrade: the newer pin is the one kept, as far as the submodule's
// repository can tell which one contains the other.
func driftHint(root, path, input, gitlink, rev, lockRef string) string {
	moveGitlink := fmt.Sprintf("git -C %s checkout %s && git add %s", path, rev, path)
	moveLock := ""
	if lockRef != "" {
		moveLock = fmt.Sprintf("nix flake lock --override-input %s '%s'", input, lockRef)
	}
	both := func(why string) string {
		h := why + "; move the gitlink to the lock: " + moveGitlink
		if moveLock != "" {
			h += "; or the lock to the gitlink: " + moveLock
		}
		return h
	}
	repo, err := gitrepo.Open(filepath.Join(root, filepath.FromSlash(path)))
	if err != nil {
		return both("make the two pins agree (which one is newer is unknown: " + path + " is not checked out)")
	}
	g, l := plumbing.NewHash(gitlink), plumbing.NewHash(rev)
	if !repo.HasCommit(g) || !repo.HasCommit(l) {
		return both("make the two pins agree (which one is newer is unknown: the local repository lacks one of them)")
	}
	onlyGitlink, onlyLock, err := repo.Compare(g, l)
	switch {
	case err != nil:
		return both("make the two pins agree (which one is newer is unknown: " + err.Error() + ")")
	case onlyLock == 0 && moveLock != "":
		return fmt.Sprintf("the gitlink is newer (%s ahead of the lock): move the lock to it: %s (moving the gitlink back would be a downgrade)", plural(onlyGitlink, "commit"), moveLock)
	case onlyGitlink == 0:
		return fmt.Sprintf("the lock is newer (%s ahead of the gitlink): move the gitlink to it: %s (moving the lock back would be a downgrade)", plural(onlyLock, "commit"), moveGitlink)
	}
	return both(fmt.Sprintf("make the two pins agree (neither contains the other: %s only in the gitlink, %s only in the lock)", plural(onlyGitlink, "commit"), plural(onlyLock, "commit")))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
