package workspace

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"

	"github.com/lambda-os/lambda-check/internal/sign"
)

// MetadataFile is where a Logos module repository describes the module.
const MetadataFile = "metadata.json"

// MetadataDomain is what module metadata signatures are made for (see
// sign.Message): a signature over anything else never verifies as one.
const MetadataDomain = "lambda-check/module-metadata/v1"

// moduleName is what a module identity may look like: the Logos runtime
// uses it in socket names, so no path characters.
var moduleName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`) })

// Metadata is what lambda-check reads of a module's metadata.json. Upstream
// adds keys freely (codegen, nix, display_name, ...): unknown keys are
// ignored, but a known key of the wrong type is an error.
type Metadata struct {
	Name         string       `json:"name"`
	Version      string       `json:"version,omitempty"`
	Type         string       `json:"type,omitempty"`
	Category     string       `json:"category,omitempty"`
	Main         string       `json:"main,omitempty"`
	Dependencies []Dependency `json:"dependencies"`
	Capabilities []string     `json:"capabilities"`
	// Signed: the file carries a "signatures" member.
	Signed bool `json:"signed"`
}

// Dependency is a module a module needs: metadata.json lists either names
// or {"name", "version"} objects.
type Dependency struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// HasCapability reports whether the module declares capability c.
func (m *Metadata) HasCapability(c string) bool {
	for _, x := range m.Capabilities {
		if x == c {
			return true
		}
	}
	return false
}

// MaxMetadata bounds a module's metadata.json (real ones are a few KiB).
const MaxMetadata = 1 << 20

// ParseMetadata decodes a metadata.json. It refuses one over MaxMetadata,
// duplicate keys (two readers could disagree on them), a missing or
// malformed name, and known keys of the wrong type.
func ParseMetadata(b []byte) (*Metadata, error) {
	if len(b) > MaxMetadata {
		return nil, fmt.Errorf("metadata.json: %d bytes, more than the %d a module's metadata may be", len(b), MaxMetadata)
	}
	if _, err := sign.Canonical(b); err != nil {
		return nil, fmt.Errorf("metadata.json: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, errors.New("metadata.json: not a JSON object")
	}
	m := &Metadata{Dependencies: []Dependency{}, Capabilities: []string{}}
	str := func(key string, dst *string) error {
		v, ok := raw[key]
		if !ok {
			return nil
		}
		if err := json.Unmarshal(v, dst); err != nil || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			return fmt.Errorf("metadata.json: %q must be a string", key)
		}
		return nil
	}
	for key, dst := range map[string]*string{"name": &m.Name, "version": &m.Version, "type": &m.Type, "category": &m.Category} {
		if err := str(key, dst); err != nil {
			return nil, err
		}
	}
	if !moduleName().MatchString(m.Name) {
		return nil, fmt.Errorf("metadata.json: \"name\" %q is not a module name (letters, digits, _ . -)", m.Name)
	}
	if v, ok := raw["main"]; ok {
		// A plugin basename, or (in manifests) one per platform variant.
		var variants map[string]string
		if json.Unmarshal(v, &m.Main) != nil && json.Unmarshal(v, &variants) != nil {
			return nil, errors.New("metadata.json: \"main\" must be a string or an object of strings")
		}
	}
	if v, ok := raw["capabilities"]; ok {
		if err := json.Unmarshal(v, &m.Capabilities); err != nil || m.Capabilities == nil {
			return nil, errors.New("metadata.json: \"capabilities\" must be a list of strings")
		}
		sort.Strings(m.Capabilities)
	}
	if v, ok := raw["dependencies"]; ok {
		var items []json.RawMessage
		if err := json.Unmarshal(v, &items); err != nil || items == nil {
			return nil, errors.New("metadata.json: \"dependencies\" must be a list")
		}
		for i, it := range items {
			var d Dependency
			if json.Unmarshal(it, &d.Name) != nil {
				var obj struct {
					Name    *string `json:"name"`
					Version string  `json:"version"`
				}
				if err := json.Unmarshal(it, &obj); err != nil || obj.Name == nil {
					return nil, fmt.Errorf("metadata.json: dependency %d must be a name or {\"name\", \"version\"}", i)
				}
				d = Dependency{Name: *obj.Name, Version: obj.Version}
			}
			if !moduleName().MatchString(d.Name) {
				return nil, fmt.Errorf("metadata.json: dependency %d: %q is not a module name", i, d.Name)
			}
			m.Dependencies = append(m.Dependencies, d)
		}
		sort.Slice(m.Dependencies, func(i, j int) bool { return m.Dependencies[i].Name < m.Dependencies[j].Name })
	}
	_, m.Signed = raw[sign.SignaturesMember]
	return m, nil
}
