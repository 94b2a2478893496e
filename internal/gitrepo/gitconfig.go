package gitrepo

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	format "github.com/go-git/go-git/v5/plumbing/format/config"
)

// ConfigEnv is what git's configuration depends on outside the repository:
// the environment (HOME, XDG_CONFIG_HOME, GIT_CONFIG_GLOBAL,
// GIT_CONFIG_SYSTEM, GIT_CONFIG_NOSYSTEM, GIT_CONFIG_COUNT/KEY_n/VALUE_n).
// Nothing in this package reads the process environment itself.
type ConfigEnv struct {
	Getenv func(string) string
}

func (e ConfigEnv) get(k string) string {
	if e.Getenv == nil {
		return ""
	}
	return e.Getenv(k)
}

// GitConfig is git's configuration in layers, as git reads it: system,
// global, the repository's own, then the environment's
// GIT_CONFIG_KEY_n/VALUE_n; a later layer's value wins. Includes
// (include.path) are followed; includeIf is not evaluated.
type GitConfig struct {
	layers []*format.Config
	// Files are the files read, in order (for messages).
	Files []string
	env   []*format.Config
}

// maxIncludeDepth is git's own limit on nested include.path.
const maxIncludeDepth = 10

// UserConfig reads the system and global layers. A missing file is no
// error; a file that does not parse is.
func UserConfig(env ConfigEnv) (*GitConfig, error) {
	c := &GitConfig{}
	if env.get("GIT_CONFIG_NOSYSTEM") == "" || env.get("GIT_CONFIG_NOSYSTEM") == "0" || strings.EqualFold(env.get("GIT_CONFIG_NOSYSTEM"), "false") {
		sys := env.get("GIT_CONFIG_SYSTEM")
		if sys == "" {
			sys = "/etc/gitconfig"
		}
		if err := c.addFile(sys, 0); err != nil {
			return nil, err
		}
	}
	if g := env.get("GIT_CONFIG_GLOBAL"); g != "" {
		if err := c.addFile(g, 0); err != nil {
			return nil, err
		}
	} else {
		xdg := env.get("XDG_CONFIG_HOME")
		home := env.get("HOME")
		if xdg == "" && home != "" {
			xdg = filepath.Join(home, ".config")
		}
		if xdg != "" {
			if err := c.addFile(filepath.Join(xdg, "git", "config"), 0); err != nil {
				return nil, err
			}
		}
		if home != "" {
			if err := c.addFile(filepath.Join(home, ".gitconfig"), 0); err != nil {
				return nil, err
			}
		}
	}
	if n, err := strconv.Atoi(env.get("GIT_CONFIG_COUNT")); err == nil && n > 0 {
		cfg := format.New()
		for i := 0; i < n; i++ {
			k, v := env.get(fmt.Sprintf("GIT_CONFIG_KEY_%d", i)), env.get(fmt.Sprintf("GIT_CONFIG_VALUE_%d", i))
			sec, sub, key, ok := splitKey(k)
			if !ok {
				return nil, fmt.Errorf("GIT_CONFIG_KEY_%d: %q is not a config key (section.key or section.subsection.key)", i, k)
			}
			cfg.AddOption(sec, sub, key, v)
		}
		c.env = []*format.Config{cfg}
	}
	return c, nil
}

// splitKey splits "url.https://x/.insteadOf" into its section, subsection
// and key as git does: the section is up to the first dot, the key after
// the last.
func splitKey(k string) (sec, sub, key string, ok bool) {
	i, j := strings.Index(k, "."), strings.LastIndex(k, ".")
	if i <= 0 || j == len(k)-1 {
		return "", "", "", false
	}
	if i == j {
		return k[:i], "", k[j+1:], true
	}
	return k[:i], k[i+1 : j], k[j+1:], true
}

// WithRepo returns the configuration with a repository's own config file
// (gitDir/config) added as the last file layer.
func (c *GitConfig) WithRepo(gitDir string) (*GitConfig, error) {
	out := &GitConfig{layers: append([]*format.Config(nil), c.layers...), Files: append([]string(nil), c.Files...), env: c.env}
	if err := out.addFile(filepath.Join(gitDir, "config"), 0); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *GitConfig) addFile(p string, depth int) error {
	b, err := readFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read git config %q: %w", p, err)
	}
	cfg := format.New()
	if err := format.NewDecoder(bytes.NewReader(b)).Decode(cfg); err != nil {
		return fmt.Errorf("parse git config %q: %w", p, err)
	}
	c.layers = append(c.layers, cfg)
	c.Files = append(c.Files, p)
	for _, s := range cfg.Sections {
		if !s.IsName("include") {
			continue
		}
		for _, inc := range s.OptionAll("path") {
			if depth+1 > maxIncludeDepth {
				return fmt.Errorf("git config %q: includes nested deeper than %d", p, maxIncludeDepth)
			}
			if strings.HasPrefix(inc, "~/") {
				if home, ok := homeOf(c); ok {
					inc = filepath.Join(home, inc[2:])
				}
			}
			if !filepath.IsAbs(inc) {
				inc = filepath.Join(filepath.Dir(p), inc)
			}
			if err := c.addFile(inc, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// homeOf is a best effort for "~/" in include.path: the directory of the
// global ~/.gitconfig when one was read.
func homeOf(c *GitConfig) (string, bool) {
	for _, f := range c.Files {
		if filepath.Base(f) == ".gitconfig" {
			return filepath.Dir(f), true
		}
	}
	return "", false
}

func (c *GitConfig) all() []*format.Config {
	return append(append([]*format.Config(nil), c.layers...), c.env...)
}

// Get returns the last value of section.subsection.key ("" subsection for
// none), and whether it is set.
func (c *GitConfig) Get(section, subsection, key string) (string, bool) {
	vs := c.GetAll(section, subsection, key)
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// GetAll returns every value of section.subsection.key in the order git
// reads them.
func (c *GitConfig) GetAll(section, subsection, key string) []string {
	var out []string
	for _, l := range c.all() {
		for _, s := range l.Sections {
			if !s.IsName(section) {
				continue
			}
			if subsection == "" {
				out = append(out, s.OptionAll(key)...)
				continue
			}
			for _, ss := range s.Subsections {
				if ss.IsName(subsection) {
					out = append(out, ss.OptionAll(key)...)
				}
			}
		}
	}
	return out
}

// Rewrite is one url.<base>.insteadOf rule. (pushInsteadOf applies only
// to pushes, which lambda-check never makes.)
type Rewrite struct {
	Prefix string
	Base   string
}

// Rewrites returns the url.<base>.insteadOf rules in the order git reads
// them.
func (c *GitConfig) Rewrites() []Rewrite {
	var out []Rewrite
	for _, l := range c.all() {
		for _, s := range l.Sections {
			if !s.IsName("url") {
				continue
			}
			for _, ss := range s.Subsections {
				for _, p := range ss.OptionAll("insteadOf") {
					out = append(out, Rewrite{Prefix: p, Base: ss.Name})
				}
			}
		}
	}
	return out
}

// RewriteURL applies git's rule to a fetch URL: of every insteadOf prefix
// the URL starts with, the longest wins (on a tie, the one read last);
// extra rules (lambda-check's upgrades.insteadOf) count as read last.
func RewriteURL(url string, rules []Rewrite, extra map[string]string) string {
	best, base := "", ""
	found := false
	try := func(prefix, b string) {
		if strings.HasPrefix(url, prefix) && (!found || len(prefix) >= len(best)) {
			best, base, found = prefix, b, true
		}
	}
	for _, r := range rules {
		try(r.Prefix, r.Base)
	}
	// Map order is random: sort by prefix so equal-length ties are stable.
	for _, p := range sortedKeys(extra) {
		try(p, extra[p])
	}
	if !found {
		return url
	}
	return base + url[len(best):]
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
