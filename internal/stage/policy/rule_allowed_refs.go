package policy

import (
	"context"
	"fmt"
	"strings"
)

var allowedRefsRule = define("allowed-refs", "chosen inputs (nixpkgs by default) track an allowed branch", true, Warn,
	func() *allowedRefsOptions {
		return &allowedRefsOptions{Inputs: []string{"nixpkgs"}, Refs: []string{
			"nixos-unstable", "nixos-unstable-small", "nixpkgs-unstable",
			"nixos-[0-9][0-9].[0-9][0-9]", "nixos-[0-9][0-9].[0-9][0-9]-small", "nixpkgs-[0-9][0-9].[0-9][0-9]-darwin",
		}}
	}, checkAllowedRefs)

type allowedRefsOptions struct {
	Inputs []string `json:"inputs"`
	// Refs are the branches (patterns) the inputs may track.
	Refs []string `json:"refs"`
}

func (o *allowedRefsOptions) validate() error {
	if err := checkPatterns("refs", o.Refs); err != nil {
		return err
	}
	return checkPatterns("inputs", o.Inputs)
}

func checkAllowedRefs(_ context.Context, in *Input, o *allowedRefsOptions) (Output, error) {
	if in.Lock == nil {
		return Output{Notes: noLock}, nil
	}
	names, nodes := chosenInputs(in.Lock, o.Inputs)
	var out []Finding
	for i, name := range names {
		n := in.Lock.Nodes[nodes[i]]
		if n == nil || n.Original == nil {
			continue
		}
		ref := n.Original.String("ref")
		switch {
		case ref == "" && n.Original.String("rev") != "":
			out = append(out, Finding{Subject: Subject{Kind: KindInput, Name: name},
				Message: "pinned to a bare revision, tracking no branch", Hint: "track an allowed branch, e.g. github:NixOS/nixpkgs/nixos-unstable"})
		case ref == "":
			out = append(out, Finding{Subject: Subject{Kind: KindInput, Name: name},
				Message: "tracks the repository's default branch, not a named one", Hint: "track an allowed branch, e.g. github:NixOS/nixpkgs/nixos-unstable"})
		case !matchAny(o.Refs, ref):
			out = append(out, Finding{Subject: Subject{Kind: KindInput, Name: name},
				Message: fmt.Sprintf("tracks %q, which is not an allowed branch", ref), Hint: "allowed: " + strings.Join(o.Refs, ", ")})
		}
	}
	return Output{Findings: out, Notes: []string{fmt.Sprintf("%d inputs checked", len(names))}}, nil
}
