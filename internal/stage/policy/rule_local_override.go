package policy

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/lambda-os/lambda-check/internal/flake"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

var localOverrideRule = define("local-override", "no input is locked to a local path, and no input points away from its submodule's repository", true, Deny,
	func() *localOverrideOptions {
		return &localOverrideOptions{AllowedURLs: []string{}, AllowedOwners: []string{}}
	}, checkLocalOverride)

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

func checkLocalOverride(_ context.Context, in *Input, o *localOverrideOptions) (Output, error) {
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
	return Output{Findings: out, Notes: notes}, nil
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
