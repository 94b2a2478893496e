package gitrepo

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// Entry is one path to put into an index or a tree.
type Entry struct {
	Path string
	Mode filemode.FileMode
	Hash plumbing.Hash
}

// CacheTree is a valid cache-tree (the index's TREE extension) node.
type CacheTree struct {
	Name     string
	Entries  int
	Hash     plumbing.Hash
	Children []*CacheTree
}

// WriteTrees writes the tree objects for a flat list of entries into s and
// returns the root tree's hash and the matching cache tree. Entries may come
// in any order; paths must be unique and slash-separated.
func WriteTrees(s storer.EncodedObjectStorer, entries []Entry) (plumbing.Hash, *CacheTree, error) {
	sorted := append([]Entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Path == sorted[i-1].Path {
			return plumbing.ZeroHash, nil, fmt.Errorf("duplicate path %q", sorted[i].Path)
		}
	}
	ct, err := writeTree(s, "", sorted)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	return ct.Hash, ct, nil
}

func writeTree(s storer.EncodedObjectStorer, name string, entries []Entry) (*CacheTree, error) {
	ct := &CacheTree{Name: name, Entries: len(entries)}
	var tes []object.TreeEntry
	for i := 0; i < len(entries); {
		first, _, isDir := strings.Cut(entries[i].Path, "/")
		if !isDir {
			tes = append(tes, object.TreeEntry{Name: first, Mode: entries[i].Mode, Hash: entries[i].Hash})
			i++
			continue
		}
		j := i
		var sub []Entry
		for ; j < len(entries); j++ {
			d, r, ok := strings.Cut(entries[j].Path, "/")
			if !ok || d != first {
				break
			}
			sub = append(sub, Entry{Path: r, Mode: entries[j].Mode, Hash: entries[j].Hash})
		}
		child, err := writeTree(s, first, sub)
		if err != nil {
			return nil, err
		}
		ct.Children = append(ct.Children, child)
		tes = append(tes, object.TreeEntry{Name: first, Mode: filemode.Dir, Hash: child.Hash})
		i = j
	}
	// Git orders tree entries by name, with a directory compared as name + "/".
	sort.Slice(tes, func(i, j int) bool { return treeKey(tes[i]) < treeKey(tes[j]) })
	t := &object.Tree{Entries: tes}
	obj := s.NewEncodedObject()
	if err := t.Encode(obj); err != nil {
		return nil, err
	}
	h, err := s.SetEncodedObject(obj)
	if err != nil {
		return nil, fmt.Errorf("write tree: %w", err)
	}
	ct.Hash = h
	return ct, nil
}

func treeKey(e object.TreeEntry) string {
	if e.Mode == filemode.Dir {
		return e.Name + "/"
	}
	return e.Name
}

// WriteIndex writes a version 2 index for entries to the repository, with
// stat data taken from the work tree where the file exists (so a following
// status sees it clean without hashing) and the cache tree, when given,
// as a TREE extension (as git writes after a commit). The write is atomic.
func (r *Repo) WriteIndex(entries []Entry, ct *CacheTree) error {
	sorted := append([]Entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	var buf bytes.Buffer
	buf.WriteString("DIRC")
	_ = binary.Write(&buf, binary.BigEndian, uint32(2))
	_ = binary.Write(&buf, binary.BigEndian, uint32(len(sorted)))
	for _, e := range sorted {
		var st syscall.Stat_t
		if e.Mode != filemode.Submodule && r.WorkTree != "" {
			if err := syscall.Lstat(filepath.Join(r.WorkTree, filepath.FromSlash(e.Path)), &st); err != nil {
				st = syscall.Stat_t{}
			}
		}
		start := buf.Len()
		for _, v := range []uint32{
			uint32(st.Ctim.Sec), uint32(st.Ctim.Nsec), uint32(st.Mtim.Sec), uint32(st.Mtim.Nsec),
			uint32(st.Dev), uint32(st.Ino), uint32(e.Mode), st.Uid, st.Gid, uint32(st.Size),
		} {
			_ = binary.Write(&buf, binary.BigEndian, v)
		}
		buf.Write(e.Hash[:])
		n := len(e.Path)
		if n > 0xfff {
			n = 0xfff
		}
		_ = binary.Write(&buf, binary.BigEndian, uint16(n))
		buf.WriteString(e.Path)
		pad := 8 - (buf.Len()-start)%8
		buf.Write(make([]byte, pad))
	}
	if ct != nil {
		var ext bytes.Buffer
		writeCacheTree(&ext, ct)
		buf.WriteString("TREE")
		_ = binary.Write(&buf, binary.BigEndian, uint32(ext.Len()))
		buf.Write(ext.Bytes())
	}
	sum := sha1.Sum(buf.Bytes())
	buf.Write(sum[:])
	return writeFileAtomic(filepath.Join(r.GitDir, "index"), buf.Bytes())
}

func writeCacheTree(w *bytes.Buffer, ct *CacheTree) {
	w.WriteString(ct.Name)
	w.WriteByte(0)
	w.WriteString(strconv.Itoa(ct.Entries))
	w.WriteByte(' ')
	w.WriteString(strconv.Itoa(len(ct.Children)))
	w.WriteByte('\n')
	w.Write(ct.Hash[:])
	for _, c := range ct.Children {
		writeCacheTree(w, c)
	}
}

// ErrLocked: git's lock file for a file exists: another git process is
// writing it (or one died and left it).
var ErrLocked = errors.New("locked by another git process")

// Unlocked checks that no git process holds the lock of any of the files
// of the git directory (names like "index", "HEAD", "refs/heads/main"): a
// writer checks before it changes anything, instead of failing halfway.
func (r *Repo) Unlocked(names ...string) error {
	for _, n := range names {
		lock := filepath.Join(r.GitDir, filepath.FromSlash(n)) + ".lock"
		if _, err := os.Lstat(lock); err == nil {
			return fmt.Errorf("%w: %s exists (if no git command is running, a crashed one left it: remove it)", ErrLocked, lock)
		}
	}
	return nil
}

// writeFileAtomic writes p as git does: through p.lock, created only if it
// does not exist (another git process holding it is never overwritten),
// then renamed over p.
func writeFileAtomic(p string, b []byte) error {
	tmp := p + ".lock"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s exists (if no git command is running, a crashed one left it: remove it)", ErrLocked, tmp)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// headTreeFiles flattens a tree into path -> entry, recursively.
func headTreeFiles(s storer.EncodedObjectStorer, h plumbing.Hash) (map[string]object.TreeEntry, error) {
	out := map[string]object.TreeEntry{}
	var walk func(prefix string, h plumbing.Hash) error
	walk = func(prefix string, h plumbing.Hash) error {
		t, err := object.GetTree(s, h)
		if err != nil {
			return fmt.Errorf("read tree %s: %w", h, err)
		}
		for _, e := range t.Entries {
			p := path.Join(prefix, e.Name)
			if e.Mode == filemode.Dir {
				if err := walk(p, e.Hash); err != nil {
					return err
				}
				continue
			}
			out[p] = e
		}
		return nil
	}
	return out, walk("", h)
}

// BlobHash is the git object id of data stored as a blob.
func BlobHash(data []byte) plumbing.Hash {
	h := sha1.New()
	h.Write([]byte("blob " + strconv.Itoa(len(data)) + "\x00"))
	h.Write(data)
	var out plumbing.Hash
	copy(out[:], h.Sum(nil))
	return out
}
