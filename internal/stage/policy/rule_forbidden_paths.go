package policy

import (
	"context"
	"fmt"
)

var forbiddenPathsRule = define("forbidden-paths", "no change touches a forbidden path", true, Deny,
	func() *forbiddenPathsOptions { return &forbiddenPathsOptions{Paths: []string{}} }, checkForbiddenPaths)

type forbiddenPathsOptions struct {
	// Paths are workspace-relative patterns ("flake.lock", ".github/**").
	Paths []string `json:"paths"`
}

func (o *forbiddenPathsOptions) validate() error { return checkPatterns("paths", o.Paths) }

func checkForbiddenPaths(_ context.Context, in *Input, o *forbiddenPathsOptions) (Output, error) {
	var out []Finding
	for _, c := range in.Changes {
		if matchAny(o.Paths, c.Path) {
			out = append(out, Finding{
				Subject: Subject{Kind: KindPath, Name: c.Path},
				Message: fmt.Sprintf("%s change to a forbidden path", c.Origin),
				Hint:    "revert the change; these paths change only by review",
			})
		}
	}
	return Output{Findings: out, Notes: []string{fmt.Sprintf("%d changed paths checked against %d patterns", len(in.Changes), len(o.Paths))}}, nil
}
