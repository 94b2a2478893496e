// Package nar writes Nix ARchives (NAR), the serialisation whose sha256 is a
// store path's narHash. Only the writer is here: lambda-check computes
// hashes, it never unpacks.
package nar

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
)

// Writer streams a NAR. Call methods in the order of the NAR grammar:
// a single File or Symlink, or StartDir, then for each entry (sorted by name
// bytewise) Entry(name) followed by that entry's node, then EndDir.
type Writer struct {
	w     io.Writer
	err   error
	depth []bool // per open directory: an entry is open
}

// NewWriter starts a NAR on w.
func NewWriter(w io.Writer) *Writer {
	nw := &Writer{w: w}
	nw.str("nix-archive-1")
	return nw
}

var zero [8]byte

func (nw *Writer) raw(b []byte) {
	if nw.err != nil {
		return
	}
	_, nw.err = nw.w.Write(b)
}

func (nw *Writer) str(s string) {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
	nw.raw(n[:])
	nw.raw([]byte(s))
	if pad := len(s) % 8; pad != 0 {
		nw.raw(zero[:8-pad])
	}
}

func (nw *Writer) closeEntry() {
	if n := len(nw.depth); n > 0 && nw.depth[n-1] {
		nw.str(")")
		nw.depth[n-1] = false
	}
}

// File writes a regular file of size bytes read from r.
func (nw *Writer) File(executable bool, size int64, r io.Reader) {
	nw.str("(")
	nw.str("type")
	nw.str("regular")
	if executable {
		nw.str("executable")
		nw.str("")
	}
	nw.str("contents")
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(size))
	nw.raw(n[:])
	if nw.err == nil {
		c, err := io.CopyN(nw.w, r, size)
		if err != nil {
			nw.err = fmt.Errorf("file contents: %w (copied %d of %d bytes)", err, c, size)
		}
	}
	if pad := size % 8; pad != 0 {
		nw.raw(zero[:8-pad])
	}
	nw.str(")")
}

// Symlink writes a symbolic link.
func (nw *Writer) Symlink(target string) {
	nw.str("(")
	nw.str("type")
	nw.str("symlink")
	nw.str("target")
	nw.str(target)
	nw.str(")")
}

// StartDir opens a directory node.
func (nw *Writer) StartDir() {
	nw.str("(")
	nw.str("type")
	nw.str("directory")
	nw.depth = append(nw.depth, false)
}

// Entry opens the next directory entry; its node must follow.
func (nw *Writer) Entry(name string) {
	nw.closeEntry()
	nw.str("entry")
	nw.str("(")
	nw.str("name")
	nw.str(name)
	nw.str("node")
	nw.depth[len(nw.depth)-1] = true
}

// EndDir closes the innermost directory.
func (nw *Writer) EndDir() {
	nw.closeEntry()
	nw.depth = nw.depth[:len(nw.depth)-1]
	nw.str(")")
}

// Err returns the first write error.
func (nw *Writer) Err() error { return nw.err }

// Hasher is a NAR writer into sha256 that yields the SRI narHash.
type Hasher struct {
	*Writer
	h hash.Hash
}

// NewHasher starts a NAR whose sha256 is computed as it is written.
func NewHasher() *Hasher {
	h := sha256.New()
	return &Hasher{Writer: NewWriter(h), h: h}
}

// SRI returns the hash in SRI form, "sha256-<base64>", as flake.lock has it.
func (hs *Hasher) SRI() (string, error) {
	if hs.err != nil {
		return "", hs.err
	}
	return "sha256-" + base64.StdEncoding.EncodeToString(hs.h.Sum(nil)), nil
}
