package gitrepo

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Where git takes a submodule's remote URL from, in the order it looks.
const (
	// URLFromSubmodule: the submodule's own remote (remote.origin.url in
	// its config), which 'git fetch' inside it uses.
	URLFromSubmodule = "submodule-remote"
	// URLFromSuperproject: submodule.<name>.url in the superproject's
	// .git/config, set by 'git submodule init' and by local overrides.
	URLFromSuperproject = "superproject-config"
	// URLFromGitmodules: the url in .gitmodules (for a submodule that was
	// never initialised).
	URLFromGitmodules = "gitmodules"
)

// SubmoduleURL is where a submodule is fetched from.
type SubmoduleURL struct {
	// URL is what git connects to: the configured URL after
	// url.<base>.insteadOf (git's and the extra rules).
	URL string `json:"url"`
	// Configured is the URL before rewriting.
	Configured string `json:"configured"`
	// From says which setting it came from (URLFrom*).
	From string `json:"from"`
}

// SubmoduleRemote says where git fetches a submodule from: the
// submodule's own remote when it has a repository (the remote of its
// checked-out branch, else origin), else submodule.<name>.url in the
// superproject's config, else .gitmodules' url; a relative URL is resolved
// against the superproject's default remote as git resolves it; then the
// insteadOf rules of the configuration that applies (system, global and
// that repository's) and extra (lambda-check's upgrades.insteadOf, read
// last) rewrite it.
func SubmoduleRemote(user *GitConfig, superproject *Repo, name, path, gitmodulesURL string, extra map[string]string) (SubmoduleURL, error) {
	if user == nil {
		user = &GitConfig{}
	}
	superCfg, err := user.WithRepo(superproject.GitDir)
	if err != nil {
		return SubmoduleURL{}, err
	}
	subDir := filepath.Join(superproject.WorkTree, filepath.FromSlash(path))
	if sub, err := Open(subDir); err == nil && sub.GitDir != superproject.GitDir {
		subCfg, err := user.WithRepo(sub.GitDir)
		if err != nil {
			return SubmoduleURL{}, err
		}
		remote := "origin"
		if h, err := sub.Head(); err == nil && h.Branch != "" {
			if r, ok := subCfg.Get("branch", h.Branch, "remote"); ok && r != "" && r != "." {
				remote = r
			}
		}
		if u, ok := subCfg.Get("remote", remote, "url"); ok && u != "" {
			if isRelativeURL(u) {
				u = filepath.Join(subDir, u)
			}
			return SubmoduleURL{URL: RewriteURL(u, subCfg.Rewrites(), extra), Configured: u, From: URLFromSubmodule}, nil
		}
	}
	from := URLFromSuperproject
	u, ok := superCfg.Get("submodule", name, "url")
	if !ok || u == "" {
		u, from = gitmodulesURL, URLFromGitmodules
	}
	if u == "" {
		return SubmoduleURL{}, fmt.Errorf("submodule %q has no url in .gitmodules or the superproject's config", name)
	}
	if isRelativeURL(u) {
		base := defaultRemoteURL(superCfg, superproject)
		if base == "" {
			base = superproject.WorkTree
		}
		if u, err = ResolveRelativeURL(u, base); err != nil {
			return SubmoduleURL{}, err
		}
	}
	return SubmoduleURL{URL: RewriteURL(u, superCfg.Rewrites(), extra), Configured: u, From: from}, nil
}

// defaultRemoteURL is the URL of the superproject's default remote (its
// branch's remote, else origin), or "".
func defaultRemoteURL(cfg *GitConfig, r *Repo) string {
	remote := "origin"
	if h, err := r.Head(); err == nil && h.Branch != "" {
		if rr, ok := cfg.Get("branch", h.Branch, "remote"); ok && rr != "" && rr != "." {
			remote = rr
		}
	}
	u, _ := cfg.Get("remote", remote, "url")
	return u
}

func isRelativeURL(u string) bool {
	return strings.HasPrefix(u, "./") || strings.HasPrefix(u, "../")
}

// ResolveRelativeURL resolves a submodule URL relative to base ("../x.git"
// against "git@host:o/super.git" is "git@host:o/x.git"), as git does.
func ResolveRelativeURL(u, base string) (string, error) {
	b := strings.TrimSuffix(base, "/")
	orig := u
	for {
		switch {
		case strings.HasPrefix(u, "./"):
			u = u[2:]
		case strings.HasPrefix(u, "../"):
			u = u[3:]
			i := strings.LastIndexAny(b, "/:")
			if i < 0 {
				return "", fmt.Errorf("url %q climbs above %q", orig, base)
			}
			b = b[:i]
		default:
			sep := "/"
			if strings.HasSuffix(b, ":") {
				sep = ""
			}
			return b + sep + u, nil
		}
	}
}
