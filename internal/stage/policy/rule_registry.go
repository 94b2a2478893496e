package policy

import (
	"context"
	"fmt"
	"strings"

	"github.com/lambda-os/lambda-check/internal/workspace"
)

var registryRule = define("registry", "every submodule maps to one repository and every module's metadata.json is readable", true, Warn,
	noOptionsFor, checkRegistry)

func checkRegistry(_ context.Context, in *Input, _ *noOptions) (Output, error) {
	var out []Finding
	modules, unread := 0, 0
	for _, r := range in.Registry.Repos {
		if len(r.Ambiguous) > 0 {
			out = append(out, Finding{
				Subject: Subject{Kind: KindSubmodule, Name: r.Path},
				Message: fmt.Sprintf("has the same repository (%s) as %s: its flake inputs cannot be told apart", r.Source, strings.Join(r.Ambiguous, ", ")),
				Hint:    "keep one submodule per repository",
			})
		}
		if r.CommitMissing {
			unread++
		}
		if r.MetadataError != "" && !r.CommitMissing && checkedOut(in.Snapshot.Submodule(r.Path)) {
			// (A submodule not checked out, or whose gitlink's commit is
			// absent, is checkout-drift's finding.)
			out = append(out, Finding{
				Subject: Subject{Kind: KindSubmodule, Name: r.Path},
				Message: "metadata.json: " + strings.TrimPrefix(r.MetadataError, "metadata.json: "),
				Hint:    "fix metadata.json at the pinned revision, or check the submodule out",
			})
		}
		if r.Module != nil {
			modules++
		}
	}
	notes := []string{fmt.Sprintf("%d submodules, %d Logos modules, %d root inputs without a submodule", len(in.Registry.Repos), modules, len(in.Registry.UnmatchedInputs))}
	if unread > 0 {
		notes = append(notes, fmt.Sprintf("%d submodules whose gitlink's commit is not in the local repository: their metadata.json was not read (checkout-drift reports them)", unread))
	}
	return Output{Findings: out, Notes: notes}, nil
}

func checkedOut(m *workspace.Submodule) bool {
	return m != nil && m.State != workspace.StateMissing && m.State != workspace.StateUninitialized
}
