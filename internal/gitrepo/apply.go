package gitrepo

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// IndexBytes returns the index file as it is (nil when there is none), to
// put it back with RestoreIndex.
func (r *Repo) IndexBytes() ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(r.GitDir, "index"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// RestoreIndex puts back an index saved with IndexBytes.
func (r *Repo) RestoreIndex(b []byte) error {
	p := filepath.Join(r.GitDir, "index")
	if b == nil {
		err := os.Remove(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return writeFileAtomic(p, b)
}

// UpdateIndex replaces (or adds) the given entries in the index and keeps
// every other entry exactly, stat data included, so that nothing else
// changes state: a file modified in the work tree stays modified. The
// updated entries get the work tree's stat data (none for a gitlink). The
// cache tree is dropped (git recomputes it); entries git marks
// intent-to-add or skip-worktree are refused rather than lost.
func (r *Repo) UpdateIndex(updates []Entry) error {
	idx, err := r.ReadIndex()
	if err != nil {
		return err
	}
	byPath := map[string]Entry{}
	for _, u := range updates {
		byPath[u.Path] = u
	}
	var out []IndexEntry
	for _, e := range idx.Entries {
		if e.IntentToAdd || e.SkipWorktree {
			return fmt.Errorf("index entry %s is intent-to-add or skip-worktree: not rewritten", e.Name)
		}
		if _, ok := byPath[e.Name]; ok {
			if e.Stage != 0 {
				return fmt.Errorf("index entry %s is unmerged", e.Name)
			}
			continue // replaced below
		}
		out = append(out, e)
	}
	for _, u := range updates {
		ne := IndexEntry{Name: u.Path, Hash: u.Hash, Mode: u.Mode}
		if u.Mode != filemode.Submodule && r.WorkTree != "" {
			var st syscall.Stat_t
			if err := syscall.Lstat(filepath.Join(r.WorkTree, filepath.FromSlash(u.Path)), &st); err == nil {
				ne.CtimeSec, ne.CtimeNsec = uint32(st.Ctim.Sec), uint32(st.Ctim.Nsec)
				ne.MtimeSec, ne.MtimeNsec = uint32(st.Mtim.Sec), uint32(st.Mtim.Nsec)
				ne.Dev, ne.Ino, ne.UID, ne.GID, ne.Size = uint32(st.Dev), uint32(st.Ino), st.Uid, st.Gid, uint32(st.Size)
			}
		}
		out = append(out, ne)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Stage < out[j].Stage
	})
	var buf bytes.Buffer
	buf.WriteString("DIRC")
	_ = binary.Write(&buf, binary.BigEndian, uint32(2))
	_ = binary.Write(&buf, binary.BigEndian, uint32(len(out)))
	for _, e := range out {
		start := buf.Len()
		for _, v := range []uint32{e.CtimeSec, e.CtimeNsec, e.MtimeSec, e.MtimeNsec, e.Dev, e.Ino, uint32(e.Mode), e.UID, e.GID, e.Size} {
			_ = binary.Write(&buf, binary.BigEndian, v)
		}
		buf.Write(e.Hash[:])
		n := len(e.Name)
		if n > 0xfff {
			n = 0xfff
		}
		_ = binary.Write(&buf, binary.BigEndian, uint16(n)|uint16(e.Stage)<<12)
		buf.WriteString(e.Name)
		buf.Write(make([]byte, 8-(buf.Len()-start)%8))
	}
	sum := sha1.Sum(buf.Bytes())
	buf.Write(sum[:])
	return writeFileAtomic(filepath.Join(r.GitDir, "index"), buf.Bytes())
}

// Checkout moves a repository's work tree, index and HEAD (detached) to a
// commit, as "git checkout --detach" does; with force, local changes are
// overwritten (used to put a checkout back). Callers check that the
// checkout is clean first.
func (r *Repo) Checkout(commit plumbing.Hash, force bool) error {
	if r.WorkTree == "" {
		return errors.New("checkout: a bare repository has no work tree")
	}
	// Our storage, which follows alternates (go-git's own opening does
	// not follow absolute ones), with the work tree.
	g, err := git.Open(r.Storage(), osfs.New(r.WorkTree))
	if err != nil {
		return fmt.Errorf("open %q: %w", r.WorkTree, err)
	}
	wt, err := g.Worktree()
	if err != nil {
		return err
	}
	if err := wt.Checkout(&git.CheckoutOptions{Hash: commit, Force: force}); err != nil {
		return fmt.Errorf("checkout %s in %q: %w", commit, r.WorkTree, err)
	}
	return nil
}

// CommitTree writes a commit of tree on parent and moves HEAD's branch (or
// a detached HEAD) to it, only if HEAD is still at parent.
func (r *Repo) CommitTree(tree, parent plumbing.Hash, author, committer Signature, message string) (plumbing.Hash, error) {
	head, err := r.Head()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if head.Hash != parent {
		return plumbing.ZeroHash, fmt.Errorf("HEAD moved to %s", head.Hash)
	}
	c, err := r.WriteCommit(CommitSpec{Tree: tree, Parents: []plumbing.Hash{parent}, Author: author, Committer: committer, Message: message})
	if err != nil {
		return plumbing.ZeroHash, err
	}
	ref := "HEAD"
	if head.Branch != "" {
		ref = "refs/heads/" + head.Branch
	}
	if err := r.SetRef(ref, c); err != nil {
		return plumbing.ZeroHash, err
	}
	return c, nil
}

// TreeOf returns a commit's tree.
func (r *Repo) TreeOf(commit plumbing.Hash) (plumbing.Hash, error) {
	c, err := object.GetCommit(r.Storage(), commit)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return c.TreeHash, nil
}

// WriteChange stores a Change's objects (the edited blobs and the trees)
// in the repository, so its tree can be committed.
func (r *Repo) WriteChange(ch *Change) (plumbing.Hash, error) {
	c, err := object.GetCommit(r.Storage(), ch.Base)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	files, err := headTreeFiles(r.Storage(), c.TreeHash)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	for _, f := range ch.Files {
		if f.NewMode != filemode.Submodule {
			if _, err := r.WriteBlob(f.New); err != nil {
				return plumbing.ZeroHash, err
			}
		}
		files[f.Path] = object.TreeEntry{Name: filepath.Base(f.Path), Mode: f.NewMode, Hash: f.NewHash}
	}
	entries := make([]Entry, 0, len(files))
	for p, te := range files {
		entries = append(entries, Entry{Path: p, Mode: te.Mode, Hash: te.Hash})
	}
	tree, _, err := r.WriteTrees(entries)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if tree != ch.Tree {
		return plumbing.ZeroHash, fmt.Errorf("written tree %s is not the change's %s", tree, ch.Tree)
	}
	return tree, nil
}
