package standin

import (
	"bytes"
	"encoding/binary"
	"os"
	"sort"
)

// Plugin describes a stand-in plugin file.
type Plugin struct {
	Name             string
	QtMajor, QtMinor int
	IID, ClassName   string
	Main             string
	Dependencies     []string
	// NoNote writes an ELF file without the Qt note (not a plugin).
	NoNote bool
	// Mode, when set, is the stand-in host's behaviour for this plugin
	// (a mode word, see HostMain), embedded as metadata "testMode".
	Mode string
}

// WritePlugin writes a minimal ELF64 shared object holding the Qt 6
// plugin metadata note: the 4-byte header and a CBOR map (2: IID, 3:
// class name, 4: the module's metadata).
func WritePlugin(path string, p Plugin) error {
	var desc bytes.Buffer
	desc.Write([]byte{1, byte(p.QtMajor), byte(p.QtMinor), 0})
	meta := map[string]any{"name": p.Name, "version": "0.1.0", "type": "core"}
	if p.Main != "" {
		meta["main"] = p.Main
	}
	deps := []any{}
	for _, d := range p.Dependencies {
		deps = append(deps, d)
	}
	meta["dependencies"] = deps
	if p.Mode != "" {
		meta["testMode"] = p.Mode
	}
	cborMap(&desc, []kv{{int64(2), p.IID}, {int64(3), p.ClassName}, {int64(4), meta}})

	var note bytes.Buffer
	name := []byte("qt-project!\x00")
	le := binary.LittleEndian
	_ = binary.Write(&note, le, uint32(len(name)))
	_ = binary.Write(&note, le, uint32(desc.Len()))
	_ = binary.Write(&note, le, uint32(0x74510001))
	note.Write(name)
	note.Write(desc.Bytes())
	for note.Len()%4 != 0 {
		note.WriteByte(0)
	}

	shstr := []byte("\x00.shstrtab\x00.note.qt.metadata\x00")
	type section struct {
		name, typ uint32
		data      []byte
	}
	secs := []section{{0, 0, nil}, {1, 3, shstr}}
	if !p.NoNote {
		secs = append(secs, section{11, 7, note.Bytes()}) // SHT_NOTE
	}
	var out bytes.Buffer
	const ehsize, shentsize = 64, 64
	offsets := make([]uint64, len(secs))
	off := uint64(ehsize)
	for i, s := range secs {
		offsets[i] = off
		off += uint64(len(s.data))
		off = (off + 7) &^ 7
	}
	shoff := off
	// ELF header.
	out.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	for _, v := range []any{uint16(3), uint16(62), uint32(1), uint64(0), uint64(0), shoff, uint32(0),
		uint16(ehsize), uint16(0), uint16(0), uint16(shentsize), uint16(len(secs)), uint16(1)} {
		_ = binary.Write(&out, le, v)
	}
	for i, s := range secs {
		for uint64(out.Len()) < offsets[i] {
			out.WriteByte(0)
		}
		out.Write(s.data)
	}
	for uint64(out.Len()) < shoff {
		out.WriteByte(0)
	}
	for i, s := range secs {
		size := uint64(len(s.data))
		offset := offsets[i]
		if i == 0 {
			offset = 0
		}
		align := uint64(1)
		if s.typ == 7 {
			align = 4
		}
		for _, v := range []any{s.name, s.typ, uint64(0), uint64(0), offset, size, uint32(0), uint32(0), align, uint64(0)} {
			_ = binary.Write(&out, le, v)
		}
	}
	return os.WriteFile(path, out.Bytes(), 0o755)
}

type kv struct {
	k any
	v any
}

func cborHead(b *bytes.Buffer, major byte, n uint64) {
	switch {
	case n < 24:
		b.WriteByte(major<<5 | byte(n))
	case n < 1<<8:
		b.Write([]byte{major<<5 | 24, byte(n)})
	case n < 1<<16:
		b.WriteByte(major<<5 | 25)
		_ = binary.Write(b, binary.BigEndian, uint16(n))
	default:
		b.WriteByte(major<<5 | 26)
		_ = binary.Write(b, binary.BigEndian, uint32(n))
	}
}

func cborMap(b *bytes.Buffer, kvs []kv) {
	cborHead(b, 5, uint64(len(kvs)))
	for _, e := range kvs {
		cborValue(b, e.k)
		cborValue(b, e.v)
	}
}

func cborValue(b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case int64:
		if x >= 0 {
			cborHead(b, 0, uint64(x))
		} else {
			cborHead(b, 1, uint64(-1-x))
		}
	case string:
		cborHead(b, 3, uint64(len(x)))
		b.WriteString(x)
	case []any:
		cborHead(b, 4, uint64(len(x)))
		for _, e := range x {
			cborValue(b, e)
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var kvs []kv
		for _, k := range keys {
			kvs = append(kvs, kv{k, x[k]})
		}
		cborMap(b, kvs)
	case bool:
		if x {
			b.WriteByte(0xf5)
		} else {
			b.WriteByte(0xf4)
		}
	}
}
