package policy

import (
	"context"
	"fmt"
	"strings"

	"github.com/lambda-os/lambda-check/internal/flake"
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
			hint := fmt.Sprintf("make the two pins agree; move the gitlink to the lock: git -C %s checkout %s && git add %s", r.Path, p.Rev, r.Path)
			if ref := flake.RefAt(locked, sub.Gitlink); ref != "" {
				hint += fmt.Sprintf("; or the lock to the gitlink: nix flake lock --override-input %s '%s'", p.Inputs[0], ref)
			}
			out = append(out, Finding{
				Subject: Subject{Kind: KindSubmodule, Name: r.Path},
				Message: fmt.Sprintf("gitlink is %s but flake.lock pins input %s at %s", short(sub.Gitlink), inputs, short(p.Rev)),
				Hint:    hint,
			})
		}
	}
	return Output{Findings: out, Notes: []string{fmt.Sprintf("%d gitlinks compared with flake.lock", compared)}}, nil
}
