package gitrepo_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/requires"
)

// gitEnv is a git environment with its own HOME and no system config, so
// the test controls every layer.
func gitEnv(home string) map[string]string {
	return map[string]string{"HOME": home, "GIT_CONFIG_NOSYSTEM": "1", "XDG_CONFIG_HOME": filepath.Join(home, ".config")}
}

func gitIn(t *testing.T, env map[string]string, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t",
		"GIT_ALLOW_PROTOCOL=file", "GIT_TERMINAL_PROMPT=0"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	assert.NilError(t, err, "git %v: %s", args, out)
	return strings.TrimSpace(string(out))
}

// TestSubmoduleRemoteAsGit: for each way git decides where a submodule
// is fetched from, SubmoduleRemote names the URL git itself uses (git
// ls-remote --get-url in the submodule, or git config for one never
// initialised), with insteadOf from the global and repository config.
func TestSubmoduleRemoteAsGit(t *testing.T) {
	requires.Tool(t, "git")
	t.Parallel()
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	assert.NilError(t, os.MkdirAll(home, 0o755))
	env := gitEnv(home)
	remotes := filepath.Join(dir, "remotes")
	for _, n := range []string{"a", "b", "c", "d"} {
		r := filepath.Join(remotes, n+".git")
		gitIn(t, env, dir, "init", "-q", "--bare", r)
		w := filepath.Join(dir, "src-"+n)
		gitIn(t, env, dir, "init", "-q", "-b", "master", w)
		gitIn(t, env, w, "commit", "-q", "--allow-empty", "-m", n)
		gitIn(t, env, w, "push", "-q", r, "master")
	}
	// The global config rewrites the SSH form to the local remotes, as an
	// operator's url.<base>.insteadOf does; a longer rule in b's own
	// config wins for b (the superproject's config does not apply inside
	// a submodule).
	gitIn(t, env, dir, "config", "--global", "url.file://"+remotes+"/.insteadOf", "git@github.com:logos-co/")
	super := filepath.Join(dir, "ws")
	gitIn(t, env, dir, "init", "-q", "-b", "master", super)
	for _, n := range []string{"a", "b", "c", "d"} {
		gitIn(t, env, super, "-c", "protocol.file.allow=always", "submodule", "add", "-q", "git@github.com:logos-co/"+n+".git", "repos/"+n)
	}
	gitIn(t, env, super, "commit", "-q", "-m", "subs")
	gitIn(t, env, filepath.Join(super, "repos/b"), "config", "url.file://"+remotes+"/b.git.insteadOf", "git@github.com:logos-co/b")
	gitIn(t, env, super, "config", "url.file:///nowhere/.insteadOf", "git@github.com:logos-co/b")
	// c: the submodule's own remote moved (what 'git fetch' in it uses).
	gitIn(t, env, filepath.Join(super, "repos/c"), "remote", "set-url", "origin", "file://"+remotes+"/d.git")
	// d: deinitialised, then a local override in .git/config.
	gitIn(t, env, super, "submodule", "deinit", "-q", "-f", "repos/d")
	gitIn(t, env, super, "config", "submodule.repos/d.url", "file://"+remotes+"/a.git")

	user, err := gitrepo.UserConfig(gitrepo.ConfigEnv{Getenv: func(k string) string { return env[k] }})
	assert.NilError(t, err)
	sp, err := gitrepo.Open(super)
	assert.NilError(t, err)
	for _, tc := range []struct {
		name, from string
		want       string
	}{
		{"a", gitrepo.URLFromSubmodule, gitIn(t, env, filepath.Join(super, "repos/a"), "ls-remote", "--get-url", "origin")},
		{"b", gitrepo.URLFromSubmodule, gitIn(t, env, filepath.Join(super, "repos/b"), "ls-remote", "--get-url", "origin")},
		{"c", gitrepo.URLFromSubmodule, gitIn(t, env, filepath.Join(super, "repos/c"), "ls-remote", "--get-url", "origin")},
		{"d", gitrepo.URLFromSuperproject, gitIn(t, env, super, "ls-remote", "--get-url", gitIn(t, env, super, "config", "submodule.repos/d.url"))},
	} {
		got, err := gitrepo.SubmoduleRemote(user, sp, "repos/"+tc.name, "repos/"+tc.name, "git@github.com:logos-co/"+tc.name+".git", nil)
		assert.NilError(t, err)
		assert.Equal(t, got.URL, tc.want, tc.name)
		assert.Equal(t, got.From, tc.from, tc.name)
	}
	// The b rule is the longer one.
	assert.Equal(t, gitIn(t, env, filepath.Join(super, "repos/b"), "ls-remote", "--get-url", "origin"), "file://"+remotes+"/b.git.git")
	// Never initialised: .gitmodules' url, rewritten.
	gitIn(t, env, super, "config", "--unset", "submodule.repos/d.url")
	got, err := gitrepo.SubmoduleRemote(user, sp, "repos/d", "repos/d", "git@github.com:logos-co/d.git", nil)
	assert.NilError(t, err)
	assert.Equal(t, got.From, gitrepo.URLFromGitmodules)
	assert.Equal(t, got.URL, gitIn(t, env, super, "ls-remote", "--get-url", "git@github.com:logos-co/d.git"))
	// lambda-check's own rules come after git's and win a longer match.
	got, err = gitrepo.SubmoduleRemote(user, sp, "repos/d", "repos/d", "git@github.com:logos-co/d.git", map[string]string{"git@github.com:logos-co/d": "https://example.invalid/d"})
	assert.NilError(t, err)
	assert.Equal(t, got.URL, "https://example.invalid/d.git")
}

func TestRewriteURL(t *testing.T) {
	t.Parallel()
	rules := []gitrepo.Rewrite{{Prefix: "git@github.com:", Base: "https://github.com/"}, {Prefix: "git@github.com:logos-co/", Base: "file:///m/"}}
	for _, tc := range []struct{ in, want string }{
		{"git@github.com:logos-co/x.git", "file:///m/x.git"},
		{"git@github.com:other/x.git", "https://github.com/other/x.git"},
		{"https://gitlab.com/x", "https://gitlab.com/x"},
	} {
		assert.Equal(t, gitrepo.RewriteURL(tc.in, rules, nil), tc.want)
	}
	// Equal length: the one read last wins, as in git.
	assert.Equal(t, gitrepo.RewriteURL("ab", []gitrepo.Rewrite{{Prefix: "a", Base: "1"}, {Prefix: "a", Base: "2"}}, nil), "2b")
}

func TestResolveRelativeURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ u, base, want string }{
		{"../x.git", "git@github.com:o/super.git", "git@github.com:o/x.git"},
		{"./x", "https://h/o/super", "https://h/o/super/x"},
		{"../../p/x", "https://h/o/super", "https://h/p/x"},
	} {
		got, err := gitrepo.ResolveRelativeURL(tc.u, tc.base)
		assert.NilError(t, err)
		assert.Equal(t, got, tc.want)
	}
}

// TestUserConfigLayers: GIT_CONFIG_GLOBAL replaces the global files;
// GIT_CONFIG_COUNT entries come last; include.path is followed.
func TestUserConfigLayers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	inc := filepath.Join(dir, "inc")
	assert.NilError(t, os.WriteFile(inc, []byte("[url \"https://mirror/\"]\n\tinsteadOf = git@github.com:\n"), 0o644))
	g := filepath.Join(dir, "global")
	assert.NilError(t, os.WriteFile(g, []byte("[include]\n\tpath = inc\n[core]\n\tx = 1\n"), 0o644))
	env := map[string]string{"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": g, "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.x", "GIT_CONFIG_VALUE_0": "2"}
	c, err := gitrepo.UserConfig(gitrepo.ConfigEnv{Getenv: func(k string) string { return env[k] }})
	assert.NilError(t, err)
	v, _ := c.Get("core", "", "x")
	assert.Equal(t, v, "2")
	assert.Equal(t, gitrepo.RewriteURL("git@github.com:o/r", c.Rewrites(), nil), "https://mirror/o/r")
	// A config file that does not parse is an error naming it.
	assert.NilError(t, os.WriteFile(g, []byte("[core\n"), 0o644))
	_, err = gitrepo.UserConfig(gitrepo.ConfigEnv{Getenv: func(k string) string { return env[k] }})
	assert.ErrorContains(t, err, g)
}

// TestSSHCredentials: without an agent or a usable identity file an ssh
// remote fails at once with the cause, before any connection.
func TestSSHCredentials(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(home, ".ssh"), 0o700))
	env := map[string]string{"HOME": home}
	ssh := gitrepo.DefaultSSH(func(k string) string { return env[k] })
	_, err := gitrepo.LsRemote(t.Context(), "git@github.com:logos-co/x.git", &ssh)
	assert.ErrorIs(t, err, gitrepo.ErrNoKnownHosts)
	assert.NilError(t, os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), []byte("github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"), 0o600))
	_, err = gitrepo.LsRemote(t.Context(), "git@github.com:logos-co/x.git", &ssh)
	assert.ErrorIs(t, err, gitrepo.ErrNoSSHCredentials)
	var re *gitrepo.RemoteError
	assert.Assert(t, errorsAs(err, &re))
	assert.Equal(t, re.Kind, gitrepo.RemoteAuth)
	assert.Assert(t, gitrepo.IsSSHURL("git@github.com:o/r"))
	assert.Assert(t, !gitrepo.IsSSHURL("file:///x"))
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// CommitTreeOf reads the tree of loose and packed commits (and through
// alternates) as git does.
func TestCommitTreeOf(t *testing.T) {
	requires.Tool(t, "git")
	t.Parallel()
	dir := t.TempDir()
	env := gitEnv(filepath.Join(dir, "home"))
	w := filepath.Join(dir, "w")
	gitIn(t, env, dir, "init", "-q", "-b", "master", w)
	var commits []string
	for i := range 30 {
		assert.NilError(t, os.WriteFile(filepath.Join(w, "f"), []byte(strings.Repeat("x", i+1)), 0o644))
		gitIn(t, env, w, "add", "f")
		gitIn(t, env, w, "commit", "-q", "-m", "c")
		commits = append(commits, gitIn(t, env, w, "rev-parse", "HEAD"))
	}
	check := func(repo string) {
		t.Helper()
		r, err := gitrepo.Open(repo)
		assert.NilError(t, err)
		for _, c := range commits {
			got, err := r.CommitTreeOf(plumbingHash(c))
			assert.NilError(t, err)
			assert.Equal(t, got.String(), gitIn(t, env, repo, "rev-parse", c+"^{tree}"))
		}
	}
	check(w) // loose
	gitIn(t, env, w, "gc", "-q", "--aggressive")
	check(w) // packed (and perhaps deltified: the fallback)
	// Borrowed through alternates.
	b := filepath.Join(dir, "b")
	gitIn(t, env, dir, "clone", "-q", "--shared", w, b)
	check(b)
	r, err := gitrepo.Open(b)
	assert.NilError(t, err)
	_, err = r.CommitTreeOf(plumbingHash(strings.Repeat("ab", 20)))
	assert.ErrorIs(t, err, gitrepo.ErrMissingObject)
}

func plumbingHash(s string) plumbing.Hash { return plumbing.NewHash(s) }

// Compare and Log agree with git rev-list on histories with branches and
// merges, walking only what lies above the merge base.
func TestCompareAsGit(t *testing.T) {
	requires.Tool(t, "git")
	t.Parallel()
	dir := t.TempDir()
	env := gitEnv(filepath.Join(dir, "home"))
	w := filepath.Join(dir, "w")
	gitIn(t, env, dir, "init", "-q", "-b", "master", w)
	n := 0
	commit := func(file string) string {
		n++
		assert.NilError(t, os.WriteFile(filepath.Join(w, file), []byte(strconv.Itoa(n)), 0o644))
		gitIn(t, env, w, "add", file)
		date := fmt.Sprintf("2026-01-01T00:%02d:%02dZ", n/60, n%60)
		cmd := exec.Command("git", "-C", w, "commit", "-q", "-m", "c"+strconv.Itoa(n))
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t",
			"GIT_COMMITTER_DATE="+date, "GIT_AUTHOR_DATE="+date, "HOME="+env["HOME"], "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		assert.NilError(t, err, string(out))
		return gitIn(t, env, w, "rev-parse", "HEAD")
	}
	var all []string
	for range 40 {
		all = append(all, commit("m"))
	}
	gitIn(t, env, w, "checkout", "-q", "-b", "side", all[20])
	for range 15 {
		all = append(all, commit("s"))
	}
	gitIn(t, env, w, "checkout", "-q", "master")
	for range 5 {
		all = append(all, commit("m"))
	}
	n++
	date := fmt.Sprintf("2026-01-01T00:%02d:%02dZ", n/60, n%60)
	gitIn(t, map[string]string{"HOME": env["HOME"], "GIT_CONFIG_NOSYSTEM": "1", "GIT_COMMITTER_DATE": date, "GIT_AUTHOR_DATE": date},
		w, "merge", "-q", "--no-ff", "-m", "merge", "side")
	all = append(all, gitIn(t, env, w, "rev-parse", "HEAD"))
	for range 5 {
		all = append(all, commit("m"))
	}
	gitIn(t, env, w, "gc", "-q")
	r, err := gitrepo.Open(w)
	assert.NilError(t, err)
	pairs := [][2]int{{0, len(all) - 1}, {30, 50}, {45, 59}, {39, 54}, {len(all) - 1, 10}, {20, 20}}
	for _, p := range pairs {
		a, b := all[p[0]], all[p[1]]
		oa, ob, err := r.Compare(plumbingHash(a), plumbingHash(b))
		assert.NilError(t, err)
		assert.Equal(t, fmt.Sprintf("%d\t%d", oa, ob), gitIn(t, env, w, "rev-list", "--left-right", "--count", a+"..."+b), "%v", p)
		log, err := r.Log(plumbingHash(a), plumbingHash(b))
		assert.NilError(t, err)
		var got []string
		for _, c := range log {
			got = append(got, c.Hash)
		}
		want := gitIn(t, env, w, "log", "--format=%H", a+".."+b)
		assert.Equal(t, strings.Join(got, "\n"), want, "%v", p)
	}
}

// A stat cache spares re-hashing files whose stat data left the index's
// (a copied work tree), and still sees a change made since.
func TestStatCache(t *testing.T) {
	requires.Tool(t, "git")
	t.Parallel()
	dir := t.TempDir()
	env := gitEnv(filepath.Join(dir, "home"))
	w := filepath.Join(dir, "w")
	gitIn(t, env, dir, "init", "-q", "-b", "master", w)
	for i := range 20 {
		assert.NilError(t, os.WriteFile(filepath.Join(w, fmt.Sprintf("f%02d", i)), []byte(strings.Repeat("x", 100+i)), 0o644))
	}
	gitIn(t, env, w, "add", "-A")
	gitIn(t, env, w, "commit", "-q", "-m", "c")
	// A copy: every file's ctime and inode now differ from the index.
	cp := filepath.Join(dir, "copy")
	out, err := exec.Command("cp", "-a", w, cp).CombinedOutput()
	assert.NilError(t, err, string(out))
	cachePath := filepath.Join(dir, "state", "stat-cache")
	status := func() *gitrepo.Status {
		t.Helper()
		r, err := gitrepo.Open(cp)
		assert.NilError(t, err)
		c := gitrepo.LoadStatCache(cachePath)
		st, err := r.Status(t.Context(), gitrepo.StatusOptions{StatCache: c})
		assert.NilError(t, err)
		assert.NilError(t, c.Save(cachePath))
		return st
	}
	assert.Assert(t, status().Clean())
	fi, err := os.Stat(cachePath)
	assert.NilError(t, err)
	assert.Assert(t, fi.Size() > 20*40, "the hashed files are remembered")
	// Entries count only for files modified before the cache was written.
	past := time.Now().Add(-time.Minute)
	assert.NilError(t, os.Chtimes(cachePath, time.Now().Add(time.Minute), time.Now().Add(time.Minute)))
	assert.Assert(t, status().Clean())
	// A change since, with the same size and mtime: the ctime moved, so the
	// cache does not vouch for it and the content is hashed.
	f := filepath.Join(cp, "f03")
	st0, err := os.Stat(f)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(f, []byte(strings.Repeat("y", 103)), 0o644))
	assert.NilError(t, os.Chtimes(f, past, st0.ModTime()))
	got := status()
	assert.DeepEqual(t, got.Unstaged, []gitrepo.FileChange{{Path: "f03", Change: gitrepo.Modified}})
}
