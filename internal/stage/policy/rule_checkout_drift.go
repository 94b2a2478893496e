package policy

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

var checkoutDriftRule = define("checkout-drift", "every submodule is checked out at its gitlink, initialised and clean (submodules nested in submodules may stay uninitialised)", true, Deny,
	func() *checkoutDriftOptions { return &checkoutDriftOptions{} }, checkCheckoutDrift)

type checkoutDriftOptions struct {
	// NestedUninitialized reports submodules nested in submodules that are
	// not initialised. Off by default: the workspace's own tooling (ws
	// init) leaves them so, and their parent repository pins them.
	NestedUninitialized bool `json:"nestedUninitialized"`
}

func checkCheckoutDrift(_ context.Context, in *Input, o *checkoutDriftOptions) (Output, error) {
	var out []Finding
	nestedLeft := 0
	for _, m := range in.Snapshot.Submodules {
		var msg, hint string
		switch m.State {
		case workspace.StateClean:
			continue
		case workspace.StateMissing:
			msg = "missing: " + m.Reason
			hint = fmt.Sprintf("git submodule update --init %s", m.Path)
		case workspace.StateUninitialized:
			if m.Parent != "" && !o.NestedUninitialized {
				nestedLeft++
				continue
			}
			msg = "not initialised: " + m.Reason
			hint = fmt.Sprintf("git submodule update --init %s", m.Path)
		case workspace.StateCheckoutDiffers:
			msg = fmt.Sprintf("checked out at %s, but the gitlink is %s", short(m.Head), short(m.Gitlink))
			hint = fmt.Sprintf("return to the gitlink with 'git submodule update %s', or record the checkout with 'git add %s'", m.Path, m.Path)
			if r, err := gitrepo.Open(filepath.Join(in.Root, filepath.FromSlash(m.Path))); err == nil && !r.HasCommit(plumbing.NewHash(m.Gitlink)) {
				msg += ", a commit the local repository does not have"
				hint = fmt.Sprintf("fetch the gitlink's commit (git -C %s fetch origin %s) and 'git submodule update %s'; if no remote has it (force-pushed away, or never pushed), record a commit that exists: 'git add %s' at the checkout, or move the gitlink", m.Path, m.Gitlink, m.Path, m.Path)
			}
		case workspace.StateDirty:
			msg = fmt.Sprintf("dirty: %d staged, %d modified, %d untracked", len(m.Staged), len(m.Unstaged), len(m.Untracked))
			hint = fmt.Sprintf("commit, stash or remove the changes in %s", m.Path)
		default:
			msg = "state " + m.State
		}
		out = append(out, Finding{Subject: Subject{Kind: KindSubmodule, Name: m.Path}, Message: msg, Hint: hint})
	}
	notes := []string{fmt.Sprintf("%d submodules checked", len(in.Snapshot.Submodules))}
	if nestedLeft > 0 {
		notes = append(notes, fmt.Sprintf("%d nested submodules not initialised, as the workspace's tooling leaves them (options.nestedUninitialized reports them)", nestedLeft))
	}
	return Output{Findings: out, Notes: notes}, nil
}
