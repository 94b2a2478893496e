package gitrepo

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/pktline"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/transport"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// advertise reads a git:// or ssh:// remote's ref advertisement itself,
// through a reader that stops at MaxAdvertisement (go-git's own git and
// ssh transports read it without a bound, and keep no hook to add one).
// It returns nil, nil for other protocols.
func advertise(ctx context.Context, url string, auth transport.AuthMethod) ([]*plumbing.Reference, error) {
	ep, err := transport.NewEndpoint(url)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	var done func()
	switch ep.Protocol {
	case "git":
		r, done, err = gitDaemon(ctx, ep)
	case "ssh":
		r, done, err = sshUploadPack(ctx, ep, auth)
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer done()
	ar := packp.NewAdvRefs()
	body := &boundedBody{rc: io.NopCloser(r), left: MaxAdvertisement}
	defer body.Close()
	if err := ar.Decode(body); err != nil {
		if err == packp.ErrEmptyAdvRefs || err == packp.ErrEmptyInput {
			return nil, transport.ErrEmptyRemoteRepository
		}
		if strings.Contains(err.Error(), ErrAdvertisementTooLarge.Error()) {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrAdvertisementTooLarge, int64(MaxAdvertisement))
		}
		return nil, err
	}
	st, err := ar.AllReferences()
	if err != nil {
		return nil, err
	}
	it, err := st.IterReferences()
	if err != nil {
		return nil, err
	}
	refs := []*plumbing.Reference{} // not nil: the remote was read
	err = it.ForEach(func(r *plumbing.Reference) error {
		refs = append(refs, r)
		return nil
	})
	return refs, err
}

// gitDaemon opens git://host[:port]/path and asks for upload-pack.
func gitDaemon(ctx context.Context, ep *transport.Endpoint) (io.Reader, func(), error) {
	port := ep.Port
	if port == 0 {
		port = 9418
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ep.Host, strconv.Itoa(port)))
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	enc := pktline.NewEncoder(conn)
	if err := enc.Encode([]byte(fmt.Sprintf("git-upload-pack %s\x00host=%s\x00", ep.Path, ep.Host))); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, func() {
		stop()
		_ = pktline.NewEncoder(conn).Flush() // "no wants": the daemon ends the session
		conn.Close()
	}, nil
}

// sshUploadPack runs git-upload-pack on an ssh remote with auth.
func sshUploadPack(ctx context.Context, ep *transport.Endpoint, auth transport.AuthMethod) (io.Reader, func(), error) {
	a, ok := auth.(gitssh.AuthMethod)
	if !ok || a == nil {
		return nil, nil, transport.ErrInvalidAuthMethod
	}
	cfg, err := a.ClientConfig()
	if err != nil {
		return nil, nil, err
	}
	port := ep.Port
	if port == 0 {
		port = 22
	}
	addr := net.JoinHostPort(ep.Host, strconv.Itoa(port))
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		stop()
		conn.Close()
		return nil, nil, fmt.Errorf("ssh: handshake failed: %w", err)
	}
	client := ssh.NewClient(c, chans, reqs)
	sess, err := client.NewSession()
	if err != nil {
		stop()
		client.Close()
		return nil, nil, err
	}
	out, err := sess.StdoutPipe()
	if err == nil {
		err = sess.Start("git-upload-pack " + shellQuote(ep.Path))
	}
	if err != nil {
		stop()
		sess.Close()
		client.Close()
		return nil, nil, err
	}
	return out, func() {
		stop()
		sess.Close()
		client.Close()
	}, nil
}

// shellQuote quotes a path for the remote shell as git does ('…', with
// each ' written '\”).
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
