package gitrepo

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/config"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/memory"
)

// InitOptions describes a new repository.
type InitOptions struct {
	// WorkTree is the work tree's absolute path; empty for a bare repository.
	WorkTree string
	// SeparateGitDir: the work tree gets a "gitdir:" file pointing at the
	// git directory (as submodules have) and core.worktree is set.
	SeparateGitDir bool
	// Branch is the branch HEAD names (default "master").
	Branch string
	// Alternates lists object directories whose objects this one borrows
	// (as "git clone --shared" sets up).
	Alternates []string
	// Config adds options: section -> subsection ("" for none) -> key -> value.
	Config map[string]map[string]map[string]string
}

// Init creates a repository at gitdir and returns it opened.
func Init(gitdir string, opts InitOptions) (*Repo, error) {
	if opts.Branch == "" {
		opts.Branch = "master"
	}
	for _, d := range []string{"objects/info", "objects/pack", "refs/heads", "refs/tags", "info"} {
		if err := os.MkdirAll(filepath.Join(gitdir, d), 0o755); err != nil {
			return nil, err
		}
	}
	cfg := config.New()
	core := cfg.Section("core")
	core.SetOption("repositoryformatversion", "0")
	core.SetOption("filemode", "true")
	core.SetOption("bare", fmt.Sprint(opts.WorkTree == ""))
	if opts.WorkTree != "" && opts.SeparateGitDir {
		rel, err := filepath.Rel(gitdir, opts.WorkTree)
		if err != nil {
			return nil, err
		}
		core.SetOption("worktree", filepath.ToSlash(rel))
	}
	for sec, subs := range opts.Config {
		for sub, kv := range subs {
			for k, v := range kv {
				if sub == "" {
					cfg.Section(sec).SetOption(k, v)
				} else {
					cfg.Section(sec).Subsection(sub).SetOption(k, v)
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := config.NewEncoder(&buf).Encode(cfg); err != nil {
		return nil, err
	}
	files := map[string]string{
		"config":       buf.String(),
		"HEAD":         "ref: refs/heads/" + opts.Branch + "\n",
		"description":  "Unnamed repository; edit this file 'description' to name the repository.\n",
		"info/exclude": "",
	}
	if len(opts.Alternates) > 0 {
		var alt bytes.Buffer
		for _, a := range opts.Alternates {
			alt.WriteString(a + "\n")
		}
		files["objects/info/alternates"] = alt.String()
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(gitdir, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	r := &Repo{GitDir: gitdir}
	if opts.WorkTree != "" {
		r.WorkTree = opts.WorkTree
		if err := os.MkdirAll(opts.WorkTree, 0o755); err != nil {
			return nil, err
		}
		if opts.SeparateGitDir {
			rel, err := filepath.Rel(opts.WorkTree, gitdir)
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(opts.WorkTree, ".git"), []byte("gitdir: "+filepath.ToSlash(rel)+"\n"), 0o644); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// objectsTo is where writes go: the repository, or the pending pack.
func (r *Repo) objectsTo() storer.EncodedObjectStorer {
	if r.pending != nil {
		return r.pending
	}
	return r.Storage()
}

// PackWrites makes the objects f writes (WriteBlob, WriteTrees,
// WriteCommit) go into one new pack with its index, deltas included, as
// real repositories hold their history, instead of loose files. Nothing f
// writes can be read back until it returns.
func (r *Repo) PackWrites(f func() error) error {
	r.pending = memory.NewStorage()
	err := f()
	mem := r.pending
	r.pending = nil
	if err != nil {
		return err
	}
	var hashes []plumbing.Hash
	iter, err := mem.IterEncodedObjects(plumbing.AnyObject)
	if err != nil {
		return err
	}
	if err := iter.ForEach(func(o plumbing.EncodedObject) error {
		hashes = append(hashes, o.Hash())
		return nil
	}); err != nil {
		return err
	}
	if len(hashes) == 0 {
		return nil
	}
	w, err := r.Storage().PackfileWriter()
	if err != nil {
		return err
	}
	if _, err := packfile.NewEncoder(w, mem, false).Encode(hashes, 10); err != nil {
		w.Close()
		return fmt.Errorf("write pack in %q: %w", r.GitDir, err)
	}
	return w.Close()
}

// WriteBlob stores data as a blob.
func (r *Repo) WriteBlob(data []byte) (plumbing.Hash, error) {
	s := r.objectsTo()
	obj := s.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(data)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

// Signature is a commit's author or committer.
type Signature struct {
	Name  string
	Email string
	When  time.Time
}

// CommitSpec describes a commit to write.
type CommitSpec struct {
	Tree      plumbing.Hash
	Parents   []plumbing.Hash
	Author    Signature
	Committer Signature
	Message   string
}

// WriteCommit stores a commit object.
func (r *Repo) WriteCommit(c CommitSpec) (plumbing.Hash, error) {
	s := r.objectsTo()
	co := &object.Commit{
		Author:       object.Signature(c.Author),
		Committer:    object.Signature(c.Committer),
		Message:      c.Message,
		TreeHash:     c.Tree,
		ParentHashes: c.Parents,
	}
	obj := s.NewEncodedObject()
	if err := co.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

// WriteTrees writes the trees for entries into this repository.
func (r *Repo) WriteTrees(entries []Entry) (plumbing.Hash, *CacheTree, error) {
	return WriteTrees(r.objectsTo(), entries)
}

// SetRef points a full ref name at h.
func (r *Repo) SetRef(name string, h plumbing.Hash) error {
	p := filepath.Join(r.GitDir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return writeFileAtomic(p, []byte(h.String()+"\n"))
}

// SetSymbolicRef points name at another ref.
func (r *Repo) SetSymbolicRef(name, target string) error {
	p := filepath.Join(r.GitDir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return writeFileAtomic(p, []byte("ref: "+target+"\n"))
}
