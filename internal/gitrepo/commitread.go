package gitrepo

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// A small object reader for what the hot paths need (commits: their tree,
// parents, times and subject): a loose file, or one pack entry found
// through the pack's index, read once per process in one piece, with
// deltas resolved. go-git decodes every index of a repository with
// thousands of small reads before its first lookup and builds a reverse
// map of all offsets to resolve one delta, which on real-sized packs cost
// more than the work itself. Anything this reader does not handle goes
// through go-git.

// Object types in a pack.
const (
	objCommit   = 1
	objTree     = 2
	objBlob     = 3
	objTag      = 4
	objOfsDelta = 6
	objRefDelta = 7
)

// maxObject bounds an object this reader inflates (commits are small; a
// larger one goes through go-git).
const maxObject = 16 << 20

type packIndex struct {
	pack string
	idx  []byte
	n    int
}

type odb struct {
	dirs      []string
	packsOnce sync.Once
	packs     []*packIndex
}

func (r *Repo) objects() *odb {
	r.odbOnce.Do(func() {
		r.odbCache = &odb{dirs: objectDirs(filepath.Join(r.GitDir, "objects"))}
	})
	return r.odbCache
}

// packIndexes reads the pack indexes, once, when a lookup first needs
// them (an object found loose needs none).
func (o *odb) packIndexes() []*packIndex {
	o.packsOnce.Do(func() {
		for _, dir := range o.dirs {
			ents, err := os.ReadDir(filepath.Join(dir, "pack"))
			if err != nil {
				continue
			}
			for _, e := range ents {
				if !strings.HasSuffix(e.Name(), ".idx") {
					continue
				}
				p := filepath.Join(dir, "pack", e.Name())
				b, err := mapFile(p)
				if err != nil || len(b) < 8+256*4 || !bytes.Equal(b[:4], []byte{0xff, 't', 'O', 'c'}) || binary.BigEndian.Uint32(b[4:8]) != 2 {
					continue // an index this reader does not read: go-git will
				}
				n := int(binary.BigEndian.Uint32(b[8+255*4:]))
				if len(b) < 8+256*4+n*28+40 {
					continue
				}
				o.packs = append(o.packs, &packIndex{pack: strings.TrimSuffix(p, ".idx") + ".pack", idx: b, n: n})
			}
		}
	})
	return o.packs
}

// mapped holds the pack indexes mapped so far, by path, size and
// modification time: a long-running process (watch) that opens the same
// repositories every cycle maps each index once, not once per cycle. Pack
// files never change in place (git writes new ones), so an entry stays
// valid for as long as its file is there.
var mapped = struct {
	sync.Mutex
	m map[string][]byte
}{m: map[string][]byte{}}

// mapFile maps a file read-only (a pack index: a lookup touches a few of
// its pages, not all of it); where mapping fails it is read.
func mapFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s\x00%d\x00%d", p, st.Size(), st.ModTime().UnixNano())
	mapped.Lock()
	defer mapped.Unlock()
	if b, ok := mapped.m[key]; ok {
		return b, nil
	}
	if st.Size() == 0 || st.Size() > 1<<32 {
		return io.ReadAll(f)
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return io.ReadAll(f)
	}
	mapped.m[key] = b
	return b, nil
}

// objectDirs is an object directory and those it borrows from through
// objects/info/alternates, transitively, as git follows them.
func objectDirs(dir string) []string {
	out := []string{dir}
	seen := map[string]bool{dir: true}
	for i := 0; i < len(out) && i < 16; i++ {
		b, err := readFile(filepath.Join(out[i], "info", "alternates"))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			l = strings.TrimSpace(l)
			if l == "" || l[0] == '#' {
				continue
			}
			if !filepath.IsAbs(l) {
				l = filepath.Join(out[i], l)
			}
			l = filepath.Clean(l)
			if !seen[l] {
				seen[l] = true
				out = append(out, l)
			}
		}
	}
	return out
}

// offset finds h in the index: its offset in the pack.
func (p *packIndex) offset(h plumbing.Hash) (int64, bool) {
	b := p.idx
	fan := b[8 : 8+256*4]
	names := 8 + 256*4
	offs := names + p.n*24
	large := offs + p.n*4
	lo := 0
	if h[0] > 0 {
		lo = int(binary.BigEndian.Uint32(fan[(int(h[0])-1)*4:]))
	}
	hi := int(binary.BigEndian.Uint32(fan[int(h[0])*4:]))
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch c := bytes.Compare(b[names+m*20:names+m*20+20], h[:]); {
		case c == 0:
			o := binary.BigEndian.Uint32(b[offs+m*4:])
			if o&0x80000000 == 0 {
				return int64(o), true
			}
			i := int(o &^ 0x80000000)
			if large+i*8+8 > len(b)-40 {
				return 0, false
			}
			return int64(binary.BigEndian.Uint64(b[large+i*8:])), true
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return 0, false
}

// read returns an object's type and content; ok is false when this reader
// cannot (go-git then does).
func (o *odb) read(h plumbing.Hash) (int, []byte, bool) {
	hexh := h.String()
	for _, dir := range o.dirs {
		if b, err := readFile(filepath.Join(dir, hexh[:2], hexh[2:])); err == nil {
			return readLoose(b)
		}
	}
	for _, p := range o.packIndexes() {
		if off, ok := p.offset(h); ok {
			f, err := os.Open(p.pack)
			if err != nil {
				return 0, nil, false
			}
			defer f.Close()
			return o.readPacked(p, f, off, 0)
		}
	}
	return 0, nil, false
}

func readLoose(b []byte) (int, []byte, bool) {
	zr, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		return 0, nil, false
	}
	defer zr.Close()
	data, err := io.ReadAll(io.LimitReader(zr, maxObject+64))
	if err != nil || len(data) > maxObject {
		return 0, nil, false
	}
	hdr, body, ok := bytes.Cut(data, []byte{0})
	if !ok {
		return 0, nil, false
	}
	kind, size, ok := strings.Cut(string(hdr), " ")
	n, err := strconv.Atoi(size)
	if !ok || err != nil || n != len(body) {
		return 0, nil, false
	}
	t := map[string]int{"commit": objCommit, "tree": objTree, "blob": objBlob, "tag": objTag}[kind]
	return t, body, t != 0
}

// readPacked reads the entry at off, resolving deltas (to a bounded depth,
// as git bounds delta chains).
func (o *odb) readPacked(p *packIndex, f *os.File, off int64, depth int) (int, []byte, bool) {
	if depth > 64 {
		return 0, nil, false
	}
	br := bufio.NewReaderSize(io.NewSectionReader(f, off, 1<<62), 4096)
	c, err := br.ReadByte()
	if err != nil {
		return 0, nil, false
	}
	typ := int(c>>4) & 7
	size := int64(c & 0x0f)
	for shift := 4; c&0x80 != 0; shift += 7 {
		if c, err = br.ReadByte(); err != nil || shift > 56 {
			return 0, nil, false
		}
		size |= int64(c&0x7f) << shift
	}
	var baseType int
	var base []byte
	switch typ {
	case objCommit, objTree, objBlob, objTag:
	case objOfsDelta:
		c, err := br.ReadByte()
		if err != nil {
			return 0, nil, false
		}
		rel := int64(c & 0x7f)
		for c&0x80 != 0 {
			if c, err = br.ReadByte(); err != nil {
				return 0, nil, false
			}
			rel = ((rel + 1) << 7) | int64(c&0x7f)
		}
		if rel <= 0 || rel > off {
			return 0, nil, false
		}
		var ok bool
		if baseType, base, ok = o.readPacked(p, f, off-rel, depth+1); !ok {
			return 0, nil, false
		}
	case objRefDelta:
		var bh plumbing.Hash
		if _, err := io.ReadFull(br, bh[:]); err != nil {
			return 0, nil, false
		}
		var ok bool
		if baseType, base, ok = o.read(bh); !ok {
			return 0, nil, false
		}
	default:
		return 0, nil, false
	}
	if size > maxObject {
		return 0, nil, false
	}
	zr, err := zlib.NewReader(br)
	if err != nil {
		return 0, nil, false
	}
	defer zr.Close()
	data := make([]byte, size)
	if _, err := io.ReadFull(zr, data); err != nil {
		return 0, nil, false
	}
	if base == nil {
		return typ, data, true
	}
	out, ok := applyDelta(base, data)
	return baseType, out, ok
}

// applyDelta applies a git delta to its base.
func applyDelta(base, delta []byte) ([]byte, bool) {
	varint := func() (int, bool) {
		n, shift := 0, 0
		for {
			if len(delta) == 0 || shift > 56 {
				return 0, false
			}
			c := delta[0]
			delta = delta[1:]
			n |= int(c&0x7f) << shift
			shift += 7
			if c&0x80 == 0 {
				return n, true
			}
		}
	}
	src, ok := varint()
	if !ok || src != len(base) {
		return nil, false
	}
	dst, ok := varint()
	if !ok || dst > maxObject {
		return nil, false
	}
	out := make([]byte, 0, dst)
	for len(delta) > 0 {
		c := delta[0]
		delta = delta[1:]
		if c&0x80 != 0 {
			var off, n int
			for i := 0; i < 4; i++ {
				if c&(1<<i) != 0 {
					if len(delta) == 0 {
						return nil, false
					}
					off |= int(delta[0]) << (8 * i)
					delta = delta[1:]
				}
			}
			for i := 0; i < 3; i++ {
				if c&(0x10<<i) != 0 {
					if len(delta) == 0 {
						return nil, false
					}
					n |= int(delta[0]) << (8 * i)
					delta = delta[1:]
				}
			}
			if n == 0 {
				n = 0x10000
			}
			if off+n > len(base) || off < 0 {
				return nil, false
			}
			out = append(out, base[off:off+n]...)
		} else if c != 0 {
			if int(c) > len(delta) {
				return nil, false
			}
			out = append(out, delta[:c]...)
			delta = delta[c:]
		} else {
			return nil, false
		}
	}
	return out, len(out) == dst
}

// commitData is what the walks need of a commit.
type commitData struct {
	Tree    plumbing.Hash
	Parents []plumbing.Hash
	Author  string
	Time    int64 // committer time
	Subject string
}

// ErrNotCommit: the object is not a commit.
var ErrNotCommit = errors.New("not a commit")

// readCommit reads a commit through the small reader, else go-git.
func (r *Repo) readCommit(h plumbing.Hash) (*commitData, error) {
	if typ, b, ok := r.objects().read(h); ok {
		if typ != objCommit {
			return nil, fmt.Errorf("%s: %w", h, ErrNotCommit)
		}
		if c, ok := parseCommit(b); ok {
			return c, nil
		}
	}
	c, err := object.GetCommit(r.Storage(), h)
	if err != nil {
		return nil, fmt.Errorf("read commit %s in %q: %w", h, r.GitDir, objErr(err))
	}
	subject, _, _ := strings.Cut(strings.TrimSpace(c.Message), "\n")
	return &commitData{Tree: c.TreeHash, Parents: c.ParentHashes, Author: c.Author.Name, Time: c.Committer.When.Unix(), Subject: subject}, nil
}

// parseCommit reads a commit object's headers and subject.
func parseCommit(b []byte) (*commitData, bool) {
	c := &commitData{}
	haveTree, haveTime := false, false
	for len(b) > 0 {
		line, rest, _ := bytes.Cut(b, []byte{'\n'})
		b = rest
		if len(line) == 0 {
			break // the message follows
		}
		k, v, _ := bytes.Cut(line, []byte{' '})
		switch string(k) {
		case "tree", "parent":
			var h plumbing.Hash
			if len(v) != 40 {
				return nil, false
			}
			if _, err := hex.Decode(h[:], v); err != nil {
				return nil, false
			}
			if string(k) == "tree" {
				c.Tree, haveTree = h, true
			} else {
				c.Parents = append(c.Parents, h)
			}
		case "author":
			if i := bytes.LastIndex(v, []byte(" <")); i >= 0 {
				c.Author = string(v[:i])
			}
		case "committer":
			// "Name <email> 1700000000 +0000"
			f := bytes.Fields(v)
			if len(f) < 2 {
				return nil, false
			}
			t, err := strconv.ParseInt(string(f[len(f)-2]), 10, 64)
			if err != nil {
				return nil, false
			}
			c.Time, haveTime = t, true
		}
	}
	msg := strings.TrimSpace(string(b))
	c.Subject, _, _ = strings.Cut(msg, "\n")
	return c, haveTree && haveTime
}

// CommitTreeOf returns the tree a commit points at.
func (r *Repo) CommitTreeOf(h plumbing.Hash) (plumbing.Hash, error) {
	c, err := r.readCommit(h)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return c.Tree, nil
}

// treeEntries reads a tree through the small reader, else go-git.
func (r *Repo) treeEntries(h plumbing.Hash) ([]object.TreeEntry, error) {
	if typ, b, ok := r.objects().read(h); ok && typ == objTree {
		if ents, ok := parseTree(b); ok {
			return ents, nil
		}
	}
	t, err := object.GetTree(r.Storage(), h)
	if err != nil {
		return nil, fmt.Errorf("read tree %s: %w", h, objErr(err))
	}
	return t.Entries, nil
}

// parseTree reads a tree object's entries ("<mode> <name>\0<hash>").
func parseTree(b []byte) ([]object.TreeEntry, bool) {
	var out []object.TreeEntry
	for len(b) > 0 {
		sp := bytes.IndexByte(b, ' ')
		if sp < 0 {
			return nil, false
		}
		mode, err := filemode.New(string(b[:sp]))
		if err != nil {
			return nil, false
		}
		b = b[sp+1:]
		nul := bytes.IndexByte(b, 0)
		if nul < 0 || len(b) < nul+21 {
			return nil, false
		}
		e := object.TreeEntry{Name: string(b[:nul]), Mode: mode}
		copy(e.Hash[:], b[nul+1:nul+21])
		out = append(out, e)
		b = b[nul+21:]
	}
	return out, true
}

// blobReader opens a blob through the small reader, else go-git (which
// streams large ones).
func (r *Repo) blobReader(h plumbing.Hash) (io.ReadCloser, int64, error) {
	if typ, b, ok := r.objects().read(h); ok && typ == objBlob {
		return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
	}
	blob, err := object.GetBlob(r.Storage(), h)
	if err != nil {
		return nil, 0, objErr(err)
	}
	rd, err := blob.Reader()
	if err != nil {
		return nil, 0, err
	}
	return rd, blob.Size, nil
}
