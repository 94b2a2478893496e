package codex_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/codex"
	"github.com/lambda-os/lambda-check/internal/sign"
)

// fakeNode implements the two endpoints of the Codex REST API lambda-check
// uses, on loopback: POST /api/codex/v1/data (the body; answers the CID as
// plain text) and GET /api/codex/v1/data/<cid>/network/stream.
type fakeNode struct {
	mu    sync.Mutex
	blobs map[string][]byte
}

func (n *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/codex/v1/data":
		b, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(b)
		cid := "zDvZ" + hex.EncodeToString(sum[:20])
		n.blobs[cid] = b
		io.WriteString(w, cid)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/codex/v1/data/") && strings.HasSuffix(r.URL.Path, "/network/stream"):
		cid := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/codex/v1/data/"), "/network/stream")
		b, ok := n.blobs[cid]
		if !ok {
			http.Error(w, "no such CID "+cid, http.StatusNotFound)
			return
		}
		w.Write(b)
	default:
		http.NotFound(w, r)
	}
}

func TestPublishAndFetch(t *testing.T) {
	t.Parallel()
	node := &fakeNode{blobs: map[string][]byte{}}
	srv := httptest.NewServer(node)
	t.Cleanup(srv.Close)
	c := codex.New(srv.URL, 5*time.Second)
	ctx := context.Background()

	k, err := sign.GenerateKey("node-1", bytes.NewReader(bytes.Repeat([]byte{9}, 32)))
	assert.NilError(t, err)
	reg := &sign.Registry{SchemaVersion: 1, Keys: []sign.Key{sign.RegistryKey(k, sign.Scope{Roles: []string{sign.RoleCheckpoint}})}}
	now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	log := filepath.Join(t.TempDir(), "audit.jsonl")
	add := func(stage string) {
		_, err := audit.Append(log, audit.Event{Time: now.Format(time.RFC3339), Stage: stage, Actor: "op", Result: audit.ResultOK})
		assert.NilError(t, err)
	}
	publish := func() string {
		last, err := audit.LastPublish(log)
		assert.NilError(t, err)
		from, prev := int64(1), ""
		if last != nil {
			from, prev = last.ToSeq+1, last.Manifest
		}
		h, err := audit.ReadHead(log)
		assert.NilError(t, err)
		cp, err := audit.SignCheckpoint(h, k, now)
		assert.NilError(t, err)
		cid, _, err := audit.PublishSegment(ctx, c, log, from, h.Seq, cp, prev)
		assert.NilError(t, err)
		_, err = audit.Append(log, audit.Event{Time: now.Format(time.RFC3339), Stage: "publish", Actor: "op", Result: audit.ResultOK,
			Publish: &audit.Publish{Manifest: cid, FromSeq: from, ToSeq: h.Seq, URL: srv.URL}})
		assert.NilError(t, err)
		return cid
	}
	add("snapshot")
	add("policy")
	first := publish()
	add("upgrades")
	second := publish()
	assert.Assert(t, first != second)

	got, cps, err := audit.Fetch(ctx, c, second)
	assert.NilError(t, err)
	assert.Equal(t, len(cps), 2)
	local, err := os.ReadFile(log)
	assert.NilError(t, err)
	// The published log is the local one up to the last publication.
	assert.Assert(t, bytes.HasPrefix(local, got))
	rep, err := audit.Verify(bytes.NewReader(got), audit.VerifyOptions{Registry: reg, Now: now, Checkpoints: cps})
	assert.NilError(t, err)
	assert.Assert(t, rep.Problem == nil, "%v", rep.Problem)
	assert.Equal(t, rep.Events, int64(4))

	// A segment changed in storage is found.
	node.mu.Lock()
	for cid, b := range node.blobs {
		if bytes.Contains(b, []byte(`"stage":"upgrades"`)) {
			node.blobs[cid] = bytes.Replace(b, []byte("upgrades"), []byte("upgradez"), 1)
		}
	}
	node.mu.Unlock()
	_, _, err = audit.Fetch(ctx, c, second)
	assert.ErrorContains(t, err, "does not match its digest")

	_, err = c.Download(ctx, "zDvZ0000000000000000000000")
	assert.ErrorContains(t, err, "404")
	_, err = c.Download(ctx, "../etc/passwd")
	assert.ErrorContains(t, err, "is not a CID")
	bad := codex.New("http://127.0.0.1:1", time.Second)
	_, err = bad.Upload(ctx, []byte("x"))
	assert.ErrorContains(t, err, "codex upload to http://127.0.0.1:1")
}
