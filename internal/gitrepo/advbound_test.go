package gitrepo

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// endless writes a ref advertisement that never ends.
func endless(w io.Writer) {
	sha := strings.Repeat("a", 40)
	first := sha + " HEAD\x00multi_ack\n"
	if _, err := fmt.Fprintf(w, "%04x%s", 4+len(first), first); err != nil {
		return
	}
	for i := 0; ; i++ {
		line := fmt.Sprintf("%s refs/heads/b%09d\n", sha, i)
		if _, err := fmt.Fprintf(w, "%04x%s", 4+len(line), line); err != nil {
			return
		}
	}
}

func tooLarge(t *testing.T, err error) {
	t.Helper()
	t.Logf("error: %v", err)
	if err == nil || !errors.Is(err, ErrAdvertisementTooLarge) {
		t.Fatalf("an endless advertisement was not cut off: %v", err)
	}
	budgetFree(t)
}

// budgetFree checks that every byte read was given back to the budget of
// advertisements read at once.
func budgetFree(t *testing.T) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if advBudget.TryAcquire(MaxAdvertisements) {
			advBudget.Release(MaxAdvertisements)
			return
		}
		time.Sleep(20 * time.Millisecond) // a reader still closing
	}
	t.Fatal("bytes of finished reads are still held in the shared budget")
}

// git://: an endless advertisement is cut off at MaxAdvertisement.
func TestEndlessGitDaemonBounded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var b [512]byte
				_, _ = c.Read(b[:]) // the upload-pack request
				endless(c)
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = LsRemote(ctx, "git://"+l.Addr().String()+"/repo.git", nil)
	tooLarge(t, err)
}

// git:// against the real git daemon: the same branches and HEAD as git
// ls-remote says.
func TestGitDaemonLsRemote(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("skipped: git is not installed")
	}
	base := t.TempDir()
	repo := filepath.Join(base, "repo.git")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(gitBin, args...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+base, "GIT_AUTHOR_NAME=a", "GIT_AUTHOR_EMAIL=a@b", "GIT_COMMITTER_NAME=a", "GIT_COMMITTER_EMAIL=a@b")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	work := filepath.Join(base, "work")
	run("init", "-q", "-b", "trunk", work)
	run("-C", work, "commit", "-q", "--allow-empty", "-m", "one")
	run("-C", work, "branch", "dev")
	run("-C", work, "commit", "-q", "--allow-empty", "-m", "two")
	run("clone", "-q", "--bare", work, repo)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	daemon := exec.Command(gitBin, "daemon", "--export-all", "--base-path="+base, "--listen=127.0.0.1", fmt.Sprintf("--port=%d", port), "--reuseaddr", base)
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = daemon.Process.Kill(); _ = daemon.Wait() }()
	url := fmt.Sprintf("git://127.0.0.1:%d/repo.git", port)
	var refs *RemoteRefs
	for i := 0; i < 100; i++ {
		if refs, err = LsRemote(context.Background(), url, nil); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(run("ls-remote", "--heads", url)), "\n") {
		f := strings.Fields(line)
		want[strings.TrimPrefix(f[1], "refs/heads/")] = f[0]
	}
	got := map[string]string{}
	for b, h := range refs.Branches {
		got[b] = h.String()
	}
	keys := func(m map[string]string) string {
		var k []string
		for b, h := range m {
			k = append(k, b+"="+h)
		}
		sort.Strings(k)
		return strings.Join(k, " ")
	}
	if keys(got) != keys(want) || refs.HeadBranch != "trunk" {
		t.Fatalf("got %s HEAD %q, git ls-remote says %s HEAD trunk", keys(got), refs.HeadBranch, keys(want))
	}
}

// ssh://: a server whose git-upload-pack streams without end is cut off;
// one running the real git-upload-pack answers as git ls-remote does.
func TestSSHAdvertisement(t *testing.T) {
	url, cred := sshServer(t, func(cmd string, ch ssh.Channel) {
		endless(ch)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := LsRemote(ctx, url, cred)
	tooLarge(t, err)

	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("skipped: git is not installed")
	}
	base := t.TempDir()
	work := filepath.Join(base, "work")
	for _, args := range [][]string{{"init", "-q", "-b", "trunk", work}, {"-C", work, "commit", "-q", "--allow-empty", "-m", "one"}, {"-C", work, "branch", "dev"}} {
		cmd := exec.Command(gitBin, args...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=a", "GIT_AUTHOR_EMAIL=a@b", "GIT_COMMITTER_NAME=a", "GIT_COMMITTER_EMAIL=a@b")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	url, cred = sshServer(t, func(cmd string, ch ssh.Channel) {
		if !strings.HasPrefix(cmd, "git-upload-pack '") {
			return
		}
		up := exec.Command(gitBin, "upload-pack", strings.Trim(strings.TrimPrefix(cmd, "git-upload-pack "), "'"))
		up.Stdin, up.Stdout = ch, ch
		_ = up.Run()
	})
	refs, err := LsRemote(ctx, strings.Replace(url, "/repo.git", work, 1), cred)
	if err != nil {
		t.Fatal(err)
	}
	if refs.HeadBranch != "trunk" || len(refs.Branches) != 2 || refs.Branches["dev"] != refs.Branches["trunk"] {
		t.Fatalf("got %+v", refs)
	}
}

// sshServer serves ssh on loopback, each exec request by handle; it
// returns a URL of it and the SSH settings that trust and log into it.
func sshServer(t *testing.T, handle func(cmd string, ch ssh.Channel)) (string, *SSH) {
	dir := t.TempDir()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	_, userPriv, _ := ed25519.GenerateKey(rand.Reader)
	userSigner, _ := ssh.NewSignerFromKey(userPriv)
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) == string(userSigner.PublicKey().Marshal()) {
			return nil, nil
		}
		return nil, errors.New("unknown key")
	}}
	cfg.AddHostKey(hostSigner)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveSSH(c, cfg, handle)
		}
	}()
	addr := l.Addr().(*net.TCPAddr)
	known := filepath.Join(dir, "known_hosts")
	line := fmt.Sprintf("[127.0.0.1]:%d %s", addr.Port, ssh.MarshalAuthorizedKey(hostSigner.PublicKey()))
	if err := os.WriteFile(known, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	keyPEM, err := ssh.MarshalPrivateKey(userPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	id := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(id, pem.EncodeToMemory(keyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("ssh://git@127.0.0.1:%d/repo.git", addr.Port), &SSH{IdentityFiles: []string{id}, KnownHosts: []string{known}}
}

func serveSSH(c net.Conn, cfg *ssh.ServerConfig, handle func(string, ssh.Channel)) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "no")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			for r := range creqs {
				if r.Type == "exec" {
					_ = r.Reply(true, nil)
					var cmd struct{ Command string }
					_ = ssh.Unmarshal(r.Payload, &cmd)
					go func() {
						handle(cmd.Command, ch)
						_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
						ch.Close()
					}()
					continue
				}
				_ = r.Reply(false, nil)
			}
		}()
	}
}

// Many endless advertisements at once hold no more than MaxAdvertisements
// together: reads past it fail, and all is given back afterwards.
func TestAdvertisementBudget(t *testing.T) {
	const readers = 20 // 20 × 16 MiB > 256 MiB
	errs := make(chan error, readers)
	start := make(chan struct{})
	for i := 0; i < readers; i++ {
		go func() {
			pr, pw := io.Pipe()
			go func() { endless(pw); pw.Close() }()
			b := &boundedBody{rc: pr, left: MaxAdvertisement}
			<-start
			buf := make([]byte, 32<<10)
			var err error
			for err == nil {
				_, err = b.Read(buf)
			}
			time.Sleep(200 * time.Millisecond) // hold the budget while the others read
			b.Close()
			errs <- err
		}()
	}
	close(start)
	shared := 0
	for i := 0; i < readers; i++ {
		err := <-errs
		if !errors.Is(err, ErrAdvertisementTooLarge) {
			t.Fatalf("reader ended with %v", err)
		}
		if strings.Contains(err.Error(), "at once") {
			shared++
		}
	}
	if shared == 0 {
		t.Fatal("no read was stopped by the shared budget")
	}
	budgetFree(t)
}
