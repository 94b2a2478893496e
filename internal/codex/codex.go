// Package codex talks to a Codex (Logos Storage) node's REST API: upload
// bytes and get their CID, download bytes by CID. It is the only place
// lambda-check speaks HTTP to storage.
package codex

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Client is a Codex node's API.
type Client struct {
	// URL is the node's base URL (http://127.0.0.1:8080).
	URL  string
	HTTP *http.Client
	// MaxSize bounds a download (default 1 GiB).
	MaxSize int64
}

// API prefixes: older nodes serve /api/codex/v1, newer ones also
// /api/storage/v1.
var prefixes = []string{"/api/codex/v1", "/api/storage/v1"}

// cidPattern is what a CID looks like (base32 or base58 multibase).
var cidPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9]{16,128}$`) })

// New returns a client with a timeout per request.
func New(url string, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	return &Client{URL: strings.TrimSuffix(url, "/"), HTTP: &http.Client{Timeout: timeout}, MaxSize: 1 << 30}
}

// Upload stores data and returns its CID.
func (c *Client) Upload(ctx context.Context, data []byte) (string, error) {
	var last error
	for _, p := range prefixes {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+p+"/data", bytes.NewReader(data))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := c.HTTP.Do(req)
		if err != nil {
			return "", fmt.Errorf("codex upload to %s: %w", c.URL, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if err != nil {
			return "", fmt.Errorf("codex upload to %s: %w", c.URL, err)
		}
		if resp.StatusCode == http.StatusNotFound {
			last = fmt.Errorf("codex upload to %s%s: 404", c.URL, p)
			continue
		}
		if resp.StatusCode/100 != 2 {
			return "", fmt.Errorf("codex upload to %s%s: %s: %s", c.URL, p, resp.Status, strings.TrimSpace(string(body)))
		}
		cid := strings.TrimSpace(string(body))
		if !cidPattern().MatchString(cid) {
			return "", fmt.Errorf("codex upload to %s: the answer %q is not a CID", c.URL, cid)
		}
		return cid, nil
	}
	return "", last
}

// Download fetches the bytes of a CID (from the network, through the
// node).
func (c *Client) Download(ctx context.Context, cid string) ([]byte, error) {
	if !cidPattern().MatchString(cid) {
		return nil, fmt.Errorf("%q is not a CID", cid)
	}
	var last error
	for _, p := range prefixes {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+p+"/data/"+cid+"/network/stream", nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.HTTP.Do(req)
		if err != nil {
			return nil, fmt.Errorf("codex download of %s from %s: %w", cid, c.URL, err)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, c.MaxSize+1))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("codex download of %s from %s: %w", cid, c.URL, err)
		}
		if resp.StatusCode == http.StatusNotFound && !bytes.Contains(b, []byte(cid)) {
			last = fmt.Errorf("codex download of %s from %s%s: 404", cid, c.URL, p)
			continue
		}
		if resp.StatusCode/100 != 2 {
			return nil, fmt.Errorf("codex download of %s from %s: %s", cid, c.URL, resp.Status)
		}
		if int64(len(b)) > c.MaxSize {
			return nil, errors.New("codex download: larger than the limit")
		}
		return b, nil
	}
	return nil, last
}
