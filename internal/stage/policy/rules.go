package policy

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"golang.org/x/sync/errgroup"

	"github.com/lambda-os/lambda-check/internal/flake"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// rule is one policy rule: its defaults and its check. A check returns
// findings without rule and severity (the runner adds them) and notes on
// what it checked.
type rule struct {
	id       string
	summary  string
	enabled  bool
	severity Severity
	options  func() any
	check    func(ctx context.Context, in *Input, opts any) ([]Finding, []string, error)
}

// Rule describes a rule for documentation and --help.
type Rule struct {
	ID       string
	Summary  string
	Enabled  bool
	Severity Severity
	Options  any
}

// Rules lists every rule with its defaults, sorted by id.
func Rules() []Rule {
	out := make([]Rule, len(rules))
	for i, r := range rules {
		out[i] = Rule{ID: r.id, Summary: r.summary, Enabled: r.enabled, Severity: r.severity, Options: r.options()}
	}
	return out
}

// RuleIDs lists the rule ids, sorted.
func RuleIDs() []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.id
	}
	return out
}

func ruleByID(id string) *rule {
	for i := range rules {
		if rules[i].id == id {
			return &rules[i]
		}
	}
	return nil
}

type noOptions struct{}

// rules, sorted by id.
var rules = []rule{
	{
		id: "allowed-refs", summary: "chosen inputs (nixpkgs by default) track an allowed branch",
		enabled: true, severity: Warn,
		options: func() any {
			return &allowedRefsOptions{Inputs: []string{"nixpkgs"}, Refs: []string{
				"nixos-unstable", "nixos-unstable-small", "nixpkgs-unstable",
				"nixos-[0-9][0-9].[0-9][0-9]", "nixos-[0-9][0-9].[0-9][0-9]-small", "nixpkgs-[0-9][0-9].[0-9][0-9]-darwin",
			}}
		},
		check: checkAllowedRefs,
	},
	{
		id: "checkout-drift", summary: "every submodule is checked out at its gitlink, initialised and clean (submodules nested in submodules may stay uninitialised)",
		enabled: true, severity: Deny, options: func() any { return &checkoutDriftOptions{} }, check: checkCheckoutDrift,
	},
	{
		id: "follows", summary: "inputs share the workspace's nixpkgs (and other shared inputs), one copy per repository, and flake.lock records the follows flake.nix declares",
		enabled: true, severity: Warn,
		options: func() any { return &followsOptions{Shared: []string{"nixpkgs"}} },
		check:   checkFollows,
	},
	{
		id: "forbidden-paths", summary: "no change touches a forbidden path",
		enabled: true, severity: Deny,
		options: func() any { return &forbiddenPathsOptions{Paths: []string{}} },
		check:   checkForbiddenPaths,
	},
	{
		id: "local-override", summary: "no input is locked to a local path, and no input points away from its submodule's repository",
		enabled: true, severity: Deny,
		options: func() any { return &localOverrideOptions{AllowedURLs: []string{}, AllowedOwners: []string{}} },
		check:   checkLocalOverride,
	},
	{
		id: "lock-age", summary: "chosen inputs (nixpkgs by default) were updated recently",
		enabled: true, severity: Warn,
		options: func() any { return &lockAgeOptions{Inputs: []string{"nixpkgs"}, MaxDays: 30} },
		check:   checkLockAge,
	},
	{
		id: "lock-drift", summary: "every submodule's gitlink is the revision flake.lock pins for the same repository",
		enabled: true, severity: Deny, options: func() any { return &noOptions{} }, check: checkLockDrift,
	},
	{
		id: "lock-integrity", summary: "flake.lock's narHash and lastModified match the locked revision, recomputed from the local repository",
		enabled: true, severity: Deny, options: func() any { return &noOptions{} }, check: checkLockIntegrity,
	},
	{
		id: "registry", summary: "every submodule maps to one repository and every module's metadata.json is readable",
		enabled: true, severity: Warn, options: func() any { return &noOptions{} }, check: checkRegistry,
	},
	{
		id: "rln", summary: "messaging modules declare RLN support",
		enabled: true, severity: Warn,
		options: func() any {
			return &rlnOptions{Types: []string{"core"}, Categories: []string{"chat", "messaging"}, Capabilities: []string{"messaging"}, Markers: []string{"rln"}}
		},
		check: checkRLN,
	},
	{
		id: "signed-metadata", summary: "module metadata.json is signed by a key the registry trusts for that module",
		enabled: false, severity: Deny,
		options: func() any { return &signedMetadataOptions{Modules: []string{"*"}} },
		check:   checkSignedMetadata,
	},
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// inputSubject names a lock node by the root inputs resolving to it, or,
// for a transitive input, by its path from the root.
func (in *Input) inputSubject(node string) Subject {
	if in.rootInputs == nil {
		l := in.Lock
		in.rootInputs = map[string][]string{}
		if roots, err := l.RootInputs(); err == nil {
			for _, ri := range roots {
				in.rootInputs[ri.Node] = append(in.rootInputs[ri.Node], ri.Input)
			}
		}
	}
	if ins := in.rootInputs[node]; len(ins) > 0 {
		return Subject{Kind: KindInput, Name: strings.Join(ins, ", ")}
	}
	// A transitive input: named by its path from the root, as
	// --override-input and flake.nix overrides name it.
	if p := in.lockPath(node); p != nil {
		return Subject{Kind: KindInput, Name: strings.Join(p, "/")}
	}
	return Subject{Kind: KindInput, Name: node}
}

func sortedNodes(l *flake.Lock) []string {
	ids := make([]string, 0, len(l.Nodes))
	for id := range l.Nodes {
		if id != l.Root {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

var noLock = []string{"the workspace has no flake.lock: nothing to check"}

// --- lock-drift

// overrideRef is the flake reference that locks the same repository at rev.
func overrideRef(a flake.Attrs, rev string) string {
	switch a.Type() {
	case "github", "gitlab", "sourcehut":
		return fmt.Sprintf("%s:%s/%s/%s", a.Type(), a.String("owner"), a.String("repo"), rev)
	case "git":
		q := "?rev=" + rev
		if ref := a.String("ref"); ref != "" {
			q = "?ref=" + ref + "&rev=" + rev
		}
		return "git+" + a.String("url") + q
	}
	return ""
}

func checkLockDrift(_ context.Context, in *Input, _ any) ([]Finding, []string, error) {
	if in.Lock == nil {
		return nil, noLock, nil
	}
	var out []Finding
	compared := 0
	for _, r := range in.Registry.Repos {
		sub := in.Snapshot.Submodule(r.Path)
		if sub == nil || sub.Gitlink == "" {
			continue
		}
		for _, p := range r.RootPins() {
			if p.Rev == "" {
				continue // a path input has no revision; local-override reports it
			}
			compared++
			if p.Rev == sub.Gitlink {
				continue
			}
			locked := in.Lock.Nodes[p.Node].Locked
			inputs := strings.Join(p.Inputs, ", ")
			hint := fmt.Sprintf("make the two pins agree; move the gitlink to the lock: git -C %s checkout %s && git add %s", r.Path, p.Rev, r.Path)
			if ref := overrideRef(locked, sub.Gitlink); ref != "" {
				hint += fmt.Sprintf("; or the lock to the gitlink: nix flake lock --override-input %s '%s'", p.Inputs[0], ref)
			}
			out = append(out, Finding{
				Subject: Subject{Kind: KindSubmodule, Name: r.Path},
				Message: fmt.Sprintf("gitlink is %s but flake.lock pins input %s at %s", short(sub.Gitlink), inputs, short(p.Rev)),
				Hint:    hint,
			})
		}
	}
	return out, []string{fmt.Sprintf("%d gitlinks compared with flake.lock", compared)}, nil
}

// --- checkout-drift

type checkoutDriftOptions struct {
	// NestedUninitialized reports submodules nested in submodules that are
	// not initialised. Off by default: the workspace's own tooling (ws
	// init) leaves them so, and their parent repository pins them.
	NestedUninitialized bool `json:"nestedUninitialized"`
}

func checkCheckoutDrift(_ context.Context, in *Input, opts any) ([]Finding, []string, error) {
	o := opts.(*checkoutDriftOptions)
	var out []Finding
	nestedLeft := 0
	for _, m := range in.Snapshot.Submodules {
		var msg, hint string
		switch m.State {
		case workspace.StateClean:
			continue
		case workspace.StateMissing:
			msg = "missing: " + m.Reason
			hint = fmt.Sprintf("git submodule update --init %s", m.Path)
		case workspace.StateUninitialized:
			if m.Parent != "" && !o.NestedUninitialized {
				nestedLeft++
				continue
			}
			msg = "not initialised: " + m.Reason
			hint = fmt.Sprintf("git submodule update --init %s", m.Path)
		case workspace.StateCheckoutDiffers:
			msg = fmt.Sprintf("checked out at %s, but the gitlink is %s", short(m.Head), short(m.Gitlink))
			hint = fmt.Sprintf("return to the gitlink with 'git submodule update %s', or record the checkout with 'git add %s'", m.Path, m.Path)
			if r, err := gitrepo.Open(filepath.Join(in.Root, filepath.FromSlash(m.Path))); err == nil && !r.HasCommit(plumbing.NewHash(m.Gitlink)) {
				msg += ", a commit the local repository does not have"
				hint = fmt.Sprintf("fetch the gitlink's commit (git -C %s fetch origin %s) and 'git submodule update %s'; if no remote has it (force-pushed away, or never pushed), record a commit that exists: 'git add %s' at the checkout, or move the gitlink", m.Path, m.Gitlink, m.Path, m.Path)
			}
		case workspace.StateDirty:
			msg = fmt.Sprintf("dirty: %d staged, %d modified, %d untracked", len(m.Staged), len(m.Unstaged), len(m.Untracked))
			hint = fmt.Sprintf("commit, stash or remove the changes in %s", m.Path)
		default:
			msg = "state " + m.State
		}
		out = append(out, Finding{Subject: Subject{Kind: KindSubmodule, Name: m.Path}, Message: msg, Hint: hint})
	}
	notes := []string{fmt.Sprintf("%d submodules checked", len(in.Snapshot.Submodules))}
	if nestedLeft > 0 {
		notes = append(notes, fmt.Sprintf("%d nested submodules not initialised, as the workspace's tooling leaves them (options.nestedUninitialized reports them)", nestedLeft))
	}
	return out, notes, nil
}

// --- local-override

type localOverrideOptions struct {
	// AllowedURLs are path.Match patterns of local URLs or paths that may
	// be locked ("file:///srv/mirrors/*", "path:repos/*").
	AllowedURLs []string `json:"allowedUrls"`
	// AllowedOwners, when not empty, are the only forge owners (GitHub,
	// GitLab, SourceHut) inputs may come from.
	AllowedOwners []string `json:"allowedOwners"`
}

func (o *localOverrideOptions) validate() error { return checkPatterns("allowedUrls", o.AllowedURLs) }

func checkPatterns(name string, ps []string) error {
	for _, p := range ps {
		if err := checkPattern(p); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func localName(a flake.Attrs) string {
	if a.Type() == "path" {
		return "path:" + a.String("path")
	}
	return strings.TrimPrefix(a.String("url"), "git+")
}

func checkLocalOverride(_ context.Context, in *Input, opts any) ([]Finding, []string, error) {
	o := opts.(*localOverrideOptions)
	var out []Finding
	var notes []string
	if in.Lock != nil {
		// Which submodule each repository name belongs to, to tell a fork
		// or a moved URL from an unrelated repository.
		subByBase := map[string]*workspace.Repo{}
		for i, r := range in.Registry.Repos {
			if r.Source != "" {
				subByBase[repoBase(r.Source)] = &in.Registry.Repos[i]
			}
		}
		matched := map[string]bool{}
		for _, r := range in.Registry.Repos {
			for _, p := range r.Pins {
				matched[p.Node] = true
			}
		}
		for _, id := range sortedNodes(in.Lock) {
			a := in.Lock.Nodes[id].Locked
			if a == nil {
				continue
			}
			subj := in.inputSubject(id)
			if workspace.IsLocal(a) {
				name := localName(a)
				if !matchAny(o.AllowedURLs, name) {
					out = append(out, Finding{
						Subject: subj,
						Message: fmt.Sprintf("locked to the local source %s: the lock does not build anywhere else", name),
						Hint:    fmt.Sprintf("lock the upstream repository again ('nix flake lock --update-input %s'); for local builds use --override-input on the command line, never in the committed lock", strings.SplitN(subj.Name, ", ", 2)[0]),
					})
				}
				continue
			}
			owner := a.String("owner")
			switch a.Type() {
			case "github", "gitlab", "sourcehut":
			default:
				owner = ""
			}
			if owner != "" && len(o.AllowedOwners) > 0 && !contains(o.AllowedOwners, owner) {
				out = append(out, Finding{
					Subject: subj,
					Message: fmt.Sprintf("comes from %s, whose owner %q is not allowed", flake.RefString(a), owner),
					Hint:    "point the input at an allowed owner's repository, or add the owner to allowedOwners",
				})
				continue
			}
			src := workspace.SourceOfLocked(a, in.Root)
			if sub := subByBase[repoBase(src)]; src != "" && sub != nil && !matched[id] && sub.Source != src {
				out = append(out, Finding{
					Subject: subj,
					Message: fmt.Sprintf("locks %s, but the workspace's %s is %s", flake.RefString(a), sub.Path, sub.Source),
					Hint:    "point the input back at the submodule's repository, or change the submodule's url to match",
				})
			}
		}
	} else {
		notes = append(notes, noLock...)
	}
	if in.Declared == nil {
		notes = append(notes, "flake.nix not evaluated ("+in.FlakeNix.Note+"): only flake.lock was checked")
	} else {
		names := make([]string, 0, len(in.Declared))
		for n := range in.Declared {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			walkDeclared(n, in.Declared[n], func(where string, d *flake.DeclaredInput) {
				if isLocalURL(d.URL) && !matchAny(o.AllowedURLs, strings.TrimPrefix(d.URL, "git+")) {
					out = append(out, Finding{
						Subject: Subject{Kind: KindInput, Name: where},
						Message: fmt.Sprintf("flake.nix declares the local URL %q", d.URL),
						Hint:    "declare the upstream URL in flake.nix; for local builds use --override-input on the command line",
					})
				}
			})
		}
	}
	return out, notes, nil
}

// repoBase is a source's repository name, to tell a fork or a moved URL.
func repoBase(src string) string {
	return strings.TrimSuffix(strings.ToLower(path.Base(src)), ".git")
}

func walkDeclared(where string, d *flake.DeclaredInput, f func(string, *flake.DeclaredInput)) {
	f(where, d)
	subs := make([]string, 0, len(d.Inputs))
	for n := range d.Inputs {
		subs = append(subs, n)
	}
	sort.Strings(subs)
	for _, n := range subs {
		walkDeclared(where+"/"+n, d.Inputs[n], f)
	}
}

func isLocalURL(u string) bool {
	u = strings.TrimPrefix(u, "git+")
	return strings.HasPrefix(u, "path:") || strings.HasPrefix(u, "file:") || strings.HasPrefix(u, "/") || strings.HasPrefix(u, "./") || strings.HasPrefix(u, "../")
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// --- follows

type followsOptions struct {
	// Shared are inputs every node that has them must take from the root.
	Shared []string `json:"shared"`
}

// lockPaths returns, for every node the root reaches, the shortest input
// path from the root to it (for flake.nix override hints: "a/b" is
// a.inputs.b), in one breadth-first walk: input names sorted, so ties go
// the same way every time.
func lockPaths(l *flake.Lock) map[string][]string {
	out := map[string][]string{l.Root: nil}
	queue := []string{l.Root}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		n := l.Nodes[id]
		names := make([]string, 0, len(n.Inputs))
		for k, ref := range n.Inputs {
			if !ref.IsFollows() {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		for _, k := range names {
			to := n.Inputs[k].Node
			if _, seen := out[to]; seen {
				continue
			}
			out[to] = append(append([]string{}, out[id]...), k)
			queue = append(queue, to)
		}
	}
	return out
}

// lockPath is the shortest input path from the root to node, nil for the
// root or a node it does not reach; computed once per lock.
func (in *Input) lockPath(node string) []string {
	if in.paths == nil {
		in.paths = lockPaths(in.Lock)
	}
	return in.paths[node]
}

func checkFollows(_ context.Context, in *Input, opts any) ([]Finding, []string, error) {
	o := opts.(*followsOptions)
	if in.Lock == nil {
		return nil, noLock, nil
	}
	l := in.Lock
	var out []Finding
	root := l.Nodes[l.Root]
	// One finding per shared input, listing every input that does not
	// take the workspace's copy (the real workspace has eight nixpkgs).
	for _, s := range o.Shared {
		if _, ok := root.Inputs[s]; !ok {
			continue
		}
		want, err := l.Resolve(l.Root, s)
		if err != nil {
			return nil, nil, err
		}
		var details []string
		copies := map[string]bool{}
		for _, id := range sortedNodes(l) {
			if _, ok := l.Nodes[id].Inputs[s]; !ok || id == want {
				continue
			}
			got, err := l.Resolve(id, s)
			if err != nil {
				return nil, nil, err
			}
			if got == want {
				continue
			}
			copies[got] = true
			d := fmt.Sprintf("%s takes node %s%s", in.inputSubject(id).Name, got, revOf(l, got))
			if p := in.lockPath(id); p != nil {
				d += fmt.Sprintf(" (fix: %s.inputs.%s.follows = %q;)", strings.Join(p, ".inputs."), s, s)
			}
			details = append(details, d)
		}
		if len(details) == 0 {
			continue
		}
		sort.Strings(details)
		out = append(out, Finding{
			Subject: Subject{Kind: KindInput, Name: s},
			Message: fmt.Sprintf("%d copies of %s in flake.lock: the workspace's (node %s%s) and %d more, taken by %d inputs", len(copies)+1, s, want, revOf(l, want), len(copies), len(details)),
			Details: details,
			Hint:    fmt.Sprintf("in flake.nix, make each input listed follow the workspace's %s (the fix beside it); every copy is another %s to fetch and build against", s, s),
		})
	}
	for _, r := range in.Registry.Repos {
		revs := map[string]bool{}
		var nodes []string
		for _, p := range r.Pins {
			revs[p.Rev] = true
			nodes = append(nodes, p.Node)
		}
		if len(revs) > 1 {
			out = append(out, Finding{
				Subject: Subject{Kind: KindSubmodule, Name: r.Path},
				Message: fmt.Sprintf("flake.lock holds this repository %d times at %d revisions (nodes %s)", len(nodes), len(revs), strings.Join(nodes, ", ")),
				Hint:    "make the inner inputs follow the workspace's input for it, so one revision is built",
			})
		}
	}
	var notes []string
	if in.Declared == nil {
		notes = append(notes, "flake.nix not evaluated ("+in.FlakeNix.Note+"): declared follows not compared with flake.lock")
	} else {
		for _, s := range l.CompareDeclared(in.Declared) {
			f := Finding{
				Subject: Subject{Kind: KindInput, Name: s.Input},
				Message: fmt.Sprintf("flake.nix declares %s, flake.lock records %s", s.Declared, s.Locked),
				Hint:    "flake.lock is stale: run 'nix flake lock' and commit it",
			}
			if parent, sub, nested := strings.Cut(s.Input, "/"); nested && s.Locked == "absent" {
				// The locked flake may simply not have that input: Nix
				// then ignores the override with a warning.
				f.Message = fmt.Sprintf("flake.nix declares %s for %s, but %s as locked has no input %q", s.Declared, s.Input, parent, sub)
				f.Hint = fmt.Sprintf("remove the dead override from flake.nix, or run 'nix flake lock' if %s has gained that input", parent)
			}
			out = append(out, f)
		}
	}
	return out, notes, nil
}

// revOf is " at <short rev>" for a locked node, else "".
func revOf(l *flake.Lock, node string) string {
	if n := l.Nodes[node]; n != nil && n.Locked != nil {
		if r := n.Locked.String("rev"); r != "" {
			return " at " + short(r)
		}
	}
	return ""
}

// --- lock-integrity

func checkLockIntegrity(ctx context.Context, in *Input, _ any) ([]Finding, []string, error) {
	if in.Lock == nil {
		return nil, noLock, nil
	}
	type job struct {
		path string
		pin  workspace.Pin
	}
	var jobs []job
	for _, r := range in.Registry.Repos {
		for _, p := range r.Pins {
			switch in.Lock.Nodes[p.Node].Locked.Type() {
			case "git", "github":
				if p.Rev != "" {
					jobs = append(jobs, job{r.Path, p})
				}
			}
		}
	}
	results := make([]*Finding, len(jobs))
	checked := make([]bool, len(jobs))
	computed := make([]*IntegrityEntry, len(jobs))
	cached := 0
	for i, j := range jobs {
		if e, ok := in.previous[integrityKey(in.Lock, j.pin)]; ok {
			computed[i] = &e
			cached++
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(in.Par)
	for i, j := range jobs {
		if computed[i] != nil {
			continue
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			repo, err := gitrepo.Open(filepath.Join(in.Root, filepath.FromSlash(j.path)))
			if err != nil {
				return nil // not checked out: counted as skipped
			}
			rev := plumbing.NewHash(j.pin.Rev)
			if !repo.HasCommit(rev) {
				return nil
			}
			locked := in.Lock.Nodes[j.pin.Node].Locked
			var got flake.Attrs
			if locked.Type() == "git" {
				got, err = flake.LockGit(repo, rev, locked.String("url"), locked.String("ref"))
			} else {
				got, err = flake.LockGitHub(repo, rev, locked.String("owner"), locked.String("repo"))
			}
			if err != nil {
				return fmt.Errorf("%s at %s: %w", j.path, short(j.pin.Rev), err)
			}
			e := IntegrityEntry{NarHash: got.String("narHash")}
			e.LastModified, _ = got.Int("lastModified")
			e.RevCount, _ = got.Int("revCount")
			computed[i] = &e
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	for i, j := range jobs {
		e := computed[i]
		if e == nil {
			continue
		}
		checked[i] = true
		in.Integrity.Entries[integrityKey(in.Lock, j.pin)] = *e
		locked := in.Lock.Nodes[j.pin.Node].Locked
		have := map[string]any{"narHash": e.NarHash, "lastModified": e.LastModified}
		if locked.Type() == "git" {
			have["revCount"] = e.RevCount
		}
		var bad []string
		for _, k := range []string{"narHash", "lastModified", "revCount"} {
			want, ok := locked[k]
			if !ok {
				continue
			}
			if h, ok := have[k]; ok && h != want {
				bad = append(bad, fmt.Sprintf("%s is %v, recomputed %v", k, want, h))
			}
		}
		if len(bad) > 0 {
			results[i] = &Finding{
				Subject: in.inputSubject(j.pin.Node),
				Message: fmt.Sprintf("flake.lock entry for %s at %s does not match the repository: %s", j.path, short(j.pin.Rev), strings.Join(bad, "; ")),
				Hint:    "the lock was edited by hand or the history was rewritten: re-lock the input with 'nix flake lock --update-input' and review the change",
			}
		}
	}
	var out []Finding
	n := 0
	var absent []string
	for i, j := range jobs {
		if checked[i] {
			n++
		} else {
			absent = append(absent, fmt.Sprintf("%s at %s", j.path, short(j.pin.Rev)))
		}
		if results[i] != nil {
			out = append(out, *results[i])
		}
	}
	// Whether a result came from an earlier run is left out of the
	// artifact, which depends only on the workspace (the command says it).
	in.IntegrityReused = cached
	notes := []string{fmt.Sprintf("%d of %d locked revisions of the workspace's repositories checked", n, len(jobs))}
	if len(absent) > 0 {
		sort.Strings(absent)
		notes = append(notes, fmt.Sprintf("%d not checked, not in the local repository: %s", len(absent), strings.Join(absent, ", ")))
	}
	if other := lockedRepos(in.Lock) - len(jobs); other > 0 {
		notes = append(notes, fmt.Sprintf("%d locked git inputs are no submodule of the workspace (nothing local to check them against)", other))
	}
	return out, notes, nil
}

// lockedRepos counts the git and github nodes with a revision.
func lockedRepos(l *flake.Lock) int {
	n := 0
	for id, node := range l.Nodes {
		if id == l.Root || node.Locked == nil || node.Locked.String("rev") == "" {
			continue
		}
		if t := node.Locked.Type(); t == "git" || t == "github" {
			n++
		}
	}
	return n
}

// integrityKey names what a lock entry's attributes are computed from: the
// input type (which fixes how the tree is exported) and the commit.
func integrityKey(l *flake.Lock, p workspace.Pin) string {
	return l.Nodes[p.Node].Locked.Type() + ":" + p.Rev
}

// --- registry

func checkRegistry(_ context.Context, in *Input, _ any) ([]Finding, []string, error) {
	var out []Finding
	modules, unread := 0, 0
	for _, r := range in.Registry.Repos {
		if len(r.Ambiguous) > 0 {
			out = append(out, Finding{
				Subject: Subject{Kind: KindSubmodule, Name: r.Path},
				Message: fmt.Sprintf("has the same repository (%s) as %s: its flake inputs cannot be told apart", r.Source, strings.Join(r.Ambiguous, ", ")),
				Hint:    "keep one submodule per repository",
			})
		}
		if r.CommitMissing {
			unread++
		}
		if r.MetadataError != "" && !r.CommitMissing && checkedOut(in.Snapshot.Submodule(r.Path)) {
			// (A submodule not checked out, or whose gitlink's commit is
			// absent, is checkout-drift's finding.)
			out = append(out, Finding{
				Subject: Subject{Kind: KindSubmodule, Name: r.Path},
				Message: "metadata.json: " + strings.TrimPrefix(r.MetadataError, "metadata.json: "),
				Hint:    "fix metadata.json at the pinned revision, or check the submodule out",
			})
		}
		if r.Module != nil {
			modules++
		}
	}
	notes := []string{fmt.Sprintf("%d submodules, %d Logos modules, %d root inputs without a submodule", len(in.Registry.Repos), modules, len(in.Registry.UnmatchedInputs))}
	if unread > 0 {
		notes = append(notes, fmt.Sprintf("%d submodules whose gitlink's commit is not in the local repository: their metadata.json was not read (checkout-drift reports them)", unread))
	}
	return out, notes, nil
}

func checkedOut(m *workspace.Submodule) bool {
	return m != nil && m.State != workspace.StateMissing && m.State != workspace.StateUninitialized
}

// --- rln

type rlnOptions struct {
	// Types are the module types checked (empty: all); user interfaces
	// reach the network through a core module, which is checked instead.
	Types []string `json:"types"`
	// Categories and Capabilities say which modules are messaging modules.
	Categories   []string `json:"categories"`
	Capabilities []string `json:"capabilities"`
	// Markers are the capabilities or module dependencies that declare RLN.
	Markers []string `json:"markers"`
}

func checkRLN(_ context.Context, in *Input, opts any) ([]Finding, []string, error) {
	o := opts.(*rlnOptions)
	var out []Finding
	messaging := 0
	for _, r := range in.Registry.Repos {
		m := r.Module
		if m == nil || (len(o.Types) > 0 && !contains(o.Types, m.Type)) {
			continue
		}
		is := contains(o.Categories, m.Category)
		for _, c := range o.Capabilities {
			is = is || m.HasCapability(c)
		}
		if !is {
			continue
		}
		messaging++
		declares := false
		for _, k := range o.Markers {
			declares = declares || m.HasCapability(k)
			for _, d := range m.Dependencies {
				declares = declares || d.Name == k
			}
		}
		if !declares {
			out = append(out, Finding{
				Subject: Subject{Kind: KindModule, Name: m.Name},
				Message: fmt.Sprintf("messaging module (%s) does not declare RLN support", r.Path),
				Hint:    fmt.Sprintf("add %q to the capabilities in its metadata.json once it rate-limits with RLN", o.Markers[0]),
			})
		}
	}
	return out, []string{fmt.Sprintf("%d messaging modules checked", messaging)}, nil
}

func (o *rlnOptions) validate() error {
	if len(o.Markers) == 0 {
		return fmt.Errorf("markers must name at least one capability or module")
	}
	return nil
}

// --- signed-metadata

type signedMetadataOptions struct {
	// Registry is the key registry file, relative to the policy file.
	Registry string `json:"registry"`
	// Modules are the module names (patterns) whose metadata must be
	// signed.
	Modules []string `json:"modules"`
}

func checkSignedMetadata(_ context.Context, in *Input, opts any) ([]Finding, []string, error) {
	o := opts.(*signedMetadataOptions)
	cfg := Subject{Kind: KindConfig, Name: "signed-metadata"}
	if o.Registry == "" {
		return []Finding{{Subject: cfg,
			Message: "enabled without a key registry: no signature can be trusted, so every module fails",
			Hint:    "set rules.signed-metadata.options.registry to a key registry file (see docs/policy.md)",
		}}, nil, nil
	}
	p := o.Registry
	if !filepath.IsAbs(p) {
		p = filepath.Join(in.ConfigDir, p)
	}
	reg, err := sign.ReadRegistry(p)
	if err != nil {
		return []Finding{{Subject: cfg, Message: err.Error(), Hint: "fix the key registry; until then no module's metadata is trusted"}}, nil, nil
	}
	var out []Finding
	verified := 0
	for _, r := range in.Registry.Repos {
		if r.MetadataError != "" {
			out = append(out, Finding{Subject: Subject{Kind: KindSubmodule, Name: r.Path}, Message: "metadata cannot be verified: " + r.MetadataError})
			continue
		}
		m := r.Module
		if m == nil || !matchAny(o.Modules, m.Name) {
			continue
		}
		c, err := sign.Verify(r.RawMetadata(), workspace.MetadataDomain, reg, func(k *sign.Key) error { return k.Allows(sign.RoleMetadata, m.Name, in.Now) })
		if err != nil {
			out = append(out, Finding{Subject: Subject{Kind: KindModule, Name: m.Name}, Message: fmt.Sprintf("metadata.json in %s: %v", r.Path, err)})
			continue
		}
		if c.Verdict == sign.Valid {
			verified++
			continue
		}
		hint := "sign it with a trusted key: lambda-check sign-metadata --key KEY " + r.Path + "/metadata.json"
		if c.Verdict == sign.Invalid {
			hint = "metadata.json changed after it was signed, or the signature is corrupt: review the change and sign it again"
		}
		out = append(out, Finding{
			Subject: Subject{Kind: KindModule, Name: m.Name},
			Message: fmt.Sprintf("metadata.json in %s at %s is %s", r.Path, short(in.Snapshot.Submodule(r.Path).Gitlink), c),
			Hint:    hint,
		})
	}
	return out, []string{fmt.Sprintf("%d modules verified against %d keys", verified, len(reg.Keys))}, nil
}

// --- forbidden-paths

type forbiddenPathsOptions struct {
	// Paths are workspace-relative patterns ("flake.lock", ".github/**").
	Paths []string `json:"paths"`
}

func (o *forbiddenPathsOptions) validate() error { return checkPatterns("paths", o.Paths) }

func checkForbiddenPaths(_ context.Context, in *Input, opts any) ([]Finding, []string, error) {
	o := opts.(*forbiddenPathsOptions)
	var out []Finding
	for _, c := range in.Changes {
		if matchAny(o.Paths, c.Path) {
			out = append(out, Finding{
				Subject: Subject{Kind: KindPath, Name: c.Path},
				Message: fmt.Sprintf("%s change to a forbidden path", c.Origin),
				Hint:    "revert the change; these paths change only by review",
			})
		}
	}
	return out, []string{fmt.Sprintf("%d changed paths checked against %d patterns", len(in.Changes), len(o.Paths))}, nil
}

// --- lock-age and allowed-refs

type lockAgeOptions struct {
	Inputs  []string `json:"inputs"`
	MaxDays int      `json:"maxDays"`
}

func (o *lockAgeOptions) validate() error {
	if o.MaxDays <= 0 {
		return fmt.Errorf("maxDays must be positive, got %d", o.MaxDays)
	}
	return checkPatterns("inputs", o.Inputs)
}

// chosenInputs returns root inputs matching patterns with their nodes.
func chosenInputs(l *flake.Lock, patterns []string) ([]string, []string) {
	var names []string
	for n := range l.Nodes[l.Root].Inputs {
		if matchAny(patterns, n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	nodes := make([]string, len(names))
	for i, n := range names {
		nodes[i], _ = l.Resolve(l.Root, n)
	}
	return names, nodes
}

func checkLockAge(_ context.Context, in *Input, opts any) ([]Finding, []string, error) {
	o := opts.(*lockAgeOptions)
	if in.Lock == nil {
		return nil, noLock, nil
	}
	names, nodes := chosenInputs(in.Lock, o.Inputs)
	var out []Finding
	for i, name := range names {
		n := in.Lock.Nodes[nodes[i]]
		if n == nil || n.Locked == nil {
			continue
		}
		in.usedNow = true
		lm, ok := n.Locked.Int("lastModified")
		if !ok {
			out = append(out, Finding{Subject: Subject{Kind: KindInput, Name: name}, Message: "flake.lock records no lastModified, so its age is unknown"})
			continue
		}
		age := in.Now.Sub(time.Unix(lm, 0))
		if days := int(age.Hours() / 24); days > o.MaxDays {
			out = append(out, Finding{
				Subject: Subject{Kind: KindInput, Name: name},
				Message: fmt.Sprintf("locked revision is %d days old (limit %d)", days, o.MaxDays),
				Hint:    fmt.Sprintf("nix flake lock --update-input %s", name),
			})
		}
	}
	return out, []string{fmt.Sprintf("%d inputs checked", len(names))}, nil
}

type allowedRefsOptions struct {
	Inputs []string `json:"inputs"`
	// Refs are the branches (patterns) the inputs may track.
	Refs []string `json:"refs"`
}

func (o *allowedRefsOptions) validate() error {
	if err := checkPatterns("refs", o.Refs); err != nil {
		return err
	}
	return checkPatterns("inputs", o.Inputs)
}

func checkAllowedRefs(_ context.Context, in *Input, opts any) ([]Finding, []string, error) {
	o := opts.(*allowedRefsOptions)
	if in.Lock == nil {
		return nil, noLock, nil
	}
	names, nodes := chosenInputs(in.Lock, o.Inputs)
	var out []Finding
	for i, name := range names {
		n := in.Lock.Nodes[nodes[i]]
		if n == nil || n.Original == nil {
			continue
		}
		ref := n.Original.String("ref")
		switch {
		case ref == "" && n.Original.String("rev") != "":
			out = append(out, Finding{Subject: Subject{Kind: KindInput, Name: name},
				Message: "pinned to a bare revision, tracking no branch", Hint: "track an allowed branch, e.g. github:NixOS/nixpkgs/nixos-unstable"})
		case ref == "":
			out = append(out, Finding{Subject: Subject{Kind: KindInput, Name: name},
				Message: "tracks the repository's default branch, not a named one", Hint: "track an allowed branch, e.g. github:NixOS/nixpkgs/nixos-unstable"})
		case !matchAny(o.Refs, ref):
			out = append(out, Finding{Subject: Subject{Kind: KindInput, Name: name},
				Message: fmt.Sprintf("tracks %q, which is not an allowed branch", ref), Hint: "allowed: " + strings.Join(o.Refs, ", ")})
		}
	}
	return out, []string{fmt.Sprintf("%d inputs checked", len(names))}, nil
}
