package policy

import (
	"context"
	"fmt"
	"time"
)

var lockAgeRule = define("lock-age", "chosen inputs (nixpkgs by default) were updated recently", true, Warn,
	func() *lockAgeOptions { return &lockAgeOptions{Inputs: []string{"nixpkgs"}, MaxDays: 30} }, checkLockAge)

type lockAgeOptions struct {
	Inputs  []string `json:"inputs"`
	MaxDays int      `json:"maxDays"`
}

func (o *lockAgeOptions) validate() error {
	if o.MaxDays <= 0 {
		return fmt.Errorf("maxDays must be positive, got %d", o.MaxDays)
	}
	return checkPatterns("inputs", o.Inputs)
}

func checkLockAge(_ context.Context, in *Input, o *lockAgeOptions) (Output, error) {
	if in.Lock == nil {
		return Output{Notes: noLock}, nil
	}
	names, nodes := chosenInputs(in.Lock, o.Inputs)
	var out []Finding
	used := false
	for i, name := range names {
		n := in.Lock.Nodes[nodes[i]]
		if n == nil || n.Locked == nil {
			continue
		}
		used = true
		lm, ok := n.Locked.Int("lastModified")
		if !ok {
			out = append(out, Finding{Subject: Subject{Kind: KindInput, Name: name}, Message: "flake.lock records no lastModified, so its age is unknown"})
			continue
		}
		age := in.Now.Sub(time.Unix(lm, 0))
		if days := int(age.Hours() / 24); days > o.MaxDays {
			out = append(out, Finding{
				Subject: Subject{Kind: KindInput, Name: name},
				Message: fmt.Sprintf("locked revision is %d days old (limit %d)", days, o.MaxDays),
				Hint:    fmt.Sprintf("nix flake lock --update-input %s", name),
			})
		}
	}
	return Output{Findings: out, Notes: []string{fmt.Sprintf("%d inputs checked", len(names))}, UsedNow: used}, nil
}
