package workspace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sync/errgroup"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/flake"
)

// Registry says, for every submodule, which flake.lock nodes pin the same
// repository (matched by source, never by directory name) and which Logos
// module it holds, if any. What cannot be matched is reported, not guessed.
type Registry struct {
	// Repos has one entry per submodule, sorted by path.
	Repos []Repo `json:"repos"`
	// UnmatchedInputs are the root's flake inputs whose source is no
	// submodule (infrastructure such as nixpkgs, or repositories not
	// checked out in the workspace), sorted by input.
	UnmatchedInputs []UnmatchedInput `json:"unmatchedInputs"`
}

// Repo is one submodule in the registry.
type Repo struct {
	Path string `json:"path"`
	// Parent is the submodule this one is nested in ("" for the
	// workspace's own): a nested one pins nothing of the workspace.
	Parent string `json:"parent,omitempty"`
	Source string `json:"source"`
	// Pins are the flake.lock nodes with this repository's source, sorted
	// by node: the ones the root's inputs resolve to (Inputs non-empty) and
	// copies deeper in the graph.
	Pins []Pin `json:"pins"`
	// Ambiguous lists other top-level submodules with the same source;
	// such a submodule is matched to no node.
	Ambiguous []string `json:"ambiguous,omitempty"`
	// Module is the Logos module the repository holds (its metadata.json
	// at the gitlink); nil when it is not a module or its metadata is bad.
	Module *Metadata `json:"module,omitempty"`
	// MetadataError says why a metadata.json present could not be read.
	MetadataError string `json:"metadataError,omitempty"`
	// CommitMissing: the gitlink's commit is not in the local repository,
	// so nothing at the pin (metadata.json among it) can be read.
	CommitMissing bool `json:"commitMissing,omitempty"`

	metadata []byte
}

// Pin is a flake.lock node pinning a repository.
type Pin struct {
	Node string `json:"node"`
	// Inputs are the root's inputs that resolve to the node.
	Inputs []string `json:"inputs"`
	Rev    string   `json:"rev"`
}

// UnmatchedInput is a root flake input no submodule matches.
type UnmatchedInput struct {
	Input  string `json:"input"`
	Node   string `json:"node"`
	Source string `json:"source"`
}

// Inputs returns the root inputs that pin the repository, sorted.
func (r *Repo) Inputs() []string {
	var out []string
	for _, p := range r.Pins {
		out = append(out, p.Inputs...)
	}
	sort.Strings(out)
	return out
}

// RootPins returns the pins the root's inputs resolve to.
func (r *Repo) RootPins() []Pin {
	var out []Pin
	for _, p := range r.Pins {
		if len(p.Inputs) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// RawMetadata is the metadata.json the module was read from (signatures
// are checked over it).
func (r *Repo) RawMetadata() []byte { return r.metadata }

// Repo returns the registry entry for a submodule path, or nil.
func (g *Registry) Repo(path string) *Repo {
	i := sort.Search(len(g.Repos), func(i int) bool { return g.Repos[i].Path >= path })
	if i < len(g.Repos) && g.Repos[i].Path == path {
		return &g.Repos[i]
	}
	return nil
}

// RegistryRequest is what BuildRegistry reads.
type RegistryRequest struct {
	Snapshot *Snapshot
	// Lock is the workspace's flake.lock; nil when it has none.
	Lock *flake.Lock
	// ReadMetadata returns a submodule's metadata.json as of its gitlink,
	// an error matching fs.ErrNotExist when it has none and one matching
	// ErrCommitMissing when the gitlink's commit is absent. It is called
	// concurrently.
	ReadMetadata func(ctx context.Context, m *Submodule) ([]byte, error)
	Parallelism  int
}

// BuildRegistry matches submodules with flake.lock nodes and reads their
// module metadata.
func BuildRegistry(ctx context.Context, req RegistryRequest) (*Registry, error) {
	snap := req.Snapshot
	reg := &Registry{Repos: make([]Repo, len(snap.Submodules)), UnmatchedInputs: []UnmatchedInput{}}
	bySource := map[string][]int{}
	for i, m := range snap.Submodules {
		reg.Repos[i] = Repo{Path: m.Path, Parent: m.Parent, Source: SourceOfURL(m.URL, snap.Root), Pins: []Pin{}}
		// The workspace's flake inputs are its own submodules'; a submodule
		// nested in one belongs to that repository (a vendored copy, say)
		// and is matched to no input of the workspace.
		if s := reg.Repos[i].Source; s != "" && m.Parent == "" {
			bySource[s] = append(bySource[s], i)
		}
	}
	for _, idx := range bySource {
		if len(idx) < 2 {
			continue
		}
		for _, i := range idx {
			for _, j := range idx {
				if i != j {
					reg.Repos[i].Ambiguous = append(reg.Repos[i].Ambiguous, reg.Repos[j].Path)
				}
			}
			sort.Strings(reg.Repos[i].Ambiguous)
		}
	}
	// A local override (path:./repos/x) names the submodule by its path.
	byPath := map[string]int{}
	for i, m := range snap.Submodules {
		byPath["path:"+m.Path] = i
	}
	match := func(source string) (int, bool) {
		if i, ok := byPath[source]; ok {
			return i, true
		}
		if idx := bySource[source]; len(idx) == 1 {
			return idx[0], true
		}
		return 0, false
	}
	if l := req.Lock; l != nil {
		inputsOf := map[string][]string{}
		roots, err := l.RootInputs()
		if err != nil {
			return nil, err
		}
		for _, ri := range roots {
			inputsOf[ri.Node] = append(inputsOf[ri.Node], ri.Input)
		}
		names := make([]string, 0, len(l.Nodes))
		for name := range l.Nodes {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			n := l.Nodes[name]
			if name == l.Root || n.Locked == nil {
				continue
			}
			src := SourceOfLocked(n.Locked, snap.Root)
			i, ok := match(src)
			if !ok {
				for _, in := range inputsOf[name] {
					reg.UnmatchedInputs = append(reg.UnmatchedInputs, UnmatchedInput{Input: in, Node: name, Source: src})
				}
				continue
			}
			ins := inputsOf[name]
			if ins == nil {
				ins = []string{}
			}
			reg.Repos[i].Pins = append(reg.Repos[i].Pins, Pin{Node: name, Inputs: ins, Rev: n.Locked.String("rev")})
		}
		sort.Slice(reg.UnmatchedInputs, func(i, j int) bool { return reg.UnmatchedInputs[i].Input < reg.UnmatchedInputs[j].Input })
	}
	if req.ReadMetadata == nil {
		sort.Slice(reg.Repos, func(i, j int) bool { return reg.Repos[i].Path < reg.Repos[j].Path })
		return reg, nil
	}
	g, gctx := errgroup.WithContext(ctx)
	if req.Parallelism > 0 {
		g.SetLimit(req.Parallelism)
	}
	for i := range snap.Submodules {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			r := &reg.Repos[i]
			b, err := req.ReadMetadata(gctx, &snap.Submodules[i])
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return nil
			case errors.Is(err, ErrCommitMissing):
				r.CommitMissing = true
				r.MetadataError = "the gitlink's commit is not in the local repository"
				return nil
			case err != nil:
				r.MetadataError = err.Error()
				return nil
			}
			r.metadata = b
			m, err := ParseMetadata(b)
			if err != nil {
				r.MetadataError = err.Error()
				return nil
			}
			r.Module = m
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sort.Slice(reg.Repos, func(i, j int) bool { return reg.Repos[i].Path < reg.Repos[j].Path })
	return reg, nil
}

// ErrCommitMissing: a submodule's gitlink names a commit its local
// repository does not have.
var ErrCommitMissing = errors.New("the gitlink's commit is not in the local repository")

// ErrLockChanged: flake.lock is not the one the snapshot saw.
var ErrLockChanged = errors.New("flake.lock changed since the snapshot was taken")

// ReadLock reads the workspace's flake.lock as the snapshot saw it: nil
// when the snapshot recorded none, ErrLockChanged when the file has changed
// since.
func ReadLock(snap *Snapshot) (*flake.Lock, error) {
	if snap.FlakeLock.Digest == "" {
		return nil, nil
	}
	p := filepath.Join(snap.Root, "flake.lock")
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read flake.lock: %w", err)
	}
	if artifact.Digest(b) != snap.FlakeLock.Digest {
		return nil, ErrLockChanged
	}
	l, err := flake.ParseLock(b)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", p, err)
	}
	return l, nil
}
