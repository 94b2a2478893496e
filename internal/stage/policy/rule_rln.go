package policy

import (
	"context"
	"fmt"
)

var rlnRule = define("rln", "messaging modules declare RLN support", true, Warn,
	func() *rlnOptions {
		return &rlnOptions{Types: []string{"core"}, Categories: []string{"chat", "messaging"}, Capabilities: []string{"messaging"}, Markers: []string{"rln"}}
	}, checkRLN)

type rlnOptions struct {
	// Types are the module types checked (empty: all); user interfaces
	// reach the network through a core module, which is checked instead.
	Types []string `json:"types"`
	// Categories and Capabilities say which modules are messaging modules.
	Categories   []string `json:"categories"`
	Capabilities []string `json:"capabilities"`
	// Markers are the capabilities or module dependencies that declare RLN.
	Markers []string `json:"markers"`
}

func checkRLN(_ context.Context, in *Input, o *rlnOptions) (Output, error) {
	var out []Finding
	messaging := 0
	for _, r := range in.Registry.Repos {
		m := r.Module
		if m == nil || (len(o.Types) > 0 && !contains(o.Types, m.Type)) {
			continue
		}
		is := contains(o.Categories, m.Category)
		for _, c := range o.Capabilities {
			is = is || m.HasCapability(c)
		}
		if !is {
			continue
		}
		messaging++
		declares := false
		for _, k := range o.Markers {
			declares = declares || m.HasCapability(k)
			for _, d := range m.Dependencies {
				declares = declares || d.Name == k
			}
		}
		if !declares {
			out = append(out, Finding{
				Subject: Subject{Kind: KindModule, Name: m.Name},
				Message: fmt.Sprintf("messaging module (%s) does not declare RLN support", r.Path),
				Hint:    fmt.Sprintf("add %q to the capabilities in its metadata.json once it rate-limits with RLN", o.Markers[0]),
			})
		}
	}
	return Output{Findings: out, Notes: []string{fmt.Sprintf("%d messaging modules checked", messaging)}}, nil
}

func (o *rlnOptions) validate() error {
	if len(o.Markers) == 0 {
		return fmt.Errorf("markers must name at least one capability or module")
	}
	return nil
}
