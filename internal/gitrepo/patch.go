package gitrepo

import (
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	fdiff "github.com/go-git/go-git/v5/plumbing/format/diff"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/go-git/go-git/v5/utils/diff"
	"github.com/sergi/go-diff/diffmatchpatch"
)

// Edit replaces one path of a tree: a blob (Content set) or a gitlink
// (Mode filemode.Submodule, Hash the commit).
type Edit struct {
	Path    string
	Mode    filemode.FileMode
	Hash    plumbing.Hash // for a gitlink; computed for a blob
	Content []byte
}

// Change is a commit built from a base commit and edits, without writing
// anything to the repository: its objects are hashed in memory.
type Change struct {
	Base   plumbing.Hash
	Tree   plumbing.Hash
	Commit plumbing.Hash
	// Files are the edited paths before and after, sorted by path.
	Files []FileEdit
}

// FileEdit is one path of a Change.
type FileEdit struct {
	Path             string
	OldMode, NewMode filemode.FileMode
	OldHash, NewHash plumbing.Hash
	Old, New         []byte // contents of blobs (nil for a gitlink)
}

// BuildChange applies edits to base's tree and makes the commit (parent
// base) with the author and message given, hashing every object in memory:
// the repository's objects, index and work tree are not touched.
func (r *Repo) BuildChange(base plumbing.Hash, edits []Edit, author Signature, message string) (*Change, error) {
	c, err := object.GetCommit(r.Storage(), base)
	if err != nil {
		return nil, fmt.Errorf("read commit %s in %q: %w", base, r.GitDir, err)
	}
	files, err := headTreeFiles(r.Storage(), c.TreeHash)
	if err != nil {
		return nil, err
	}
	mem := memory.NewStorage()
	ch := &Change{Base: base}
	for _, e := range edits {
		old, ok := files[e.Path]
		if !ok {
			return nil, fmt.Errorf("%s is not in %s's tree", e.Path, base)
		}
		fe := FileEdit{Path: e.Path, OldMode: old.Mode, OldHash: old.Hash, NewMode: e.Mode}
		if e.Mode == filemode.Submodule {
			fe.NewHash = e.Hash
		} else {
			if old.Mode != filemode.Submodule {
				b, err := r.readBlob(old.Hash)
				if err != nil {
					return nil, err
				}
				fe.Old = b
			}
			fe.New = e.Content
			fe.NewHash = BlobHash(e.Content)
		}
		files[e.Path] = object.TreeEntry{Name: path.Base(e.Path), Mode: e.Mode, Hash: fe.NewHash}
		ch.Files = append(ch.Files, fe)
	}
	sort.Slice(ch.Files, func(i, j int) bool { return ch.Files[i].Path < ch.Files[j].Path })
	entries := make([]Entry, 0, len(files))
	for p, te := range files {
		entries = append(entries, Entry{Path: p, Mode: te.Mode, Hash: te.Hash})
	}
	tree, _, err := WriteTrees(mem, entries)
	if err != nil {
		return nil, err
	}
	ch.Tree = tree
	commit := &object.Commit{
		Author:    object.Signature{Name: author.Name, Email: author.Email, When: author.When},
		Committer: object.Signature{Name: author.Name, Email: author.Email, When: author.When},
		Message:   message, TreeHash: tree, ParentHashes: []plumbing.Hash{base},
	}
	obj := mem.NewEncodedObject()
	if err := commit.Encode(obj); err != nil {
		return nil, err
	}
	ch.Commit = obj.Hash()
	return ch, nil
}

func (r *Repo) readBlob(h plumbing.Hash) ([]byte, error) {
	b, err := object.GetBlob(r.Storage(), h)
	if err != nil {
		return nil, fmt.Errorf("read blob %s in %q: %w", h, r.GitDir, err)
	}
	rd, err := b.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(rd)
	return buf.Bytes(), err
}

// FormatPatch writes a change as "git format-patch" does: a mail that
// "git am" turns into a commit and whose diff "git apply --index" applies.
// subject is the first line of message; trailer ends the mail (a version).
func FormatPatch(ch *Change, author Signature, message, trailer string) ([]byte, error) {
	subject, body, _ := strings.Cut(message, "\n")
	var b bytes.Buffer
	fmt.Fprintf(&b, "From %s Mon Sep 17 00:00:00 2001\n", ch.Commit)
	fmt.Fprintf(&b, "From: %s <%s>\n", author.Name, author.Email)
	fmt.Fprintf(&b, "Date: %s\n", author.When.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Subject: [PATCH] %s\n\n", subject)
	if body = strings.Trim(body, "\n"); body != "" {
		b.WriteString(body + "\n")
	}
	b.WriteString("---\n")
	// Each file's diff is computed once, for the stat and the patch.
	diffs := make([][]fdiff.Chunk, len(ch.Files))
	for i, f := range ch.Files {
		diffs[i] = chunks(f)
	}
	stat(&b, ch, diffs)
	b.WriteString("\n")
	if err := fdiff.NewUnifiedEncoder(&b, fdiff.DefaultContextLines).Encode(patch{ch, diffs}); err != nil {
		return nil, err
	}
	fmt.Fprintf(&b, "-- \n%s\n\n", trailer)
	return b.Bytes(), nil
}

// stat writes the diffstat git format-patch puts before the diff.
func stat(b *bytes.Buffer, ch *Change, diffs [][]fdiff.Chunk) {
	width := 0
	for _, f := range ch.Files {
		width = max(width, len(f.Path))
	}
	ins, del := 0, 0
	for i, f := range ch.Files {
		a, d := counts(diffs[i])
		ins, del = ins+a, del+d
		fmt.Fprintf(b, " %-*s | %d %s%s\n", width, f.Path, a+d, strings.Repeat("+", a), strings.Repeat("-", d))
	}
	fmt.Fprintf(b, " %d files changed, %d insertions(+), %d deletions(-)\n", len(ch.Files), ins, del)
}

func counts(diff []fdiff.Chunk) (add, del int) {
	for _, c := range diff {
		n := strings.Count(c.Content(), "\n")
		switch c.Type() {
		case fdiff.Add:
			add += n
		case fdiff.Delete:
			del += n
		}
	}
	return add, del
}

// The diff.Patch interfaces of go-git's unified encoder, over a Change.
type patch struct {
	ch    *Change
	diffs [][]fdiff.Chunk
}

func (p patch) Message() string { return "" }
func (p patch) FilePatches() []fdiff.FilePatch {
	out := make([]fdiff.FilePatch, len(p.ch.Files))
	for i, f := range p.ch.Files {
		out[i] = filePatch{f, p.diffs[i]}
	}
	return out
}

type filePatch struct {
	f     FileEdit
	chunk []fdiff.Chunk
}

func (fp filePatch) IsBinary() bool { return false }
func (fp filePatch) Files() (fdiff.File, fdiff.File) {
	return file{fp.f.Path, fp.f.OldMode, fp.f.OldHash}, file{fp.f.Path, fp.f.NewMode, fp.f.NewHash}
}
func (fp filePatch) Chunks() []fdiff.Chunk { return fp.chunk }

type file struct {
	path string
	mode filemode.FileMode
	hash plumbing.Hash
}

func (f file) Hash() plumbing.Hash     { return f.hash }
func (f file) Mode() filemode.FileMode { return f.mode }
func (f file) Path() string            { return f.path }

type chunk struct {
	content string
	op      fdiff.Operation
}

func (c chunk) Content() string       { return c.content }
func (c chunk) Type() fdiff.Operation { return c.op }

// maxDiffLines bounds the changed middle of a file that is diffed line by
// line (Myers' diff is quadratic in the differences); a larger one is shown
// as replaced whole, which git applies the same.
const maxDiffLines = 4000

// lineDiff diffs old and new by lines: the common first and last lines
// kept, the middle diffed when it is small enough, else replaced whole.
func lineDiff(old, new string) []diffmatchpatch.Diff {
	ol, nl := strings.SplitAfter(old, "\n"), strings.SplitAfter(new, "\n")
	p := 0
	for p < len(ol) && p < len(nl) && ol[p] == nl[p] {
		p++
	}
	q := 0
	for q < len(ol)-p && q < len(nl)-p && ol[len(ol)-1-q] == nl[len(nl)-1-q] {
		q++
	}
	if len(ol)+len(nl)-2*(p+q) <= maxDiffLines {
		return diff.Do(old, new)
	}
	var out []diffmatchpatch.Diff
	add := func(t diffmatchpatch.Operation, lines []string) {
		if s := strings.Join(lines, ""); s != "" {
			out = append(out, diffmatchpatch.Diff{Type: t, Text: s})
		}
	}
	add(diffmatchpatch.DiffEqual, ol[:p])
	add(diffmatchpatch.DiffDelete, ol[p:len(ol)-q])
	add(diffmatchpatch.DiffInsert, nl[p:len(nl)-q])
	add(diffmatchpatch.DiffEqual, ol[len(ol)-q:])
	return out
}

// chunks is the line diff of a file edit; a gitlink reads as git shows it,
// "Subproject commit <hash>".
func chunks(f FileEdit) []fdiff.Chunk {
	old, new := string(f.Old), string(f.New)
	if f.OldMode == filemode.Submodule {
		old = "Subproject commit " + f.OldHash.String() + "\n"
	}
	if f.NewMode == filemode.Submodule {
		new = "Subproject commit " + f.NewHash.String() + "\n"
	}
	var out []fdiff.Chunk
	for _, d := range lineDiff(old, new) {
		op := fdiff.Equal
		switch d.Type {
		case diffmatchpatch.DiffInsert:
			op = fdiff.Add
		case diffmatchpatch.DiffDelete:
			op = fdiff.Delete
		}
		out = append(out, chunk{d.Text, op})
	}
	return out
}
