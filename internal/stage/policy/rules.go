package policy

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/lambda-os/lambda-check/internal/flake"
)

// rule is one policy rule: its defaults and its check. A check returns
// findings without rule and severity (the runner adds them), notes on what
// it checked, and its side outputs; it never writes into its input.
type rule struct {
	id       string
	summary  string
	enabled  bool
	severity Severity
	// options returns a new value of the rule's options with their defaults.
	options func() any
	check   func(ctx context.Context, in *Input, opts any) (Output, error)
}

// Output is what a rule's check returns.
type Output struct {
	Findings []Finding
	Notes    []string
	// UsedNow says the rule compared something with the clock.
	UsedNow bool
	// Integrity are the locked attributes the rule computed or reused, by
	// integrity key, for the next run; Reused counts those reused.
	Integrity map[string]IntegrityEntry
	Reused    int
}

// define makes a rule whose check receives its own options type: the
// defaults constructor fixes the type ParseConfig decodes into.
func define[O any](id, summary string, enabled bool, severity Severity, defaults func() *O, check func(context.Context, *Input, *O) (Output, error)) rule {
	return rule{id: id, summary: summary, enabled: enabled, severity: severity,
		options: func() any { return defaults() },
		check: func(ctx context.Context, in *Input, opts any) (Output, error) {
			o, ok := opts.(*O)
			if !ok {
				return Output{}, fmt.Errorf("options of type %T, want %T", opts, (*O)(nil))
			}
			return check(ctx, in, o)
		}}
}

// Rule describes a rule for documentation and --help.
type Rule struct {
	ID       string
	Summary  string
	Enabled  bool
	Severity Severity
	Options  any
}

// Rules lists every rule with its defaults, sorted by id.
func Rules() []Rule {
	out := make([]Rule, len(rules))
	for i, r := range rules {
		out[i] = Rule{ID: r.id, Summary: r.summary, Enabled: r.enabled, Severity: r.severity, Options: r.options()}
	}
	return out
}

// RuleIDs lists the rule ids, sorted.
func RuleIDs() []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.id
	}
	return out
}

func ruleByID(id string) *rule {
	for i := range rules {
		if rules[i].id == id {
			return &rules[i]
		}
	}
	return nil
}

// noOptions is the options of a rule that has none.
type noOptions struct{}

func noOptionsFor() *noOptions { return &noOptions{} }

// rules, sorted by id; each is defined in its own file.
var rules = []rule{
	allowedRefsRule, checkoutDriftRule, followsRule, forbiddenPathsRule, localOverrideRule,
	lockAgeRule, lockDriftRule, lockIntegrityRule, registryRule, rlnRule, signedMetadataRule,
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// inputSubject names a lock node by the root inputs resolving to it, or,
// for a transitive input, by its path from the root.
func (in *Input) inputSubject(node string) Subject {
	if in.rootInputs == nil {
		l := in.Lock
		in.rootInputs = map[string][]string{}
		if roots, err := l.RootInputs(); err == nil {
			for _, ri := range roots {
				in.rootInputs[ri.Node] = append(in.rootInputs[ri.Node], ri.Input)
			}
		}
	}
	if ins := in.rootInputs[node]; len(ins) > 0 {
		return Subject{Kind: KindInput, Name: strings.Join(ins, ", ")}
	}
	// A transitive input: named by its path from the root, as
	// --override-input and flake.nix overrides name it.
	if p := in.lockPath(node); p != nil {
		return Subject{Kind: KindInput, Name: strings.Join(p, "/")}
	}
	return Subject{Kind: KindInput, Name: node}
}

func sortedNodes(l *flake.Lock) []string {
	ids := make([]string, 0, len(l.Nodes))
	for id := range l.Nodes {
		if id != l.Root {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

var noLock = []string{"the workspace has no flake.lock: nothing to check"}

// chosenInputs returns root inputs matching patterns with their nodes.
func chosenInputs(l *flake.Lock, patterns []string) ([]string, []string) {
	var names []string
	for n := range l.Nodes[l.Root].Inputs {
		if matchAny(patterns, n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	nodes := make([]string, len(names))
	for i, n := range names {
		nodes[i], _ = l.Resolve(l.Root, n)
	}
	return names, nodes
}
