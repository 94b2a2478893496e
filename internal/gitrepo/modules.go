package gitrepo

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/format/config"
)

// Submodule is one [submodule "name"] section of a .gitmodules file.
type Submodule struct {
	Name   string
	Path   string
	URL    string
	Branch string
}

// ReadGitmodules parses the work tree's .gitmodules, sorted by path. A
// missing file means no submodules. A section without a path, or a path that
// leaves the work tree, is an error.
func ReadGitmodules(worktree string) ([]Submodule, error) {
	p := filepath.Join(worktree, ".gitmodules")
	b, err := readFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", p, err)
	}
	return ParseGitmodules(b, p)
}

// ParseGitmodules parses .gitmodules content; name is used in errors.
func ParseGitmodules(b []byte, name string) ([]Submodule, error) {
	cfg := config.New()
	if err := config.NewDecoder(bytes.NewReader(b)).Decode(cfg); err != nil {
		return nil, fmt.Errorf("parse %q: %w", name, err)
	}
	var out []Submodule
	seen := map[string]string{}
	for _, ss := range cfg.Section("submodule").Subsections {
		s := Submodule{
			Name:   ss.Name,
			Path:   strings.TrimSuffix(ss.Option("path"), "/"),
			URL:    ss.Option("url"),
			Branch: ss.Option("branch"),
		}
		if s.Path == "" {
			return nil, fmt.Errorf("%q: submodule %q has no path", name, s.Name)
		}
		if clean := path.Clean(s.Path); clean != s.Path || path.IsAbs(s.Path) || clean == ".." || strings.HasPrefix(clean, "../") || clean == ".git" || strings.HasPrefix(clean, ".git/") {
			return nil, fmt.Errorf("%q: submodule %q has unsafe path %q", name, s.Name, s.Path)
		}
		if other, dup := seen[s.Path]; dup {
			return nil, fmt.Errorf("%q: submodules %q and %q share path %q", name, other, s.Name, s.Path)
		}
		seen[s.Path] = s.Name
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// FindWorkTree finds the work tree dir is in as git does: the nearest
// ancestor (dir itself included) holding .git. When that .git is a file
// pointing into another repository's .git/modules, the work tree is a
// submodule and super is the superproject's work tree.
func FindWorkTree(dir string) (root, super string, err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return "", "", err
	}
	for d := dir; ; {
		st, err := os.Lstat(filepath.Join(d, ".git"))
		switch {
		case err == nil && st.IsDir():
			return d, "", nil
		case err == nil && st.Mode().IsRegular():
			b, err := os.ReadFile(filepath.Join(d, ".git"))
			if err != nil {
				return "", "", err
			}
			gitdir, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir:")
			if !ok {
				return d, "", nil
			}
			gitdir = strings.TrimSpace(gitdir)
			if !filepath.IsAbs(gitdir) {
				gitdir = filepath.Join(d, gitdir)
			}
			gitdir = filepath.Clean(gitdir)
			// The superproject: an ancestor whose .git/modules holds it.
			for up := filepath.Dir(d); ; up = filepath.Dir(up) {
				if strings.HasPrefix(gitdir, filepath.Join(up, ".git", "modules")+string(filepath.Separator)) {
					return d, up, nil
				}
				if up == filepath.Dir(up) {
					break
				}
			}
			return d, "", nil // a linked work tree, or a repository elsewhere
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", "", nil
		}
		d = parent
	}
}
