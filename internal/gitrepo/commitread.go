package gitrepo

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// CommitTreeOf returns the tree a commit points at. It reads just that
// object: a loose file, or one entry of a pack found through its index read
// in one piece (go-git would decode every index of the repository, with
// thousands of small reads, before the first lookup). What the fast path
// does not handle (a deltified commit, an old index format) goes through
// go-git.
func (r *Repo) CommitTreeOf(h plumbing.Hash) (plumbing.Hash, error) {
	if t, ok := r.fastCommitTree(h); ok {
		return t, nil
	}
	c, err := object.GetCommit(r.Storage(), h)
	if err != nil {
		return plumbing.ZeroHash, objErr(err)
	}
	return c.TreeHash, nil
}

func (r *Repo) fastCommitTree(h plumbing.Hash) (plumbing.Hash, bool) {
	for _, dir := range objectDirs(filepath.Join(r.GitDir, "objects")) {
		hexh := h.String()
		if b, err := os.ReadFile(filepath.Join(dir, hexh[:2], hexh[2:])); err == nil {
			return commitTreeFromLoose(b)
		}
		ents, err := os.ReadDir(filepath.Join(dir, "pack"))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".idx") {
				continue
			}
			idx := filepath.Join(dir, "pack", e.Name())
			off, found, ok := packOffset(idx, h)
			if !ok {
				return plumbing.ZeroHash, false // an index this path does not read
			}
			if found {
				return commitTreeFromPack(strings.TrimSuffix(idx, ".idx")+".pack", off)
			}
		}
	}
	return plumbing.ZeroHash, false
}

// objectDirs is an object directory and those it borrows from through
// objects/info/alternates, transitively, as git follows them.
func objectDirs(dir string) []string {
	out := []string{dir}
	seen := map[string]bool{dir: true}
	for i := 0; i < len(out) && i < 16; i++ {
		b, err := os.ReadFile(filepath.Join(out[i], "info", "alternates"))
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

// packOffset finds h in a version 2 pack index. ok is false for an index
// it cannot read (then the caller falls back).
func packOffset(idx string, h plumbing.Hash) (off int64, found, ok bool) {
	b, err := os.ReadFile(idx)
	if err != nil || len(b) < 8+256*4 || !bytes.Equal(b[:4], []byte{0xff, 't', 'O', 'c'}) || binary.BigEndian.Uint32(b[4:8]) != 2 {
		return 0, false, false
	}
	fan := b[8 : 8+256*4]
	n := int(binary.BigEndian.Uint32(fan[255*4:]))
	names := 8 + 256*4
	crcs := names + n*20
	offs := crcs + n*4
	large := offs + n*4
	if len(b) < large+40 {
		return 0, false, false
	}
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
				return int64(o), true, true
			}
			i := int(o &^ 0x80000000)
			if large+i*8+8 > len(b)-40 {
				return 0, false, false
			}
			return int64(binary.BigEndian.Uint64(b[large+i*8:])), true, true
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return 0, false, true
}

// commitTreeFromPack reads an undeltified commit at off in a pack.
func commitTreeFromPack(pack string, off int64) (plumbing.Hash, bool) {
	f, err := os.Open(pack)
	if err != nil {
		return plumbing.ZeroHash, false
	}
	defer f.Close()
	br := bufio.NewReaderSize(io.NewSectionReader(f, off, 1<<20), 512)
	c, err := br.ReadByte()
	if err != nil || (c>>4)&7 != 1 { // 1: commit; deltas fall back
		return plumbing.ZeroHash, false
	}
	for c&0x80 != 0 {
		if c, err = br.ReadByte(); err != nil {
			return plumbing.ZeroHash, false
		}
	}
	zr, err := zlib.NewReader(br)
	if err != nil {
		return plumbing.ZeroHash, false
	}
	defer zr.Close()
	return treeLine(zr)
}

// commitTreeFromLoose reads a loose object's tree line when it is a
// commit.
func commitTreeFromLoose(b []byte) (plumbing.Hash, bool) {
	zr, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		return plumbing.ZeroHash, false
	}
	defer zr.Close()
	br := bufio.NewReaderSize(zr, 256)
	hdr, err := br.ReadString(0)
	if err != nil || !strings.HasPrefix(hdr, "commit ") {
		return plumbing.ZeroHash, false
	}
	return treeLine(br)
}

// treeLine reads "tree <hex>\n", a commit's first line.
func treeLine(r io.Reader) (plumbing.Hash, bool) {
	var line [46]byte
	if _, err := io.ReadFull(r, line[:]); err != nil || string(line[:5]) != "tree " || line[45] != '\n' {
		return plumbing.ZeroHash, false
	}
	var h plumbing.Hash
	if _, err := hex.Decode(h[:], line[5:45]); err != nil {
		return plumbing.ZeroHash, false
	}
	return h, true
}
