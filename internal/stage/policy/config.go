package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/lambda-os/lambda-check/internal/config"
)

// ConfigVersion is the policy configuration schema version this build
// reads.
const ConfigVersion = 1

// Severity says what a finding means: deny fails the run, warn reports.
type Severity string

// Severities.
const (
	Deny Severity = "deny"
	Warn Severity = "warn"
)

// RuleConfig is one rule's configuration: whether it runs, how severe its
// findings are, subjects it ignores, and its own options.
type RuleConfig struct {
	Enabled  bool     `json:"enabled"`
	Severity Severity `json:"severity"`
	// Ignore lists subjects (path.Match patterns, or "dir/**") the rule
	// reports nothing about.
	Ignore  []string `json:"ignore"`
	Options any      `json:"options"`
}

// Config is a policy configuration (policy.json).
type Config struct {
	SchemaVersion int                    `json:"schemaVersion"`
	Rules         map[string]*RuleConfig `json:"rules"`
	// Dir is the directory relative paths in options are resolved
	// against: the configuration file's.
	Dir string `json:"-"`
}

// DefaultConfig is the configuration used when there is no policy file:
// every rule with its defaults.
func DefaultConfig(dir string) *Config {
	c := &Config{SchemaVersion: ConfigVersion, Rules: map[string]*RuleConfig{}, Dir: dir}
	for _, r := range rules {
		c.Rules[r.id] = &RuleConfig{Enabled: r.enabled, Severity: r.severity, Ignore: []string{}, Options: r.options()}
	}
	return c
}

// ParseConfig decodes a policy configuration strictly: an unknown rule, key
// or option is an error that names it; rules and options not given keep
// their defaults. name is used in errors, dir resolves relative paths.
func ParseConfig(b []byte, name, dir string) (*Config, error) {
	fail := func(format string, a ...any) (*Config, error) {
		return nil, fmt.Errorf("policy config %s: "+format, append([]any{name}, a...)...)
	}
	var top struct {
		SchemaVersion *int                       `json:"schemaVersion"`
		Rules         map[string]json.RawMessage `json:"rules"`
	}
	if err := strict(b, &top); err != nil {
		return fail("%v", config.WithPosition(b, err))
	}
	if top.SchemaVersion == nil {
		return fail("missing \"schemaVersion\" (this build reads %d)", ConfigVersion)
	}
	if *top.SchemaVersion != ConfigVersion {
		return fail("schemaVersion %d is not supported (this build reads %d)", *top.SchemaVersion, ConfigVersion)
	}
	c := DefaultConfig(dir)
	ids := make([]string, 0, len(top.Rules))
	for id := range top.Rules {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r := ruleByID(id)
		if r == nil {
			return fail("unknown rule %q (known: %s)", id, strings.Join(RuleIDs(), ", "))
		}
		var rc struct {
			Enabled  *bool           `json:"enabled"`
			Severity *Severity       `json:"severity"`
			Ignore   []string        `json:"ignore"`
			Options  json.RawMessage `json:"options"`
		}
		if err := strict(top.Rules[id], &rc); err != nil {
			return fail("rule %q: %v", id, err)
		}
		cur := c.Rules[id]
		if rc.Enabled != nil {
			cur.Enabled = *rc.Enabled
		}
		if rc.Severity != nil {
			if *rc.Severity != Deny && *rc.Severity != Warn {
				return fail("rule %q: severity %q is not \"deny\" or \"warn\"", id, *rc.Severity)
			}
			cur.Severity = *rc.Severity
		}
		if rc.Ignore != nil {
			for _, p := range rc.Ignore {
				if err := checkPattern(p); err != nil {
					return fail("rule %q: ignore: %v", id, err)
				}
			}
			cur.Ignore = rc.Ignore
		}
		if len(rc.Options) > 0 {
			if err := strict(rc.Options, cur.Options); err != nil {
				return fail("rule %q: options: %v", id, err)
			}
		}
		if v, ok := cur.Options.(interface{ validate() error }); ok {
			if err := v.validate(); err != nil {
				return fail("rule %q: options: %v", id, err)
			}
		}
	}
	return c, nil
}

// LoadConfig reads a policy file. When optional and the file does not
// exist, it returns the defaults with dir as the base directory.
func LoadConfig(p string, optional bool) (*Config, error) {
	b, err := os.ReadFile(p)
	if optional && errors.Is(err, fs.ErrNotExist) {
		return DefaultConfig(filepath.Dir(p)), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read policy config: %w", err)
	}
	return ParseConfig(b, fmt.Sprintf("%q", p), filepath.Dir(p))
}

func strict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
