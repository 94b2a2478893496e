package gitrepo

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// SSH says how to authenticate to ssh remotes (ssh:// and scp-like
// user@host:path URLs), as ssh itself would for the user: through the agent
// at AgentSocket when it is set, else with the first of IdentityFiles that
// exists and needs no passphrase; host keys are checked against
// KnownHosts. It is filled from the caller's environment (DefaultSSH);
// nothing here reads the process environment.
type SSH struct {
	AgentSocket   string
	IdentityFiles []string
	KnownHosts    []string
	// User is the login for URLs that name none (ssh's default: the local
	// user).
	User string
}

// DefaultSSH is ssh's defaults for the user whose environment getenv
// reads: $SSH_AUTH_SOCK; ~/.ssh/id_ed25519, id_ecdsa, id_rsa;
// $SSH_KNOWN_HOSTS (colon-separated) else ~/.ssh/known_hosts and
// /etc/ssh/ssh_known_hosts.
func DefaultSSH(getenv func(string) string) SSH {
	s := SSH{AgentSocket: getenv("SSH_AUTH_SOCK"), User: getenv("USER")}
	home := getenv("HOME")
	if home != "" {
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			s.IdentityFiles = append(s.IdentityFiles, filepath.Join(home, ".ssh", n))
		}
	}
	if kh := getenv("SSH_KNOWN_HOSTS"); kh != "" {
		s.KnownHosts = strings.Split(kh, ":")
	} else {
		if home != "" {
			s.KnownHosts = append(s.KnownHosts, filepath.Join(home, ".ssh", "known_hosts"))
		}
		s.KnownHosts = append(s.KnownHosts, "/etc/ssh/ssh_known_hosts")
	}
	return s
}

// ErrNoSSHCredentials: an ssh remote, and neither an agent nor a usable
// identity file.
var ErrNoSSHCredentials = errors.New("no SSH credentials: no SSH agent (SSH_AUTH_SOCK is not set) and no identity file without a passphrase (~/.ssh/id_ed25519, id_ecdsa, id_rsa)")

// ErrNoKnownHosts: an ssh remote whose host key cannot be checked.
var ErrNoKnownHosts = errors.New("no known_hosts file to check the server's host key against (~/.ssh/known_hosts, /etc/ssh/ssh_known_hosts, $SSH_KNOWN_HOSTS)")

// IsSSHURL reports whether git reaches url over ssh.
func IsSSHURL(url string) bool {
	ep, err := transport.NewEndpoint(url)
	return err == nil && ep.Protocol == "ssh"
}

// auth returns the authentication for url: nil for a remote that is not
// ssh (or when s is nil: go-git's own defaults).
func (s *SSH) auth(url string) (transport.AuthMethod, error) {
	if s == nil {
		return nil, nil
	}
	ep, err := transport.NewEndpoint(url)
	if err != nil || ep.Protocol != "ssh" {
		return nil, nil
	}
	user := ep.User
	if user == "" {
		user = s.User
	}
	var known []string
	for _, f := range s.KnownHosts {
		if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
			known = append(known, f)
		}
	}
	if len(known) == 0 {
		return nil, ErrNoKnownHosts
	}
	db, err := gitssh.NewKnownHostsDb(known...)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts: %w", err)
	}
	helper := gitssh.HostKeyCallbackHelper{HostKeyCallback: db.HostKeyCallback()}
	if s.AgentSocket != "" {
		conn, err := net.Dial("unix", s.AgentSocket)
		if err != nil {
			return nil, fmt.Errorf("SSH agent at SSH_AUTH_SOCK=%s: %w", s.AgentSocket, err)
		}
		a := agent.NewClient(conn)
		return &gitssh.PublicKeysCallback{User: user, Callback: a.Signers, HostKeyCallbackHelper: helper}, nil
	}
	for _, f := range s.IdentityFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		signer, err := ssh.ParsePrivateKey(b)
		if err != nil {
			// A passphrase-protected key needs the agent; try the next.
			continue
		}
		return &gitssh.PublicKeys{User: user, Signer: signer, HostKeyCallbackHelper: helper}, nil
	}
	return nil, ErrNoSSHCredentials
}
