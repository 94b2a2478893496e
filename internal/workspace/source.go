package workspace

import (
	"net/url"
	"path"
	"path/filepath"
	"strings"

	"github.com/lambda-os/lambda-check/internal/flake"
)

// A source is a repository's identity independent of how it is spelled:
// "github.com/logos-co/logos-cpp-sdk" for git@github.com:logos-co/logos-cpp-sdk.git,
// https://github.com/logos-co/logos-cpp-sdk and github:logos-co/logos-cpp-sdk
// alike; "file:///abs/path" for a local repository; "path:repos/x" for a
// path inside the workspace. Submodules and flake inputs are matched by it.

// caseInsensitiveHosts are forges whose owner/repo names ignore case.
var caseInsensitiveHosts = map[string]bool{"github.com": true, "gitlab.com": true, "codeberg.org": true}

// SourceOfURL returns the source of a git remote URL as .gitmodules or a
// git flake input spells it. root (the workspace) resolves relative paths.
// It returns "" for a URL relative to the superproject's own remote, which
// cannot be resolved without the network.
func SourceOfURL(raw, root string) string {
	u := strings.TrimPrefix(strings.TrimSpace(raw), "git+")
	if u == "" {
		return ""
	}
	if strings.HasPrefix(u, "./") || strings.HasPrefix(u, "../") {
		return ""
	}
	if strings.HasPrefix(u, "/") {
		return "file://" + filepath.Clean(u)
	}
	if !strings.Contains(u, "://") {
		// scp-like syntax: [user@]host:path
		if at, rest, ok := strings.Cut(u, ":"); ok && !strings.Contains(at, "/") {
			if i := strings.LastIndex(at, "@"); i >= 0 {
				at = at[i+1:]
			}
			return hostPath(at, rest)
		}
		return ""
	}
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	if p.Scheme == "file" {
		if p.Path == "" {
			return ""
		}
		return "file://" + filepath.Clean(p.Path)
	}
	return hostPath(p.Hostname(), p.Path)
}

func hostPath(host, p string) string {
	host = strings.ToLower(host)
	p = strings.Trim(path.Clean("/"+p), "/")
	p = strings.TrimSuffix(p, ".git")
	if caseInsensitiveHosts[host] {
		p = strings.ToLower(p)
	}
	if host == "" || p == "" {
		return ""
	}
	return host + "/" + p
}

// SourceOfLocked returns the source a flake.lock node's locked (or
// original) attributes name. root (the workspace) turns paths inside it
// into workspace-relative ones.
func SourceOfLocked(a flake.Attrs, root string) string {
	switch a.Type() {
	case "github", "gitlab", "sourcehut":
		host := a.String("host")
		if host == "" {
			host = map[string]string{"github": "github.com", "gitlab": "gitlab.com", "sourcehut": "git.sr.ht"}[a.Type()]
		}
		return hostPath(host, a.String("owner")+"/"+a.String("repo"))
	case "git":
		return SourceOfURL(a.String("url"), root)
	case "path":
		p := a.String("path")
		if p == "" {
			return ""
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(root, p)
		}
		p = filepath.Clean(p)
		if rel, err := filepath.Rel(root, p); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return "path:" + filepath.ToSlash(rel)
		}
		return "file://" + p
	case "tarball", "file":
		return a.Type() + ":" + a.String("url")
	case "indirect":
		return "indirect:" + a.String("id")
	}
	return ""
}

// IsLocal reports whether locked attributes point at the local machine: a
// path, or a git or tarball URL with the file scheme.
func IsLocal(a flake.Attrs) bool {
	switch a.Type() {
	case "path":
		return true
	case "git", "tarball", "file", "mercurial":
		u := strings.TrimPrefix(a.String("url"), "git+")
		return strings.HasPrefix(u, "file:") || strings.HasPrefix(u, "/")
	}
	return false
}
