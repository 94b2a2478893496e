package upgrades

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/requires"
	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t",
		"GIT_AUTHOR_DATE=2026-04-01T00:00:00Z", "GIT_COMMITTER_DATE=2026-04-01T00:00:00Z")
	out, err := cmd.CombinedOutput()
	assert.NilError(t, err, string(out))
	return strings.TrimSpace(string(out))
}

func snap(t *testing.T, root string) *workspace.Snapshot {
	t.Helper()
	res, err := snapshot.Run(context.Background(), snapshot.Request{Workspace: root, Parallelism: 4})
	assert.NilError(t, err)
	return &res.Snapshot
}

func byPath(u *Upgrades) map[string]Repo {
	out := map[string]Repo{}
	for _, r := range u.Repos {
		out[r.Path] = r
	}
	return out
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	addr := l.Addr().String()
	assert.NilError(t, l.Close())
	return addr
}

func TestRelations(t *testing.T) {
	t.Parallel()
	requires.Tool(t, "git")
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{
		Modules: 6, Ahead: map[string]int{"logos-chat-module": 3, "logos-waku-module": 1},
	})
	assert.NilError(t, err)
	// storage: the remote rewrote history (diverged from the pin).
	storage := ws.Repo("logos-storage-module")
	tree := git(t, storage.Remote, "rev-parse", storage.History[0].String()+"^{tree}")
	d := git(t, storage.Remote, "commit-tree", tree, "-p", storage.History[0].String(), "-m", "Rewritten upstream")
	git(t, storage.Remote, "update-ref", "refs/heads/master", d)
	// capability: the pin is ahead of its remote (unpushed local commit).
	capab := ws.Repo("logos-capability-module")
	git(t, capab.Remote, "update-ref", "refs/heads/master", capab.History[0].String())

	// Remotes that cannot answer, set where git takes them from: the
	// submodules' own remotes.
	git(t, filepath.Join(ws.Root, "repos/logos-wallet-module"), "remote", "set-url", "origin", filepath.Join(ws.Remotes, "gone.git"))
	git(t, filepath.Join(ws.Root, "repos/logos-package-manager"), "remote", "set-url", "origin", "git://"+closedPort(t)+"/x.git")

	s := snap(t, ws.Root)
	untouched := snap(t, ws.Root)
	gitState := treeState(t, filepath.Join(ws.Root, ".git"))
	before, err := os.ReadFile(filepath.Join(ws.Root, ".git/modules/repos/logos-chat-module/refs/remotes/origin/master"))
	assert.NilError(t, err)
	// The SDK declares no branch here: its remote's HEAD (main) is found.
	s.Submodule("repos/logos-cpp-sdk").Branch = ""

	store := t.TempDir()
	var calls atomic.Int32
	res, err := Run(context.Background(), Request{Snapshot: s, Store: store, Retries: 1, Timeout: 20 * time.Second,
		Progress: func(done, total int) { calls.Add(1) }})
	assert.NilError(t, err)
	got := byPath(&res.Upgrades)
	chat := got["repos/logos-chat-module"]
	assert.Equal(t, chat.Relation, Behind, chat.Reason)
	assert.Equal(t, chat.Behind, 3)
	assert.Equal(t, chat.Head, ws.Repo("logos-chat-module").Head.String())
	assert.DeepEqual(t, chat.Inputs, []string{"logos-chat-module"})
	assert.Equal(t, chat.BranchFrom, FromRemoteHead)
	assert.Equal(t, got["repos/logos-waku-module"].Behind, 1)
	assert.Equal(t, got["repos/logos-storage-module"].Relation, Diverged)
	assert.Equal(t, got["repos/logos-storage-module"].Ahead, 1)
	assert.Equal(t, got["repos/logos-storage-module"].Behind, 1)
	assert.Equal(t, got["repos/logos-capability-module"].Relation, Ahead)
	assert.Equal(t, got["repos/logos-capability-module"].Ahead, 1)
	sdk := got["repos/logos-cpp-sdk"]
	assert.Equal(t, sdk.Relation, UpToDate)
	assert.Equal(t, sdk.Branch, "main")
	assert.Equal(t, sdk.BranchFrom, FromRemoteHead)
	wallet := got["repos/logos-wallet-module"]
	assert.Equal(t, wallet.Relation, Unknown)
	assert.Assert(t, strings.HasPrefix(wallet.Reason, "not-found:"), wallet.Reason)
	acc := got["repos/logos-package-manager"]
	assert.Equal(t, acc.Relation, Unknown)
	assert.Assert(t, strings.HasPrefix(acc.Reason, "unreachable:"), acc.Reason)
	assert.Equal(t, acc.URLFrom, gitrepo.URLFromSubmodule)
	assert.DeepEqual(t, res.Upgrades.Summary, Summary{Repos: 8, UpToDate: 2, Behind: 2, Ahead: 1, Diverged: 1, Unknown: 2})
	// Each cause once, with its fix.
	assert.Equal(t, len(res.Upgrades.Problems), 2)
	for _, p := range res.Upgrades.Problems {
		assert.Assert(t, p.Hint != "", p.Cause)
		assert.Equal(t, len(p.Repos), 1)
	}
	assert.Equal(t, int(calls.Load()), 8)

	// The workspace is untouched: same snapshot, same remote-tracking refs.
	assert.DeepEqual(t, workspace.Compare(untouched, snap(t, ws.Root)), []workspace.Difference(nil))
	after, err := os.ReadFile(filepath.Join(ws.Root, ".git/modules/repos/logos-chat-module/refs/remotes/origin/master"))
	assert.NilError(t, err)
	assert.Equal(t, string(after), string(before))

	// The head's objects are in the store, not in the submodule.
	st, err := gitrepo.OpenBare(filepath.Join(store, chat.Store))
	assert.NilError(t, err)
	assert.Assert(t, st.HasCommit(plumbing.NewHash(chat.Head)))
	assert.Equal(t, treeState(t, filepath.Join(ws.Root, ".git")), gitState, "nothing was written into the workspace's git directories")

	// Same remotes, same answer; a second run fetches nothing new.
	again, err := Run(context.Background(), Request{Snapshot: s, Store: store, Retries: 1})
	assert.NilError(t, err)
	assert.DeepEqual(t, again.Upgrades, res.Upgrades)
}

// The network path: the git protocol against a git daemon on loopback.
func TestGitDaemon(t *testing.T) {
	t.Parallel()
	requires.Tool(t, "git")
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 3, Ahead: map[string]int{"logos-chat-module": 2}})
	assert.NilError(t, err)
	addr := closedPort(t)
	_, port, _ := net.SplitHostPort(addr)
	daemon := exec.Command("git", "daemon", "--export-all", "--reuseaddr", "--listen=127.0.0.1", "--port="+port, "--base-path="+ws.Remotes, ws.Remotes)
	// Its own process group, killed whole: git daemon forks a child per
	// connection.
	daemon.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := daemon.Start(); err != nil {
		t.Fatalf("git daemon (part of git) does not start: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-daemon.Process.Pid, syscall.SIGKILL); _ = daemon.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("git daemon did not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	res, err := Run(context.Background(), Request{
		Snapshot: snap(t, ws.Root), Store: t.TempDir(),
		InsteadOf: map[string]string{ws.Remotes + "/": "git://" + addr + "/"},
	})
	assert.NilError(t, err)
	got := byPath(&res.Upgrades)
	chat := got["repos/logos-chat-module"]
	assert.Equal(t, chat.URL, "git://"+addr+"/logos-chat-module.git")
	assert.Equal(t, chat.Relation, Behind, chat.Reason)
	assert.Equal(t, chat.Behind, 2)
	assert.Equal(t, res.Upgrades.Summary.UpToDate, 4)
}

// Offline, the submodules' fetched remote-tracking refs are the heads and
// nothing touches the network.
func TestOffline(t *testing.T) {
	t.Parallel()
	requires.Tool(t, "git")
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 3, Ahead: map[string]int{"logos-chat-module": 2}})
	assert.NilError(t, err)
	git(t, filepath.Join(ws.Root, "repos/logos-chat-module"), "fetch", "-q", "origin")
	res, err := Run(context.Background(), Request{Snapshot: snap(t, ws.Root), Offline: true,
		network: failing{err: errors.New("the network must not be used offline")}})
	assert.NilError(t, err)
	got := byPath(&res.Upgrades)
	assert.Equal(t, got["repos/logos-chat-module"].Relation, Behind)
	assert.Equal(t, got["repos/logos-chat-module"].Behind, 2)
	assert.Equal(t, got["repos/logos-cpp-sdk"].Relation, UpToDate)
	assert.Equal(t, got["repos/logos-cpp-sdk"].Branch, "main")
	assert.Equal(t, res.Upgrades.Summary.Unknown, 0)
	assert.Check(t, res.Upgrades.Offline)
}

type failing struct {
	err   error
	calls *atomic.Int32
}

func (f failing) LsRemote(ctx context.Context, url string) (*gitrepo.RemoteRefs, error) {
	if f.calls != nil {
		f.calls.Add(1)
	}
	return nil, f.err
}

func (f failing) Fetch(context.Context, *gitrepo.Repo, string, string, map[string]plumbing.Hash) (plumbing.Hash, error) {
	return plumbing.ZeroHash, f.err
}

// Transient failures are retried; an authentication failure is not.
func TestRetries(t *testing.T) {
	t.Parallel()
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 1})
	assert.NilError(t, err)
	s := snap(t, ws.Root)
	for _, tc := range []struct {
		kind  string
		calls int32
	}{{gitrepo.RemoteUnreachable, 3 * 3}, {gitrepo.RemoteAuth, 3}} {
		var calls atomic.Int32
		res, err := Run(context.Background(), Request{Snapshot: s, Store: t.TempDir(), Retries: 2,
			network: failing{err: &gitrepo.RemoteError{Kind: tc.kind, URL: "x", Err: fmt.Errorf("%s!", tc.kind)}, calls: &calls}})
		assert.NilError(t, err)
		assert.Equal(t, calls.Load(), tc.calls, tc.kind)
		for _, r := range res.Upgrades.Repos {
			assert.Equal(t, r.Relation, Unknown)
			assert.Assert(t, strings.HasPrefix(r.Reason, tc.kind+":"), r.Reason)
		}
	}
}

func TestStoreName(t *testing.T) {
	t.Parallel()
	assert.Equal(t, StoreName("repos/logos-chat-module"), StoreName("repos/logos-chat-module"))
	assert.Assert(t, StoreName("a/x") != StoreName("b/x"))
}

// treeState lists every file below dir with its size and modification time.
func treeState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %d %d\n", p, info.Size(), info.ModTime().UnixNano())
		return nil
	})
	assert.NilError(t, err)
	return b.String()
}

// Remotes that git reaches over SSH without an agent or a key fail for
// one cause: one problem naming every repository, with the fix, before any
// connection is tried.
func TestNoSSHCredentialsOnce(t *testing.T) {
	t.Parallel()
	requires.Tool(t, "git")
	o := sample.RealisticOptions()
	ws, err := sample.Generate(context.Background(), t.TempDir(), o)
	assert.NilError(t, err)
	// As on a host where .gitmodules' SSH URLs are what git uses (git
	// submodule sync copied them back).
	for _, r := range ws.Repos {
		git(t, filepath.Join(ws.Root, r.Path), "remote", "set-url", "origin", "git@github.com:logos-co/"+r.Name+".git")
	}
	home := t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(home, ".ssh"), 0o700))
	assert.NilError(t, os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), []byte("github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"), 0o600))
	ssh := gitrepo.DefaultSSH(func(k string) string { return map[string]string{"HOME": home}[k] })
	res, err := Run(context.Background(), Request{Snapshot: snap(t, ws.Root), Store: t.TempDir(), SSH: &ssh, Timeout: 10 * time.Second})
	assert.NilError(t, err)
	var ssh1 *Problem
	for i, p := range res.Upgrades.Problems {
		if p.Cause == gitrepo.ErrNoSSHCredentials.Error() {
			ssh1 = &res.Upgrades.Problems[i]
		}
	}
	assert.Assert(t, ssh1 != nil, "%+v", res.Upgrades.Problems)
	// Every repository with a gitlink: the one whose pin is lost fails the
	// same way, as it never gets to the remote either.
	assert.Equal(t, len(ssh1.Repos), len(ws.Repos))
	assert.Assert(t, strings.Contains(ssh1.Hint, "ssh-agent") && strings.Contains(ssh1.Hint, "insteadOf"), ssh1.Hint)
}
