package gitrepo

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// MaxAdvertisement bounds a remote's ref advertisement over http(s): a
// real one is a few KiB to a few MiB (one line per ref); a remote that
// streams without end is cut off with an error instead of filling memory.
const MaxAdvertisement = 16 << 20

// MaxAdvertisements bounds the advertisements being read at once, all
// remotes together (upgrades queries 64 at once): a read that would pass
// it fails like one too large, instead of 64 hostile remotes holding
// 64 × MaxAdvertisement.
const MaxAdvertisements = 256 << 20

// ErrAdvertisementTooLarge: a remote advertised more than MaxAdvertisement
// (or the advertisements read at once more than MaxAdvertisements).
var ErrAdvertisementTooLarge = errors.New("the remote's ref advertisement is too large")

var advBudget = semaphore.NewWeighted(MaxAdvertisements)

var installBounded sync.Once

// boundHTTP makes go-git's http(s) transport read at most
// MaxAdvertisement of any ref advertisement.
func boundHTTP() {
	installBounded.Do(func() {
		c := &http.Client{Transport: boundedTransport{base: http.DefaultTransport}}
		client.InstallProtocol("http", githttp.NewClient(c))
		client.InstallProtocol("https", githttp.NewClient(c))
	})
}

type boundedTransport struct{ base http.RoundTripper }

func (t boundedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, "/info/refs") {
		return resp, err
	}
	resp.Body = &boundedBody{rc: resp.Body, left: MaxAdvertisement}
	return resp, nil
}

type boundedBody struct {
	rc    io.ReadCloser
	left  int64
	mu    sync.Mutex
	taken int64 // of advBudget
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrAdvertisementTooLarge, int64(MaxAdvertisement))
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if n > 0 {
		if !advBudget.TryAcquire(int64(n)) {
			return 0, fmt.Errorf("%w: the advertisements being read at once passed %d bytes", ErrAdvertisementTooLarge, int64(MaxAdvertisements))
		}
		b.mu.Lock()
		b.taken += int64(n)
		b.mu.Unlock()
	}
	return n, err
}

// Close gives the bytes read back to the shared budget.
func (b *boundedBody) Close() error {
	b.mu.Lock()
	if b.taken > 0 {
		advBudget.Release(b.taken)
		b.taken = 0
	}
	b.mu.Unlock()
	return b.rc.Close()
}
