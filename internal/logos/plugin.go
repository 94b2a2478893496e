package logos

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// Plugin metadata errors: why a file is not a loadable plugin.
var (
	ErrNotELF        = errors.New("not an ELF file")
	ErrNoQtMetadata  = errors.New("no .note.qt.metadata section: not a Qt plugin")
	ErrBadQtMetadata = errors.New("malformed Qt plugin metadata")
)

// The Qt 6 plugin metadata note.
const (
	qtNoteSection = ".note.qt.metadata"
	qtNoteName    = "qt-project!"
	qtNoteType    = 0x74510001
)

// PluginMeta is what a Qt 6 plugin declares about itself, read from its
// ELF note without loading it.
type PluginMeta struct {
	// Format is the metadata format version (1).
	Format int `json:"format"`
	// QtMajor and QtMinor are the Qt version the plugin was built with.
	QtMajor   int    `json:"qtMajor"`
	QtMinor   int    `json:"qtMinor"`
	IID       string `json:"iid"`
	ClassName string `json:"className"`
	// Metadata is the module's metadata.json as the plugin embeds it.
	Metadata map[string]any `json:"metadata"`
}

// Name is the embedded metadata's module name.
func (m *PluginMeta) Name() string {
	s, _ := m.Metadata["name"].(string)
	return s
}

// Main is the embedded metadata's plugin basename.
func (m *PluginMeta) Main() string {
	s, _ := m.Metadata["main"].(string)
	return s
}

// Dependencies are the module names the embedded metadata lists.
func (m *PluginMeta) Dependencies() []string {
	var out []string
	list, _ := m.Metadata["dependencies"].([]any)
	for _, d := range list {
		switch v := d.(type) {
		case string:
			out = append(out, v)
		case map[string]any:
			if s, ok := v["name"].(string); ok {
				out = append(out, s)
			}
		}
	}
	sort.Strings(out)
	return out
}

// ReadPluginMeta reads a plugin's metadata note: the 4-byte header
// [format, Qt major, Qt minor, architecture requirements] and the CBOR map
// after it (2: IID, 3: class name, 4: the module's metadata).
func ReadPluginMeta(r io.ReaderAt) (*PluginMeta, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, ErrNotELF
	}
	defer f.Close()
	s := f.Section(qtNoteSection)
	if s == nil {
		return nil, ErrNoQtMetadata
	}
	data, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadQtMetadata, err)
	}
	desc, err := findNote(data, f.ByteOrder)
	if err != nil {
		return nil, err
	}
	if len(desc) < 5 {
		return nil, fmt.Errorf("%w: descriptor too short", ErrBadQtMetadata)
	}
	m := &PluginMeta{Format: int(desc[0]), QtMajor: int(desc[1]), QtMinor: int(desc[2]), Metadata: map[string]any{}}
	v, _, err := decodeCBOR(desc[4:])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadQtMetadata, err)
	}
	top, ok := v.(map[any]any)
	if !ok {
		return nil, fmt.Errorf("%w: not a CBOR map", ErrBadQtMetadata)
	}
	m.IID, _ = top[int64(2)].(string)
	m.ClassName, _ = top[int64(3)].(string)
	if md, ok := top[int64(4)].(map[any]any); ok {
		m.Metadata = jsonish(md).(map[string]any)
	}
	return m, nil
}

// findNote returns the descriptor of the Qt note among the notes of a
// section.
func findNote(data []byte, bo binary.ByteOrder) ([]byte, error) {
	for len(data) >= 12 {
		namesz, descsz, typ := bo.Uint32(data), bo.Uint32(data[4:]), bo.Uint32(data[8:])
		data = data[12:]
		nameLen := int((namesz + 3) &^ 3)
		descLen := int((descsz + 3) &^ 3)
		if nameLen > len(data) || nameLen+int(descsz) > len(data) {
			return nil, fmt.Errorf("%w: truncated note", ErrBadQtMetadata)
		}
		name := string(bytes.TrimRight(data[:namesz], "\x00"))
		desc := data[nameLen : nameLen+int(descsz)]
		if name == qtNoteName && typ == qtNoteType {
			return desc, nil
		}
		if nameLen+descLen > len(data) {
			break
		}
		data = data[nameLen+descLen:]
	}
	return nil, fmt.Errorf("%w: no %q note", ErrNoQtMetadata, qtNoteName)
}

// jsonish turns decoded CBOR into JSON-like values: string-keyed maps.
func jsonish(v any) any {
	switch x := v.(type) {
	case map[any]any:
		out := map[string]any{}
		for k, e := range x {
			out[fmt.Sprint(k)] = jsonish(e)
		}
		return out
	case []any:
		for i := range x {
			x[i] = jsonish(x[i])
		}
		return x
	}
	return v
}
