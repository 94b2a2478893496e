package gitrepo

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/lambda-os/lambda-check/internal/nar"
)

// ErrExportSubst reports a tree that uses the export-subst attribute, whose
// archive content depends on git's placeholder expansion, which
// lambda-check does not reproduce.
var ErrExportSubst = errors.New("tree uses export-subst")

// ArchiveOptions says how a tree is exported, as the fetcher that Nix uses
// for the input's type would export it.
type ArchiveOptions struct {
	// ExportIgnore drops paths with the export-ignore attribute, as
	// "git archive" and GitHub's tarballs do.
	ExportIgnore bool
}

// CommitInfo is what a flake.lock records about a git revision.
type CommitInfo struct {
	Tree plumbing.Hash
	// LastModified is the committer time, in Unix seconds.
	LastModified int64
	// RevCount is the number of commits reachable from the revision.
	RevCount int
}

// Commit reads a commit and counts its history.
func (r *Repo) Commit(rev plumbing.Hash) (CommitInfo, error) {
	ci, err := r.CommitTime(rev)
	if err != nil {
		return CommitInfo{}, err
	}
	if ci.RevCount, err = r.RevCount(rev); err != nil {
		return CommitInfo{}, err
	}
	return ci, nil
}

// CommitTime reads a commit's tree and committer time, without counting
// its history (RevCount is left 0): what github inputs and patches need.
func (r *Repo) CommitTime(rev plumbing.Hash) (CommitInfo, error) {
	c, err := r.readCommit(rev)
	if err != nil {
		return CommitInfo{}, err
	}
	return CommitInfo{Tree: c.Tree, LastModified: c.Time}, nil
}

// RevCount counts the commits reachable from rev (git rev-list --count).
func (r *Repo) RevCount(rev plumbing.Hash) (int, error) {
	seen := map[plumbing.Hash]struct{}{rev: {}}
	queue := []plumbing.Hash{rev}
	for len(queue) > 0 {
		h := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		c, err := r.readCommit(h)
		if err != nil {
			return 0, err
		}
		for _, p := range c.Parents {
			if _, ok := seen[p]; !ok {
				seen[p] = struct{}{}
				queue = append(queue, p)
			}
		}
	}
	return len(seen), nil
}

// NarHash returns the SRI sha256 of the NAR of rev's tree as exported with
// opts: regular and executable files, symlinks, directories, and each
// submodule (gitlink) as an empty directory.
func (r *Repo) NarHash(rev plumbing.Hash, opts ArchiveOptions) (string, error) {
	c, err := r.readCommit(rev)
	if err != nil {
		return "", err
	}
	hs := nar.NewHasher()
	a := archiver{r: r, opts: opts, nw: hs.Writer}
	if err := a.tree(c.Tree, nil, nil); err != nil {
		return "", err
	}
	return hs.SRI()
}

type attrRule struct {
	pattern *attrPattern
	value   int // 1 set, -1 unset, 0 unspecified
}

type archiver struct {
	r    *Repo
	opts ArchiveOptions
	nw   *nar.Writer
}

func (a *archiver) tree(h plumbing.Hash, parts []string, rules []attrRule) error {
	entries, err := a.r.treeEntries(h)
	if err != nil {
		return err
	}
	if a.opts.ExportIgnore {
		for _, e := range entries {
			if e.Name == ".gitattributes" && e.Mode.IsFile() {
				rs, err := a.attributes(e.Hash, parts)
				if err != nil {
					return err
				}
				rules = append(rules[:len(rules):len(rules)], rs...)
			}
		}
	}
	// NAR orders entries bytewise by name; git orders directories as name+"/".
	ents := append([]object.TreeEntry(nil), entries...)
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
	a.nw.StartDir()
	for _, e := range ents {
		cparts := append(parts[:len(parts):len(parts)], e.Name)
		isDir := e.Mode == filemode.Dir || e.Mode == filemode.Submodule
		if a.opts.ExportIgnore && ignored(rules, cparts, isDir) {
			continue
		}
		a.nw.Entry(e.Name)
		switch e.Mode {
		case filemode.Dir:
			if err := a.tree(e.Hash, cparts, rules); err != nil {
				return err
			}
		case filemode.Submodule:
			a.nw.StartDir()
			a.nw.EndDir()
		case filemode.Symlink:
			b, err := a.blob(e.Hash)
			if err != nil {
				return err
			}
			a.nw.Symlink(string(b))
		case filemode.Regular, filemode.Executable, filemode.Deprecated:
			rd, size, err := a.r.blobReader(e.Hash)
			if err != nil {
				return fmt.Errorf("read blob %s (%s): %w", e.Hash, strings.Join(cparts, "/"), err)
			}
			a.nw.File(e.Mode == filemode.Executable, size, rd)
			rd.Close()
		default:
			return fmt.Errorf("%s: unsupported tree entry mode %o", strings.Join(cparts, "/"), e.Mode)
		}
		if err := a.nw.Err(); err != nil {
			return err
		}
	}
	a.nw.EndDir()
	return a.nw.Err()
}

func (a *archiver) blob(h plumbing.Hash) ([]byte, error) {
	rd, _, err := a.r.blobReader(h)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	defer rd.Close()
	return io.ReadAll(rd)
}

// attributes parses a .gitattributes blob for export-ignore (and refuses
// export-subst, whose expansion is not reproduced).
func (a *archiver) attributes(h plumbing.Hash, domain []string) ([]attrRule, error) {
	b, err := a.blob(h)
	if err != nil {
		return nil, err
	}
	var out []attrRule
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(strings.TrimSuffix(line, "\r"))
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], "[attr]") {
			continue
		}
		for _, attr := range fields[1:] {
			v := 0
			switch attr {
			case "export-ignore":
				v = 1
			case "-export-ignore":
				v = -1
			case "!export-ignore":
				v = 0
			case "export-subst":
				return nil, fmt.Errorf("%w (%q in %s/.gitattributes)", ErrExportSubst, fields[0], strings.Join(domain, "/"))
			default:
				continue
			}
			pat, err := parseAttrPattern(fields[0], domain)
			if err != nil {
				return nil, fmt.Errorf("%s/.gitattributes: %w", strings.Join(domain, "/"), err)
			}
			out = append(out, attrRule{pattern: pat, value: v})
		}
	}
	return out, nil
}

// ignored evaluates export-ignore for a path: the last matching rule wins,
// deeper .gitattributes files after shallower ones.
func ignored(rules []attrRule, parts []string, isDir bool) bool {
	for i := len(rules) - 1; i >= 0; i-- {
		if rules[i].pattern.match(parts, isDir) {
			return rules[i].value == 1
		}
	}
	return false
}

// attrPattern is a .gitattributes pattern, matched as git's attr.c does: a
// pattern without a slash matches the basename at any depth below its
// file's directory; one with a slash matches the path relative to that
// directory with wildmatch(WM_PATHNAME) ("*" stops at "/", "**" crosses it);
// a trailing slash matches directories only. A pattern matching a directory
// does not match what is inside it.
type attrPattern struct {
	domain   []string
	basename bool
	mustDir  bool
	re       *regexp.Regexp
}

func parseAttrPattern(p string, domain []string) (*attrPattern, error) {
	ap := &attrPattern{domain: domain}
	if strings.HasSuffix(p, "/") {
		ap.mustDir = true
		p = strings.TrimSuffix(p, "/")
	}
	if !strings.Contains(p, "/") {
		ap.basename = true
	}
	p = strings.TrimPrefix(p, "/")
	re, err := regexp.Compile("^" + globRegexp(p) + "$")
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", p, err)
	}
	ap.re = re
	return ap, nil
}

func (ap *attrPattern) match(parts []string, isDir bool) bool {
	if ap.mustDir && !isDir {
		return false
	}
	if len(parts) <= len(ap.domain) {
		return false
	}
	for i, d := range ap.domain {
		if parts[i] != d {
			return false
		}
	}
	if ap.basename {
		return ap.re.MatchString(parts[len(parts)-1])
	}
	return ap.re.MatchString(strings.Join(parts[len(ap.domain):], "/"))
}

// globRegexp translates a wildmatch pattern (WM_PATHNAME) to a regexp.
func globRegexp(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case strings.HasPrefix(p[i:], "**/") && (i == 0 || p[i-1] == '/'):
			b.WriteString("(?:.*/)?")
			i += 2
		case strings.HasPrefix(p[i:], "**") && i+2 == len(p) && (i == 0 || p[i-1] == '/'):
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		case c == '[':
			j := strings.IndexByte(p[i+1:], ']')
			if j < 0 {
				b.WriteString(regexp.QuoteMeta("["))
				continue
			}
			class := p[i+1 : i+1+j]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + strings.ReplaceAll(class, `\`, `\\`) + "]")
			i += j + 1
		case c == '\\' && i+1 < len(p):
			i++
			b.WriteString(regexp.QuoteMeta(string(p[i])))
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return b.String()
}
