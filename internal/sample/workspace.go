// Package sample builds real git repositories and whole Logos-like
// workspaces: a superproject with module submodules under repos/, each backed
// by a local bare remote (some ahead of the pin), module metadata.json files,
// flakes whose packages are builtins.derivation with /bin/sh, and a
// flake.lock computed by internal/flake. Authors and dates are fixed, so
// hashes are stable. Tests use it, and so does "lambda-check demo".
package sample

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"golang.org/x/sync/errgroup"

	"github.com/lambda-os/lambda-check/internal/flake"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// Epoch is the fixed time the generated history starts at.
var Epoch = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// Author signs every generated commit.
var Author = gitrepo.Signature{Name: "Logos Test", Email: "test@logos.invalid"}

// Options shape a generated workspace.
type Options struct {
	// Modules is the number of Logos module repositories (the SDK and the
	// runtime come on top). Default 8.
	Modules int
	// Files is roughly how many files each repository tracks. Default 26.
	Files int
	// Ahead maps a repository name to how many commits its remote has beyond
	// the pin.
	Ahead map[string]int
	// Drift lists repositories whose flake.lock entry stays one commit behind
	// the gitlink: the drift policy must find.
	Drift []string
	// Override lists repositories whose flake input is committed as a local
	// path ("path:./repos/<name>"), the mistake local-override must find.
	Override []string
	// Fork maps a repository to another GitHub owner its flake input points
	// at instead of the submodule's repository.
	Fork map[string]string
	// SigningKey, when set, signs every module's metadata.json; the
	// workspace then also holds keys.json (a registry trusting it) and a
	// policy.json enabling signed-metadata.
	SigningKey *sign.PrivateKey
	// BadSignature lists repositories whose metadata.json is changed after
	// it was signed.
	BadSignature []string
	// System is the Nix system the flakes' packages are for. Default: this
	// machine's.
	System string
	// Commits is how many commits of history each repository has before
	// its first generated one, written as one pack with deltas (as real
	// repositories hold theirs): for benchmarks on real-sized histories.
	Commits int
	// GitHub makes the workspace spell its repositories as the real one
	// does: .gitmodules URLs git@github.com:logos-co/<name>.git, flake
	// inputs github:logos-co/<name> (locked as github inputs), while git
	// itself fetches from the local remotes (submodule.<name>.url in
	// .git/config and each submodule's remote.origin.url, as after a
	// local override). Nix cannot lock such a workspace offline.
	GitHub bool
	// Nested maps a repository to other repositories it vendors as
	// submodules of its own (vendor/<name>), left uninitialised as the
	// workspace's tooling leaves them.
	Nested map[string][]string
	// InputNames maps a repository to a flake input name other than its
	// directory's (the real counter_qml input of repos/counter_qml is
	// named so, and repos/counter is another repository). Only for
	// repositories no other one depends on.
	InputNames map[string]string
	// OwnLock maps a repository to one of its dependencies that the
	// workspace does not make it follow: flake.lock then holds that
	// dependency a second time, at an older revision.
	OwnLock map[string]string
	// MissingPin lists repositories whose gitlink (and lock entry) names a
	// commit that neither the remote nor the checkout has; the nearest
	// commit is checked out instead.
	MissingPin []string
	// MissingBlob lists repositories whose remote's head (give them Ahead)
	// has a file whose blob is missing from every copy, as snapshots that
	// leave large files out do.
	MissingBlob []string
	// ChangedInputs lists repositories whose upstream changes its flake's
	// own inputs after the pin, as real Logos repositories do: one more
	// commit on its remote makes its flake.nix take a new input,
	// logos-nix (a remote of its own, no submodule), drop logos-liblogos,
	// and commit the flake.lock Nix writes for that.
	ChangedInputs []string
}

// RealisticOptions is a workspace with every structural feature the real
// logos-workspace has that the demo's lacks: GitHub spellings with local
// remotes in git's config, nested uninitialised copies, an input named
// apart from its directory, a repository locked twice at two revisions,
// a pin absent from every copy, an upstream blob missing, an upstream
// flake whose own inputs changed, and one lock entry drifted.
func RealisticOptions() Options {
	return Options{
		Modules:       10,
		Ahead:         map[string]int{"logos-chat-module": 3, "logos-waku-module": 1, "logos-storage-module": 2, "logos-capability-module": 1},
		Drift:         []string{"logos-wallet-module"},
		GitHub:        true,
		Nested:        map[string][]string{"logos-storage-module": {liblogo, sdk}},
		InputNames:    map[string]string{"logos-irc-module": "irc_module"},
		OwnLock:       map[string]string{"logos-capability-module": sdk},
		MissingPin:    []string{"logos-blockchain-module"},
		MissingBlob:   []string{"logos-waku-module"},
		ChangedInputs: []string{"logos-chat-module"},
	}
}

// InfraRepo is the tooling flake that ChangedInputs repositories start
// to take at their heads.
const InfraRepo = "logos-nix"

// Repo is one generated repository and its pins.
type Repo struct {
	Name   string // directory and flake input name
	Path   string // path in the workspace, "repos/<name>"
	Remote string // bare remote's directory
	URL    string // the remote as a flake input URL ("git+file://...")
	Branch string
	Deps   []string // flake inputs it follows from the workspace
	Module *Metadata
	// Override, Fork: how its flake input deviates (see Options).
	Override bool
	Fork     string
	// Input is its flake input's name (its directory's name unless
	// InputNames says otherwise).
	Input string
	// History is the branch's commits up to the pin, oldest first.
	History []plumbing.Hash
	Pin     plumbing.Hash // the gitlink
	// Checkout is the commit checked out (the pin, unless MissingPin).
	Checkout plumbing.Hash
	// Nested are the repositories it vendors as uninitialised submodules.
	Nested []string
	// OwnLock is the dependency it locks itself (OwnLock).
	OwnLock string
	LockRev plumbing.Hash // the rev flake.lock records
	Head    plumbing.Hash // the remote's branch head

	signer      *sign.PrivateKey
	tamper      bool
	upstream    []file // the files at Head
	missingPin  bool
	missingBlob bool
	github      bool
}

// Workspace is a generated workspace.
type Workspace struct {
	Root    string // the superproject's work tree
	Remotes string // directory of bare remotes
	System  string
	// SigningKey signed the modules' metadata (nil: unsigned).
	SigningKey *sign.PrivateKey
	Repos      []*Repo
	Head       plumbing.Hash
}

// Repo returns the repository named name, or nil.
func (w *Workspace) Repo(name string) *Repo {
	for _, r := range w.Repos {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// NixSystem maps this machine to a Nix system name.
func NixSystem() string {
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "riscv64": "riscv64"}[runtime.GOARCH]
	if arch == "" {
		arch = runtime.GOARCH
	}
	return arch + "-" + runtime.GOOS
}

// DemoOptions is the workspace "lambda-check demo" builds: ten modules, three
// remotes ahead of their pins, one drifted lock entry.
func DemoOptions() Options {
	return Options{
		Modules: 10,
		Ahead:   map[string]int{"logos-chat-module": 3, "logos-waku-module": 1, "logos-storage-module": 2},
		Drift:   []string{"logos-wallet-module"},
	}
}

type file struct {
	path string
	mode filemode.FileMode
	data string // for a gitlink, the commit's hex
}

// missingFile is the file MissingBlob repositories gain upstream, whose
// blob is never written (as snapshots that leave large files out).
const missingFile = "assets/large.bin"

// Generate writes a workspace under dir (which must be empty or absent):
// dir/workspace is the superproject and dir/remotes holds the bare remotes.
func Generate(ctx context.Context, dir string, o Options) (*Workspace, error) {
	if o.Modules <= 0 {
		o.Modules = 8
	}
	if o.Files <= 0 {
		o.Files = 26
	}
	if o.System == "" {
		o.System = NixSystem()
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("generate workspace: %q is not empty", dir)
	}
	ws := &Workspace{Root: filepath.Join(dir, "workspace"), Remotes: filepath.Join(dir, "remotes"), System: o.System}
	drift := map[string]bool{}
	for _, d := range o.Drift {
		drift[d] = true
	}
	for _, s := range specs(o.Modules) {
		branch := s.branch
		if branch == "" {
			branch = "master"
		}
		remote := filepath.Join(ws.Remotes, s.name+".git")
		url := "git+file://" + remote
		if branch != "master" {
			// Nix 2.8 assumes "master" for a bare repository without a ref.
			url += "?ref=" + branch
		}
		ws.Repos = append(ws.Repos, &Repo{
			Name: s.name, Path: "repos/" + s.name, Remote: remote, URL: url,
			Branch: branch, Deps: s.deps, Module: s.module,
		})
	}
	byName := map[string]*Repo{}
	for _, r := range ws.Repos {
		byName[r.Name] = r
	}
	for name := range o.Ahead {
		if byName[name] == nil {
			return nil, fmt.Errorf("generate workspace: Ahead names unknown repository %q", name)
		}
	}
	for name := range drift {
		if byName[name] == nil {
			return nil, fmt.Errorf("generate workspace: Drift names unknown repository %q", name)
		}
	}
	ws.SigningKey = o.SigningKey
	for _, r := range ws.Repos {
		r.signer = o.SigningKey
	}
	for _, name := range o.Override {
		if byName[name] == nil {
			return nil, fmt.Errorf("generate workspace: Override names unknown repository %q", name)
		}
		byName[name].Override = true
	}
	for name, owner := range o.Fork {
		if byName[name] == nil {
			return nil, fmt.Errorf("generate workspace: Fork names unknown repository %q", name)
		}
		byName[name].Fork = owner
	}
	for _, r := range ws.Repos {
		r.Input, r.github = r.Name, o.GitHub
	}
	check := func(what string, names []string) error {
		for _, n := range names {
			if byName[n] == nil {
				return fmt.Errorf("generate workspace: %s names unknown repository %q", what, n)
			}
		}
		return nil
	}
	for parent, kids := range o.Nested {
		if err := check("Nested", append([]string{parent}, kids...)); err != nil {
			return nil, err
		}
		byName[parent].Nested = kids
	}
	for name, in := range o.InputNames {
		if err := check("InputNames", []string{name}); err != nil {
			return nil, err
		}
		for _, r := range ws.Repos {
			if slices.Contains(r.Deps, name) {
				return nil, fmt.Errorf("generate workspace: InputNames renames %q, which %s depends on", name, r.Name)
			}
		}
		byName[name].Input = in
	}
	for name, dep := range o.OwnLock {
		if err := check("OwnLock", []string{name, dep}); err != nil {
			return nil, err
		}
		if !slices.Contains(byName[name].Deps, dep) {
			return nil, fmt.Errorf("generate workspace: OwnLock: %s does not depend on %s", name, dep)
		}
		byName[name].OwnLock = dep
	}
	if err := check("MissingPin", o.MissingPin); err != nil {
		return nil, err
	}
	for _, n := range o.MissingPin {
		byName[n].missingPin = true
	}
	if err := check("MissingBlob", o.MissingBlob); err != nil {
		return nil, err
	}
	for _, n := range o.MissingBlob {
		if o.Ahead[n] == 0 {
			return nil, fmt.Errorf("generate workspace: MissingBlob: %s needs commits ahead (Ahead) to carry it", n)
		}
		byName[n].missingBlob = true
	}
	for _, name := range o.BadSignature {
		if byName[name] == nil || byName[name].Module == nil || o.SigningKey == nil {
			return nil, fmt.Errorf("generate workspace: BadSignature needs a SigningKey and a module, not %q", name)
		}
		byName[name].tamper = true
	}

	// Remotes and module checkouts are independent: write them in
	// parallel; a repository vendoring others after them (its nested
	// gitlinks are their pins).
	for _, phase := range []bool{false, true} {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(2 * runtime.GOMAXPROCS(0))
		for i, r := range ws.Repos {
			if (len(r.Nested) > 0) != phase {
				continue
			}
			g.Go(func() error {
				if err := gctx.Err(); err != nil {
					return err
				}
				ct, files, err := writeRemote(ws, i, r, byName, o.Files, o.Ahead[r.Name], drift[r.Name], o.Commits)
				if err != nil {
					return fmt.Errorf("remote %s: %w", r.Name, err)
				}
				if r.missingPin {
					if err := losePin(ws, r); err != nil {
						return fmt.Errorf("remote %s: %w", r.Name, err)
					}
				}
				return writeCheckout(ws, r, ct, files)
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	if len(o.ChangedInputs) > 0 {
		infra, err := writeInfra(ws)
		if err != nil {
			return nil, fmt.Errorf("remote %s: %w", InfraRepo, err)
		}
		for _, name := range o.ChangedInputs {
			r := byName[name]
			if r == nil || len(r.Deps) == 0 {
				return nil, fmt.Errorf("generate workspace: ChangedInputs names %q, which is no repository with inputs", name)
			}
			if err := changeInputs(ws, r, byName, infra, len(ws.Repos)); err != nil {
				return nil, fmt.Errorf("remote %s: %w", name, err)
			}
		}
	}
	if err := writeSuperproject(ws); err != nil {
		return nil, fmt.Errorf("superproject: %w", err)
	}
	return ws, nil
}

func (r *Repo) commitTime(idx, n int) time.Time {
	return Epoch.Add(time.Duration(idx)*time.Hour + time.Duration(n)*time.Minute)
}

// writeRemote creates the bare remote with the history up to the pin plus
// ahead commits, and returns the pin's cache tree and files.
func writeRemote(ws *Workspace, idx int, r *Repo, byName map[string]*Repo, nfiles, ahead int, drift bool, history int) (*gitrepo.CacheTree, []file, error) {
	repo, err := gitrepo.Init(r.Remote, gitrepo.InitOptions{Branch: r.Branch})
	if err != nil {
		return nil, nil, err
	}
	files := repoFiles(ws, r, byName, nfiles)
	var parent []plumbing.Hash
	if history > 0 {
		if parent, err = writeHistory(repo, r, idx, files, history); err != nil {
			return nil, nil, err
		}
	}
	var pinCT *gitrepo.CacheTree
	commit := func(n int, msg string, fs []file) (plumbing.Hash, *gitrepo.CacheTree, error) {
		entries := make([]gitrepo.Entry, 0, len(fs))
		for _, f := range fs {
			h, err := fileHash(repo, f, r.missingBlob && f.path == missingFile)
			if err != nil {
				return plumbing.ZeroHash, nil, err
			}
			entries = append(entries, gitrepo.Entry{Path: f.path, Mode: f.mode, Hash: h})
		}
		tree, ct, err := repo.WriteTrees(entries)
		if err != nil {
			return plumbing.ZeroHash, nil, err
		}
		sig := Author
		sig.When = r.commitTime(idx, n)
		h, err := repo.WriteCommit(gitrepo.CommitSpec{Tree: tree, Parents: parent, Author: sig, Committer: sig, Message: msg + "\n"})
		parent = []plumbing.Hash{h}
		return h, ct, err
	}
	// Two commits up to the pin, so history and revCount are real.
	h1, _, err := commit(0, "Initial import of "+r.Name, files)
	if err != nil {
		return nil, nil, err
	}
	files = bump(files, r, "0.1.1", "Bump version to 0.1.1")
	h2, ct, err := commit(1, "Bump version to 0.1.1", files)
	if err != nil {
		return nil, nil, err
	}
	pinCT = ct
	r.History = []plumbing.Hash{h1, h2}
	r.Pin, r.LockRev, r.Head, r.Checkout = h2, h2, h2, h2
	if drift {
		r.LockRev = h1
	}
	upstream := files
	for k := range ahead {
		upstream = bump(upstream, r, fmt.Sprintf("0.2.%d", k), fmt.Sprintf("Upstream change %d", k+1))
		if r.missingBlob && k == ahead-1 {
			upstream = append(upstream, file{path: missingFile, mode: filemode.Regular, data: "a large file the snapshot left out of " + r.Name + "\n"})
			sort.Slice(upstream, func(i, j int) bool { return upstream[i].path < upstream[j].path })
		}
		if r.Head, _, err = commit(2+k, fmt.Sprintf("Upstream change %d in %s", k+1, r.Name), upstream); err != nil {
			return nil, nil, err
		}
	}
	if err := repo.SetRef("refs/heads/"+r.Branch, r.Head); err != nil {
		return nil, nil, err
	}
	r.upstream = upstream
	return pinCT, files, nil
}

// writeCheckout lays out the submodule: its git directory under the
// superproject's .git/modules (borrowing the remote's objects), the pinned
// files, and an index that matches them.
func writeCheckout(ws *Workspace, r *Repo, ct *gitrepo.CacheTree, files []file) error {
	worktree := filepath.Join(ws.Root, filepath.FromSlash(r.Path))
	gitdir := filepath.Join(ws.Root, ".git", "modules", filepath.FromSlash(r.Path))
	repo, err := gitrepo.Init(gitdir, gitrepo.InitOptions{
		WorkTree: worktree, SeparateGitDir: true, Branch: r.Branch,
		Alternates: []string{filepath.Join(r.Remote, "objects")},
		Config: map[string]map[string]map[string]string{
			"remote": {"origin": {"url": r.Remote, "fetch": "+refs/heads/*:refs/remotes/origin/*"}},
			"branch": {r.Branch: {"remote": "origin", "merge": "refs/heads/" + r.Branch}},
		},
	})
	if err != nil {
		return err
	}
	if err := writeFiles(worktree, files, r.commitTime(0, 1)); err != nil {
		return err
	}
	for _, ref := range []string{"refs/heads/" + r.Branch, "refs/remotes/origin/" + r.Branch} {
		if err := repo.SetRef(ref, r.Checkout); err != nil {
			return err
		}
	}
	if err := repo.SetSymbolicRef("refs/remotes/origin/HEAD", "refs/remotes/origin/"+r.Branch); err != nil {
		return err
	}
	// "git submodule update" leaves HEAD detached at the gitlink (at the
	// nearest commit when the gitlink's is nowhere to be had).
	if err := repo.SetRef("HEAD", r.Checkout); err != nil {
		return err
	}
	return repo.WriteIndex(entriesOf(repo, files), ct)
}

func entriesOf(repo *gitrepo.Repo, files []file) []gitrepo.Entry {
	out := make([]gitrepo.Entry, len(files))
	for i, f := range files {
		h := gitrepo.BlobHash([]byte(f.data))
		if f.mode == filemode.Submodule {
			h = plumbing.NewHash(f.data)
		}
		out[i] = gitrepo.Entry{Path: f.path, Mode: f.mode, Hash: h}
	}
	return out
}

// fileHash writes a file's blob (but not a missing one's) and returns its
// hash; a gitlink is its commit.
func fileHash(repo *gitrepo.Repo, f file, missing bool) (plumbing.Hash, error) {
	switch {
	case f.mode == filemode.Submodule:
		return plumbing.NewHash(f.data), nil
	case missing:
		return gitrepo.BlobHash([]byte(f.data)), nil
	}
	return repo.WriteBlob([]byte(f.data))
}

// losePin makes the gitlink a commit on top of the pin that neither the
// remote nor the checkout has (written to a repository of its own beside
// the remotes, borrowing the remote's objects, so its lock entry can be
// computed); the pin before it stays checked out.
func losePin(ws *Workspace, r *Repo) error {
	lost, err := gitrepo.Init(filepath.Join(filepath.Dir(ws.Remotes), "lost", r.Name+".git"), gitrepo.InitOptions{
		Branch: r.Branch, Alternates: []string{filepath.Join(r.Remote, "objects")}})
	if err != nil {
		return err
	}
	tree, err := lost.TreeOf(r.Pin)
	if err != nil {
		return err
	}
	sig := Author
	sig.When = r.commitTime(0, 30)
	h, err := lost.WriteCommit(gitrepo.CommitSpec{Tree: tree, Parents: []plumbing.Hash{r.Pin}, Author: sig, Committer: sig, Message: "A commit that was never pushed\n"})
	if err != nil {
		return err
	}
	r.Checkout = r.Pin
	r.Pin, r.LockRev = h, h
	return nil
}

func writeFiles(root string, files []file, mtime time.Time) error {
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		switch f.mode {
		case filemode.Submodule:
			// An uninitialised submodule: an empty directory.
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		case filemode.Symlink:
			if err := os.Symlink(f.data, p); err != nil {
				return err
			}
			continue
		case filemode.Executable:
			if err := os.WriteFile(p, []byte(f.data), 0o755); err != nil {
				return err
			}
		default:
			if err := os.WriteFile(p, []byte(f.data), 0o644); err != nil {
				return err
			}
		}
		// Files older than the index are not "racily clean", as after a
		// real checkout that happened a while ago.
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			return err
		}
	}
	return nil
}

// writeSuperproject writes the workspace repository: .gitmodules, the flake
// and its lock, gitlinks, one commit on master, and a matching index.
func writeSuperproject(ws *Workspace) error {
	gitdir := filepath.Join(ws.Root, ".git")
	cfg := map[string]map[string]map[string]string{"submodule": {}}
	for _, r := range ws.Repos {
		cfg["submodule"][r.Path] = map[string]string{"url": r.Remote, "active": "true"}
	}
	repo, err := gitrepo.Init(gitdir, gitrepo.InitOptions{WorkTree: ws.Root, Config: cfg})
	if err != nil {
		return err
	}
	lock, err := workspaceLock(ws)
	if err != nil {
		return err
	}
	lockBytes, err := lock.Marshal()
	if err != nil {
		return err
	}
	files := []file{
		{".gitmodules", filemode.Regular, gitmodules(ws)},
		{"flake.nix", filemode.Regular, workspaceFlake(ws)},
		{"flake.lock", filemode.Regular, string(lockBytes)},
		{".gitignore", filemode.Regular, "result\nresult-*\n.direnv/\n"},
		{"README.md", filemode.Regular, "# logos-workspace (generated)\n\nModules live under repos/ as submodules and are pinned again in flake.lock.\n"},
		{"scripts/ws", filemode.Executable, "#!/bin/sh\n# Build the workspace, overriding inputs of dirty submodules.\nexec nix build \"$@\"\n"},
		{"policy.json", filemode.Regular, policyJSON(ws)},
	}
	if ws.SigningKey != nil {
		reg, err := json.MarshalIndent(sign.Registry{SchemaVersion: sign.RegistryVersion, Keys: []sign.Key{sign.RegistryKey(ws.SigningKey, sign.Scope{Roles: []string{sign.RoleMetadata}, Modules: []string{"*"}})}}, "", "  ")
		if err != nil {
			return err
		}
		files = append(files, file{"keys.json", filemode.Regular, string(reg) + "\n"})
	}
	if err := writeFiles(ws.Root, files, Epoch); err != nil {
		return err
	}
	var entries []gitrepo.Entry
	for _, f := range files {
		h, err := repo.WriteBlob([]byte(f.data))
		if err != nil {
			return err
		}
		entries = append(entries, gitrepo.Entry{Path: f.path, Mode: f.mode, Hash: h})
	}
	for _, r := range ws.Repos {
		entries = append(entries, gitrepo.Entry{Path: r.Path, Mode: filemode.Submodule, Hash: r.Pin})
	}
	tree, ct, err := repo.WriteTrees(entries)
	if err != nil {
		return err
	}
	sig := Author
	sig.When = Epoch.Add(24 * time.Hour)
	ws.Head, err = repo.WriteCommit(gitrepo.CommitSpec{Tree: tree, Author: sig, Committer: sig, Message: "Pin Logos repositories\n"})
	if err != nil {
		return err
	}
	if err := repo.SetRef("refs/heads/master", ws.Head); err != nil {
		return err
	}
	return repo.WriteIndex(entries, ct)
}

// policyJSON is the workspace's policy: its remotes are local directories,
// which local-override must allow; with a signing key, signed metadata is
// required.
func policyJSON(ws *Workspace) string {
	s := "{\n  \"schemaVersion\": 1,\n  \"rules\": {\n"
	s += fmt.Sprintf("    \"local-override\": {\"options\": {\"allowedUrls\": [%q]}}", "file://"+ws.Remotes+"/*")
	if ws.SigningKey != nil {
		s += ",\n    \"signed-metadata\": {\"enabled\": true, \"options\": {\"registry\": \"keys.json\"}}"
	}
	return s + "\n  }\n}\n"
}

func gitmodules(ws *Workspace) string {
	var b strings.Builder
	for _, r := range ws.Repos {
		fmt.Fprintf(&b, "[submodule %q]\n\tpath = %s\n\turl = %s\n", r.Path, r.Path, r.declaredURL())
		if r.Branch != "master" {
			fmt.Fprintf(&b, "\tbranch = %s\n", r.Branch)
		}
	}
	return b.String()
}

func workspaceFlake(ws *Workspace) string {
	var b strings.Builder
	b.WriteString("{\n  description = \"Logos workspace (generated by lambda-check)\";\n\n  inputs = {\n")
	for _, r := range ws.Repos {
		fmt.Fprintf(&b, "    %s.url = %q;\n", r.Input, r.flakeURL())
		for _, d := range r.Deps {
			if d != r.OwnLock {
				fmt.Fprintf(&b, "    %s.inputs.%s.follows = %q;\n", r.Input, d, d)
			}
		}
	}
	b.WriteString("  };\n\n  outputs = { self, ... }@inputs:\n    let system = \"" + ws.System + "\"; in {\n")
	b.WriteString("      packages.${system} = {\n")
	for _, r := range ws.Repos {
		fmt.Fprintf(&b, "        %s = inputs.%s.packages.${system}.default;\n", r.Name, r.Input)
	}
	b.WriteString("      };\n    };\n}\n")
	return b.String()
}

// declaredURL is the repository's url in .gitmodules.
func (r *Repo) declaredURL() string {
	if r.github {
		return "git@github.com:logos-co/" + r.Name + ".git"
	}
	return r.Remote
}

// flakeURL is the URL the workspace flake declares for the repository.
func (r *Repo) flakeURL() string {
	switch {
	case r.Override:
		return "path:./" + r.Path
	case r.Fork != "":
		return "github:" + r.Fork + "/" + r.Name
	case r.github && r.Branch != "master":
		return "github:logos-co/" + r.Name + "/" + r.Branch
	case r.github:
		return "github:logos-co/" + r.Name
	}
	return r.URL
}

// workspaceLock is the flake.lock Nix would write for the workspace flake,
// with every input locked at its LockRev.
func workspaceLock(ws *Workspace) (*flake.Lock, error) {
	lock := &flake.Lock{Version: flake.LockVersion, Root: "root", Nodes: map[string]*flake.Node{}}
	root := &flake.Node{Inputs: map[string]flake.InputRef{}}
	lock.Nodes["root"] = root
	for _, r := range ws.Repos {
		dir := r.Remote
		if r.missingPin {
			// The lost commit's objects are only beside the remotes.
			dir = filepath.Join(filepath.Dir(ws.Remotes), "lost", r.Name+".git")
		}
		remote, err := gitrepo.OpenBare(dir)
		if err != nil {
			return nil, err
		}
		locked, err := flake.LockGit(remote, r.LockRev, "file://"+r.Remote, r.Branch)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", r.Name, err)
		}
		orig := flake.Attrs{"type": "git", "url": "file://" + r.Remote}
		if r.Branch != "master" {
			orig["ref"] = r.Branch
		}
		switch {
		case r.github && !r.Override && r.Fork == "":
			if locked, err = flake.LockGitHub(remote, r.LockRev, "logos-co", r.Name); err != nil {
				return nil, err
			}
			orig = flake.Attrs{"owner": "logos-co", "repo": r.Name, "type": "github"}
			if r.Branch != "master" {
				orig["ref"] = r.Branch
			}
		case r.Override:
			// What "nix flake lock --override-input x path:./repos/x"
			// records: the absolute path and the tree's hash.
			nh, err := remote.NarHash(r.LockRev, gitrepo.ArchiveOptions{})
			if err != nil {
				return nil, err
			}
			p := filepath.Join(ws.Root, filepath.FromSlash(r.Path))
			locked = flake.Attrs{"lastModified": locked["lastModified"], "narHash": nh, "path": p, "type": "path"}
			orig = flake.Attrs{"path": "./" + r.Path, "type": "path"}
		case r.Fork != "":
			if locked, err = flake.LockGitHub(remote, r.LockRev, r.Fork, r.Name); err != nil {
				return nil, err
			}
			orig = flake.Attrs{"owner": r.Fork, "repo": r.Name, "type": "github"}
		}
		n := &flake.Node{Locked: locked, Original: orig}
		if len(r.Deps) > 0 {
			n.Inputs = map[string]flake.InputRef{}
			for _, d := range r.Deps {
				n.Inputs[d] = flake.InputRef{Follows: []string{d}}
			}
		}
		if d := r.OwnLock; d != "" {
			// Locked by its own flake: the dependency again, at its first
			// commit, as the module's flake names it.
			dr := ws.Repo(d)
			dremote, err := gitrepo.OpenBare(dr.Remote)
			if err != nil {
				return nil, err
			}
			dl, err := flake.LockGitHub(dremote, dr.History[0], "logos-co", dr.Name)
			if err != nil {
				return nil, err
			}
			key := r.Input + "/" + d
			lock.Nodes[key] = &flake.Node{Locked: dl, Original: flake.Attrs{"owner": "logos-co", "repo": dr.Name, "type": "github"}}
			n.Inputs[d] = flake.InputRef{Node: key}
		}
		lock.Nodes[r.Input] = n
		root.Inputs[r.Input] = flake.InputRef{Node: r.Input}
	}
	// Named as Nix names the nodes when it writes the file.
	return lock.Renamed()
}

func bump(files []file, r *Repo, version, change string) []file {
	out := make([]file, 0, len(files)+1)
	hasLog := false
	for _, f := range files {
		switch f.path {
		case "metadata.json":
			if r.Module != nil {
				m := *r.Module
				m.Version = version
				f.data = r.metadataJSON(&m)
			}
		case "CHANGELOG.md":
			f.data += "- " + version + ": " + change + "\n"
			hasLog = true
		case "VERSION":
			f.data = version + "\n"
		}
		out = append(out, f)
	}
	if !hasLog {
		out = append(out, file{"CHANGELOG.md", filemode.Regular, "# Changelog\n\n- " + version + ": " + change + "\n"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// metadataJSON writes a module's metadata.json, signed when the workspace
// has a signing key, and changed after signing when the repository is to
// carry a bad signature.
func (r *Repo) metadataJSON(m *Metadata) string {
	b, _ := json.MarshalIndent(m, "", "  ")
	if r.signer == nil {
		return string(b) + "\n"
	}
	signed, err := sign.SignDocument(b, workspace.MetadataDomain, r.signer)
	if err != nil {
		panic(fmt.Sprintf("sign generated metadata: %v", err)) // the generator's own JSON
	}
	if r.tamper {
		signed = bytes.Replace(signed, []byte(`"description": "`), []byte(`"description": "Changed after signing. `), 1)
	}
	return string(signed)
}

// repoFiles is a repository's initial content: about n files, like the real
// Logos repositories (sources, tests, CMake, a flake, metadata.json).
func repoFiles(ws *Workspace, r *Repo, byName map[string]*Repo, n int) []file {
	base := strings.ReplaceAll(strings.TrimPrefix(r.Name, "logos-"), "-", "_")
	files := []file{
		{".gitignore", filemode.Regular, "build/\nresult\n*.o\n"},
		{"README.md", filemode.Regular, "# " + r.Name + "\n\nPart of the Logos stack.\n"},
		{"LICENSE", filemode.Regular, "MIT License\n\nCopyright (c) 2026 Logos\n"},
		{"VERSION", filemode.Regular, "0.1.0\n"},
		{"CMakeLists.txt", filemode.Regular, "cmake_minimum_required(VERSION 3.16)\nproject(" + base + " LANGUAGES CXX)\nadd_library(" + base + "_plugin MODULE src/" + base + ".cpp)\n"},
		{"flake.nix", filemode.Regular, moduleFlake(ws, r, byName)},
		{"scripts/build.sh", filemode.Executable, "#!/bin/sh\nset -eu\ncmake -B build && cmake --build build\n"},
		{"docs/README.md", filemode.Symlink, "../README.md"},
		{"tests/.gitattributes", filemode.Regular, "fixtures/** export-ignore\n"},
		{"tests/fixtures/sample.bin", filemode.Regular, "fixture data for " + r.Name + "\n"},
	}
	if r.Module != nil {
		files = append(files, file{path: "metadata.json", mode: filemode.Regular, data: r.metadataJSON(r.Module)})
	}
	if len(r.Nested) > 0 {
		var gm strings.Builder
		for _, n := range r.Nested {
			k := byName[n]
			fmt.Fprintf(&gm, "[submodule %q]\n\tpath = vendor/%s\n\turl = %s\n", "vendor/"+n, n, k.declaredURL())
			files = append(files, file{path: "vendor/" + n, mode: filemode.Submodule, data: k.Pin.String()})
		}
		files = append(files, file{path: ".gitmodules", mode: filemode.Regular, data: gm.String()})
	}
	for i := 0; len(files) < n; i++ {
		switch i % 3 {
		case 0:
			files = append(files, file{fmt.Sprintf("src/%s_%02d.cpp", base, i), filemode.Regular,
				fmt.Sprintf("#include \"%s_%02d.h\"\n\nnamespace logos {\nint %s_%02d() { return %d; }\n}\n", base, i, base, i, i)})
		case 1:
			files = append(files, file{fmt.Sprintf("src/%s_%02d.h", base, i-1), filemode.Regular,
				fmt.Sprintf("#pragma once\nnamespace logos { int %s_%02d(); }\n", base, i-1)})
		default:
			files = append(files, file{fmt.Sprintf("tests/test_%02d.cpp", i), filemode.Regular,
				fmt.Sprintf("// test %d of %s\nint main() { return 0; }\n", i, r.Name)})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	return files
}

func moduleFlake(ws *Workspace, r *Repo, byName map[string]*Repo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n  description = %q;\n\n", r.Name)
	if len(r.Deps) > 0 {
		// The canonical upstream URLs, as the real module repositories have
		// them: the workspace makes every one of them follow its own input,
		// so Nix never fetches these, and the module's hashes do not depend
		// on where the workspace was generated.
		b.WriteString("  inputs = {\n")
		for _, d := range r.Deps {
			fmt.Fprintf(&b, "    %s.url = \"github:logos-co/%s\";\n", d, byName[d].Name)
		}
		b.WriteString("  };\n\n")
	}
	moduleOutputs(&b, ws.System, r.Name, r.Deps)
	return b.String()
}

// writeInfra writes the logos-nix remote: a flake with no inputs and one
// package. It returns its head.
func writeInfra(ws *Workspace) (plumbing.Hash, error) {
	repo, err := gitrepo.Init(filepath.Join(ws.Remotes, InfraRepo+".git"), gitrepo.InitOptions{Branch: "master"})
	if err != nil {
		return plumbing.ZeroHash, err
	}
	nix := fmt.Sprintf("{\n  description = %q;\n\n  outputs = { self }: {\n    packages.%s.default = builtins.derivation {\n      name = %q;\n      system = %q;\n      builder = \"/bin/sh\";\n      args = [ \"-c\" \"echo $name > $out\" ];\n    };\n  };\n}\n",
		InfraRepo, ws.System, InfraRepo, ws.System)
	h, err := repo.WriteBlob([]byte(nix))
	if err != nil {
		return plumbing.ZeroHash, err
	}
	tree, _, err := repo.WriteTrees([]gitrepo.Entry{{Path: "flake.nix", Mode: filemode.Regular, Hash: h}})
	if err != nil {
		return plumbing.ZeroHash, err
	}
	sig := Author
	sig.When = Epoch.Add(-time.Hour)
	head, err := repo.WriteCommit(gitrepo.CommitSpec{Tree: tree, Author: sig, Committer: sig, Message: "Initial import of " + InfraRepo + "\n"})
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return head, repo.SetRef("refs/heads/master", head)
}

// changeInputs adds a commit on r's remote whose flake takes logos-nix and
// drops logos-liblogos, with the flake.lock Nix writes for it (its other
// inputs locked as github inputs at the pins the workspace has), and moves
// the branch there.
func changeInputs(ws *Workspace, r *Repo, byName map[string]*Repo, infra plumbing.Hash, idx int) error {
	repo, err := gitrepo.OpenBare(r.Remote)
	if err != nil {
		return err
	}
	var deps []string
	for _, d := range r.Deps {
		if d != liblogo {
			deps = append(deps, d)
		}
	}
	lock := &flake.Lock{Version: flake.LockVersion, Root: "root", Nodes: map[string]*flake.Node{}}
	root := &flake.Node{Inputs: map[string]flake.InputRef{}}
	lock.Nodes["root"] = root
	for _, d := range deps {
		dr := byName[d]
		remote, err := gitrepo.OpenBare(dr.Remote)
		if err != nil {
			return err
		}
		locked, err := flake.LockGitHub(remote, dr.Pin, "logos-co", dr.Name)
		if err != nil {
			return err
		}
		lock.Nodes[d] = &flake.Node{Locked: locked, Original: flake.Attrs{"owner": "logos-co", "repo": dr.Name, "type": "github"}}
		root.Inputs[d] = flake.InputRef{Node: d}
	}
	infraURL := "file://" + filepath.Join(ws.Remotes, InfraRepo+".git")
	ir, err := gitrepo.OpenBare(filepath.Join(ws.Remotes, InfraRepo+".git"))
	if err != nil {
		return err
	}
	locked, err := flake.LockGit(ir, infra, infraURL, "master")
	if err != nil {
		return err
	}
	lock.Nodes[InfraRepo] = &flake.Node{Locked: locked, Original: flake.Attrs{"type": "git", "url": infraURL}}
	root.Inputs[InfraRepo] = flake.InputRef{Node: InfraRepo}
	lockBytes, err := lock.Marshal()
	if err != nil {
		return err
	}

	var b strings.Builder
	fmt.Fprintf(&b, "{\n  description = %q;\n\n  inputs = {\n", r.Name)
	for _, d := range deps {
		fmt.Fprintf(&b, "    %s.url = \"github:logos-co/%s\";\n", d, byName[d].Name)
	}
	fmt.Fprintf(&b, "    %s.url = %q;\n  };\n\n", InfraRepo, "git+"+infraURL)
	moduleOutputs(&b, ws.System, r.Name, append(deps, InfraRepo))

	var entries []gitrepo.Entry
	for _, f := range r.upstream {
		if f.path == "flake.nix" {
			f.data = b.String()
		}
		h, err := fileHash(repo, f, r.missingBlob && f.path == missingFile)
		if err != nil {
			return err
		}
		entries = append(entries, gitrepo.Entry{Path: f.path, Mode: f.mode, Hash: h})
	}
	lh, err := repo.WriteBlob(lockBytes)
	if err != nil {
		return err
	}
	entries = append(entries, gitrepo.Entry{Path: "flake.lock", Mode: filemode.Regular, Hash: lh})
	tree, _, err := repo.WriteTrees(entries)
	if err != nil {
		return err
	}
	sig := Author
	sig.When = r.commitTime(idx, 59)
	h, err := repo.WriteCommit(gitrepo.CommitSpec{Tree: tree, Parents: []plumbing.Hash{r.Head}, Author: sig, Committer: sig,
		Message: "Take " + InfraRepo + ", drop " + liblogo + "\n"})
	if err != nil {
		return err
	}
	r.Head = h
	return repo.SetRef("refs/heads/"+r.Branch, h)
}

// writeHistory writes n commits that each change one source file, packed,
// and returns the last as the parent of what follows.
func writeHistory(repo *gitrepo.Repo, r *Repo, idx int, files []file, n int) ([]plumbing.Hash, error) {
	var parent []plumbing.Hash
	err := repo.PackWrites(func() error {
		hashes := map[string]plumbing.Hash{}
		for _, f := range files {
			h, err := fileHash(repo, f, false)
			if err != nil {
				return err
			}
			hashes[f.path] = h
		}
		var srcs []string
		for _, f := range files {
			if strings.HasPrefix(f.path, "src/") {
				srcs = append(srcs, f.path)
			}
		}
		if len(srcs) == 0 {
			srcs = []string{"README.md"}
		}
		for i := range n {
			p := srcs[i%len(srcs)]
			h, err := repo.WriteBlob([]byte(fmt.Sprintf("// %s, revision %d of its history\n%s", p, i, strings.Repeat("int unchanged_line();\n", 40))))
			if err != nil {
				return err
			}
			hashes[p] = h
			entries := make([]gitrepo.Entry, 0, len(files))
			for _, f := range files {
				entries = append(entries, gitrepo.Entry{Path: f.path, Mode: f.mode, Hash: hashes[f.path]})
			}
			tree, _, err := repo.WriteTrees(entries)
			if err != nil {
				return err
			}
			sig := Author
			sig.When = Epoch.Add(-time.Duration(n-i) * time.Hour).Add(time.Duration(idx) * time.Second)
			c, err := repo.WriteCommit(gitrepo.CommitSpec{Tree: tree, Parents: parent, Author: sig, Committer: sig, Message: fmt.Sprintf("History %d of %s\n", i, r.Name)})
			if err != nil {
				return err
			}
			parent = []plumbing.Hash{c}
		}
		return nil
	})
	return parent, err
}

// moduleOutputs writes a module flake's outputs: one package, a
// builtins.derivation with /bin/sh that names its revision and the
// packages of its inputs.
func moduleOutputs(b *strings.Builder, system, name string, deps []string) {
	b.WriteString("  outputs = { self, ... }@inputs:\n    let\n")
	fmt.Fprintf(b, "      system = %q;\n", system)
	b.WriteString("      deps = map (n: inputs.${n}.packages.${system}.default) [")
	for _, d := range deps {
		fmt.Fprintf(b, " %q", d)
	}
	b.WriteString(" ];\n    in {\n")
	b.WriteString("      packages.${system}.default = builtins.derivation {\n")
	fmt.Fprintf(b, "        name = %q;\n", name)
	b.WriteString("        inherit system;\n        builder = \"/bin/sh\";\n")
	b.WriteString("        args = [ \"-c\" \"echo $name $rev > $out; for d in $deps; do echo \\\"needs $d\\\" >> $out; done\" ];\n")
	b.WriteString("        rev = self.rev or \"dirty\";\n        inherit deps;\n      };\n    };\n}\n")
}
