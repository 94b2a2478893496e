package gitrepo

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
)

// IndexEntry is one entry of the index, with the stat data git recorded.
type IndexEntry struct {
	Name  string
	Hash  plumbing.Hash
	Mode  filemode.FileMode
	Stage int
	// Stat data, truncated to 32 bits as git stores it.
	CtimeSec, CtimeNsec, MtimeSec, MtimeNsec uint32
	Dev, Ino, UID, GID, Size                 uint32
	SkipWorktree, IntentToAdd                bool
}

// Index is a decoded index file.
type Index struct {
	Version int
	Entries []IndexEntry
	// RootTree is the cache tree's root hash, when the TREE extension holds a
	// valid root; zero otherwise.
	RootTree plumbing.Hash
	// ModTime is when the index was written: entries modified at or after it
	// are "racily clean" and must be content-checked.
	ModTime time.Time
}

// ReadIndex decodes the repository's index (versions 2 to 4). A missing index
// is an empty one (a fresh repository). The checksum is verified, and a
// mandatory extension this decoder does not know (split index, sparse index)
// is an error: a status computed without it would be wrong.
func (r *Repo) ReadIndex() (*Index, error) {
	p := filepath.Join(r.GitDir, "index")
	b, err := readFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return &Index{Version: 2}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	idx, err := DecodeIndex(b)
	if err != nil {
		return nil, fmt.Errorf("decode index %q: %w: %w", p, ErrCorrupt, err)
	}
	idx.ModTime = fi.ModTime()
	return idx, nil
}

// DecodeIndex parses index file content.
func DecodeIndex(b []byte) (*Index, error) {
	if len(b) < 12+sha1.Size || string(b[:4]) != "DIRC" {
		return nil, errors.New("not an index file")
	}
	body, sum := b[:len(b)-sha1.Size], b[len(b)-sha1.Size:]
	if got := sha1.Sum(body); !bytes.Equal(got[:], sum) {
		return nil, errors.New("invalid checksum")
	}
	idx := &Index{Version: int(binary.BigEndian.Uint32(b[4:8]))}
	if idx.Version < 2 || idx.Version > 4 {
		return nil, fmt.Errorf("unsupported index version %d", idx.Version)
	}
	n := int(binary.BigEndian.Uint32(b[8:12]))
	if n > len(body)/40 {
		return nil, fmt.Errorf("entry count %d exceeds the file", n)
	}
	idx.Entries = make([]IndexEntry, n)
	off := 12
	prev := ""
	for i := range n {
		start := off
		if off+62 > len(body) {
			return nil, fmt.Errorf("entry %d: truncated", i)
		}
		u := func(k int) uint32 { return binary.BigEndian.Uint32(body[off+4*k:]) }
		e := &idx.Entries[i]
		e.CtimeSec, e.CtimeNsec, e.MtimeSec, e.MtimeNsec = u(0), u(1), u(2), u(3)
		e.Dev, e.Ino, e.Mode, e.UID, e.GID, e.Size = u(4), u(5), filemode.FileMode(u(6)), u(7), u(8), u(9)
		copy(e.Hash[:], body[off+40:off+60])
		flags := binary.BigEndian.Uint16(body[off+60:])
		e.Stage = int(flags>>12) & 3
		off += 62
		if flags&0x4000 != 0 {
			if idx.Version < 3 || off+2 > len(body) {
				return nil, fmt.Errorf("entry %d: bad extended flags", i)
			}
			ext := binary.BigEndian.Uint16(body[off:])
			e.SkipWorktree = ext&0x4000 != 0
			e.IntentToAdd = ext&0x2000 != 0
			off += 2
		}
		if idx.Version == 4 {
			strip, w := varint(body[off:])
			if w == 0 || strip > len(prev) {
				return nil, fmt.Errorf("entry %d: bad path prefix", i)
			}
			off += w
			end := bytes.IndexByte(body[off:], 0)
			if end < 0 {
				return nil, fmt.Errorf("entry %d: unterminated path", i)
			}
			e.Name = prev[:len(prev)-strip] + string(body[off:off+end])
			off += end + 1
		} else {
			end := bytes.IndexByte(body[off:], 0)
			if end < 0 {
				return nil, fmt.Errorf("entry %d: unterminated path", i)
			}
			e.Name = string(body[off : off+end])
			// Entries are padded with 1 to 8 NULs to a multiple of 8 bytes.
			off = start + (off-start+end+8)&^7
			if off > len(body) {
				return nil, fmt.Errorf("entry %d: truncated padding", i)
			}
		}
		prev = e.Name
	}
	for off < len(body) {
		if off+8 > len(body) {
			return nil, errors.New("truncated extension header")
		}
		sig := string(body[off : off+4])
		size := int(binary.BigEndian.Uint32(body[off+4:]))
		off += 8
		if size > len(body)-off {
			return nil, fmt.Errorf("extension %q: truncated", sig)
		}
		data := body[off : off+size]
		off += size
		switch {
		case sig == "TREE":
			idx.RootTree = rootTree(data)
		case sig[0] >= 'A' && sig[0] <= 'Z':
			// Optional extensions (untracked cache, resolve undo, ...) are
			// caches or history: safe to skip.
		default:
			return nil, fmt.Errorf("mandatory index extension %q (split or sparse index) is not supported", sig)
		}
	}
	return idx, nil
}

// rootTree returns the root's hash from a TREE extension, if valid.
func rootTree(data []byte) plumbing.Hash {
	// "<path>\0<entries> <subtrees>\n<sha1>" with an empty path for the root.
	if len(data) < 1 || data[0] != 0 {
		return plumbing.ZeroHash
	}
	nl := bytes.IndexByte(data, '\n')
	if nl < 0 {
		return plumbing.ZeroHash
	}
	sp := bytes.IndexByte(data[1:nl], ' ')
	if sp < 0 {
		return plumbing.ZeroHash
	}
	count, err := strconv.Atoi(string(data[1 : 1+sp]))
	if err != nil || count < 0 || len(data) < nl+1+sha1.Size {
		return plumbing.ZeroHash
	}
	var h plumbing.Hash
	copy(h[:], data[nl+1:nl+1+sha1.Size])
	return h
}

// varint decodes git's offset varint (as in index v4 path compression).
func varint(b []byte) (int, int) {
	if len(b) == 0 {
		return 0, 0
	}
	c := b[0]
	val := int(c & 127)
	i := 1
	for c&128 != 0 {
		if i >= len(b) || val > 1<<40 {
			return 0, 0
		}
		c = b[i]
		i++
		val = ((val + 1) << 7) | int(c&127)
	}
	return val, i
}
