package flake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// DeclaredInput is an input as flake.nix declares it: the value of
// "inputs.<name>", read by evaluating the flake's inputs attribute with Nix
// (never by matching text).
type DeclaredInput struct {
	// URL is the declared flake URL ("" when the input only follows, or is
	// given as attributes).
	URL string
	// Attrs are the reference's attributes when given as such (type,
	// owner, repo, ref, ...).
	Attrs Attrs
	// Follows is the follows path, nil when the input does not follow.
	Follows []string
	// Flake is false for "flake = false".
	Flake *bool
	// Inputs are overrides of the input's own inputs.
	Inputs map[string]*DeclaredInput
}

// ParseDeclaredInputs decodes the JSON of a flake's evaluated inputs
// attribute.
func ParseDeclaredInputs(b []byte) (map[string]*DeclaredInput, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("flake.nix inputs: %w", err)
	}
	return parseDeclared(raw, "", 0)
}

func parseDeclared(raw map[string]json.RawMessage, prefix string, depth int) (map[string]*DeclaredInput, error) {
	if depth > 16 {
		return nil, fmt.Errorf("flake.nix inputs: %q nested too deeply", prefix)
	}
	out := map[string]*DeclaredInput{}
	for name, v := range raw {
		where := prefix + name
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(v, &fields); err != nil || fields == nil {
			return nil, fmt.Errorf("flake.nix inputs: %q must be an attribute set", where)
		}
		d := &DeclaredInput{}
		for k, fv := range fields {
			var err error
			switch k {
			case "url":
				err = json.Unmarshal(fv, &d.URL)
			case "follows":
				var s string
				if err = json.Unmarshal(fv, &s); err == nil {
					d.Follows = []string{}
					if s != "" {
						d.Follows = strings.Split(s, "/")
					}
				}
			case "flake":
				var f bool
				if err = json.Unmarshal(fv, &f); err == nil {
					d.Flake = &f
				}
			case "inputs":
				var sub map[string]json.RawMessage
				if err = json.Unmarshal(fv, &sub); err == nil {
					d.Inputs, err = parseDeclared(sub, where+".inputs.", depth+1)
				}
			default:
				if d.Attrs == nil {
					d.Attrs = Attrs{}
				}
				var s string
				var bo bool
				var n int64
				switch {
				case json.Unmarshal(fv, &s) == nil:
					d.Attrs[k] = s
				case json.Unmarshal(fv, &bo) == nil:
					d.Attrs[k] = bo
				case json.Unmarshal(bytes.TrimSpace(fv), &n) == nil:
					d.Attrs[k] = n
				default:
					err = fmt.Errorf("want a string, integer or boolean")
				}
			}
			if err != nil {
				return nil, fmt.Errorf("flake.nix inputs: %s.%s: %v", where, k, err)
			}
		}
		out[name] = d
	}
	return out, nil
}

// Staleness is a difference between what flake.nix declares and what
// flake.lock records: the lock was not updated after flake.nix changed.
type Staleness struct {
	// Input is the input's path, "x" or "x/y".
	Input    string `json:"input"`
	Declared string `json:"declared"`
	Locked   string `json:"locked"`
}

// CompareDeclared returns where the lock does not record what flake.nix
// declares: inputs present in one and not the other, and follows that
// differ (at the root and in overrides one level down, which is where a
// workspace wires its repositories together).
func (l *Lock) CompareDeclared(decl map[string]*DeclaredInput) []Staleness {
	var out []Staleness
	root := l.Nodes[l.Root]
	for name, d := range decl {
		ref, ok := root.Inputs[name]
		if !ok {
			out = append(out, Staleness{Input: name, Declared: describeDeclared(d), Locked: "absent"})
			continue
		}
		if d.Follows != nil {
			if want := strings.Join(d.Follows, "/"); !ref.IsFollows() || strings.Join(ref.Follows, "/") != want {
				out = append(out, Staleness{Input: name, Declared: "follows " + want, Locked: ref.String()})
			}
			continue
		}
		node, err := l.Resolve(l.Root, name)
		if err != nil {
			continue
		}
		n := l.Nodes[node]
		for sub, sd := range d.Inputs {
			if sd.Follows == nil {
				continue
			}
			want := strings.Join(sd.Follows, "/")
			sref, ok := n.Inputs[sub]
			switch {
			case !ok:
				out = append(out, Staleness{Input: name + "/" + sub, Declared: "follows " + want, Locked: "absent"})
			case !sref.IsFollows() || strings.Join(sref.Follows, "/") != want:
				out = append(out, Staleness{Input: name + "/" + sub, Declared: "follows " + want, Locked: sref.String()})
			}
		}
	}
	for name := range root.Inputs {
		if _, ok := decl[name]; !ok {
			out = append(out, Staleness{Input: name, Declared: "absent", Locked: root.Inputs[name].String()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Input < out[j].Input })
	return out
}

func describeDeclared(d *DeclaredInput) string {
	switch {
	case d.Follows != nil:
		return "follows " + strings.Join(d.Follows, "/")
	case d.URL != "":
		return d.URL
	case d.Attrs != nil:
		return RefString(d.Attrs)
	}
	return "declared"
}

// Evaluation says whether flake.nix's inputs were evaluated, and if not,
// why.
type Evaluation struct {
	Evaluated bool   `json:"evaluated"`
	Note      string `json:"note,omitempty"`
}

// Evaluator evaluates a flake.nix's inputs attribute to JSON (nixcli.Nix
// does, with nix-instantiate).
type Evaluator interface {
	FlakeInputs(ctx context.Context, flakeNix string) ([]byte, error)
}

// EvaluateInputs reads flake.nix's declared inputs through ev. A nil ev
// (Nix not available) or a failed evaluation is no error: the returned
// Evaluation says what could not be done, and callers fall back to the
// lock alone.
func EvaluateInputs(ctx context.Context, ev Evaluator, flakeNix, why string) (map[string]*DeclaredInput, Evaluation) {
	if ev == nil {
		return nil, Evaluation{Note: why}
	}
	out, err := ev.FlakeInputs(ctx, flakeNix)
	if err != nil {
		return nil, Evaluation{Note: "nix-instantiate failed: " + err.Error()}
	}
	decl, err := ParseDeclaredInputs(out)
	if err != nil {
		return nil, Evaluation{Note: err.Error()}
	}
	return decl, Evaluation{Evaluated: true}
}
