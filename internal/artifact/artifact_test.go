package artifact_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/artifact"
)

type payload struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

var spec = artifact.Spec{Kind: "lambda-check/test", Version: 2, Migrations: []artifact.Migration{{
	From: 1,
	Migrate: func(raw []byte) ([]byte, error) {
		// v1 called the field "n".
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, err
		}
		// Any bytes reach a migration: a missing or odd payload is an
		// error, never a panic (the fuzzer found one in this very fixture).
		p, ok := m["payload"].(map[string]any)
		if !ok {
			return nil, errors.New("v1 payload is not an object")
		}
		p["count"] = p["n"]
		delete(p, "n")
		m["schemaVersion"] = 2
		return json.Marshal(m)
	},
}}}

func TestWriteReadRoundTrip(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "a.json")
	env := &artifact.Envelope[payload]{Kind: spec.Kind, SchemaVersion: 2, Producer: artifact.Producer{Name: "x", Version: "1"}, Payload: payload{"<a&b>", 3}}
	b, digest, err := artifact.Write(p, env)
	assert.NilError(t, err)
	assert.Equal(t, digest, artifact.Digest(b))
	assert.Assert(t, strings.HasPrefix(string(b), "{\n  \"kind\": \"lambda-check/test\",\n  \"schemaVersion\": 2,"))
	assert.Assert(t, strings.Contains(string(b), `"<a&b>"`), "no HTML escaping: %s", b)
	assert.Assert(t, strings.HasSuffix(string(b), "}\n"))
	got, raw, err := artifact.Read[payload](p, spec)
	assert.NilError(t, err)
	assert.DeepEqual(t, got.Payload, env.Payload)
	assert.DeepEqual(t, raw, b)
	// Same content, same bytes.
	b2, _, err := artifact.Write(p, env)
	assert.NilError(t, err)
	assert.DeepEqual(t, b, b2)
	ents, err := os.ReadDir(filepath.Dir(p))
	assert.NilError(t, err)
	assert.Equal(t, len(ents), 1, "no temporary files left behind")
}

func TestDecodeChecksKindAndVersionFirst(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, err string }{
		{"kind", `{"kind":"lambda-check/other","schemaVersion":2,"payload":{"name":1}}`, `wrong artifact kind: got "lambda-check/other", want "lambda-check/test"`},
		{"newer", `{"kind":"lambda-check/test","schemaVersion":3,"payload":{"name":1}}`, "version 3 is newer than this build reads (2)"},
		{"zero", `{"kind":"lambda-check/test","schemaVersion":0}`, "unsupported schema version"},
		{"none", `{"payload":{}}`, "no kind or schemaVersion"},
		{"json", `{`, "not a lambda-check artifact"},
		{"unknown", `{"kind":"lambda-check/test","schemaVersion":2,"producer":{"name":"","version":""},"inputs":[],"payload":{"name":"a","count":1,"extra":1}}`, `unknown field "extra"`},
	} {
		_, err := artifact.Decode[payload]([]byte(tc.in), spec)
		assert.ErrorContains(t, err, tc.err, tc.name)
	}
}

func TestDecodeMigratesOlderVersions(t *testing.T) {
	t.Parallel()
	in := `{"kind":"lambda-check/test","schemaVersion":1,"producer":{"name":"x","version":"0"},"inputs":[],"payload":{"name":"a","n":7}}`
	got, err := artifact.Decode[payload]([]byte(in), spec)
	assert.NilError(t, err)
	assert.Equal(t, got.SchemaVersion, 2)
	assert.DeepEqual(t, got.Payload, payload{"a", 7})
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"kind":"lambda-check/test","schemaVersion":2,"producer":{"name":"x","version":"0"},"inputs":[],"payload":{"name":"a","count":1}}`))
	f.Add([]byte(`{"kind":"lambda-check/test","schemaVersion":1,"payload":{"n":"x"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := artifact.Decode[payload](b, spec)
		if err != nil {
			return
		}
		out, err := artifact.Encode(env)
		assert.NilError(t, err)
		again, err := artifact.Decode[payload](out, spec)
		assert.NilError(t, err)
		assert.DeepEqual(t, again.Payload, env.Payload)
	})
}

// A FIFO (like /dev/null, a device) stays what it is: the bytes go into it
// and no rename replaces it with a regular file.
func TestWriteFileIntoAFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "out")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fifo, link} {
		got := make(chan []byte)
		go func() {
			b, _ := os.ReadFile(fifo)
			got <- b
		}()
		if err := artifact.WriteFile(path, []byte("payload\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if b := <-got; string(b) != "payload\n" {
			t.Errorf("%s: the reader got %q", path, b)
		}
		fi, err := os.Lstat(fifo)
		if err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
			t.Fatalf("%s: the FIFO was replaced: %v %v", path, fi.Mode(), err)
		}
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink was replaced: %v", err)
	}
	if err := artifact.WriteFile(dir, []byte("x"), 0o644); err == nil {
		t.Error("writing over a directory succeeded")
	}
}
