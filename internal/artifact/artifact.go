// Package artifact defines the envelope every lambda-check stage writes: a
// JSON document with kind, schemaVersion, producer, the digests of its inputs
// and a payload. It owns the canonical encoding, atomic writes, digests, and
// decoding that checks kind and version before touching the payload.
package artifact

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KindPrefix starts every artifact kind.
const KindPrefix = "lambda-check/"

// Producer names the program that wrote an artifact.
type Producer struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Input names an artifact (or file) a stage read, by kind and digest.
type Input struct {
	Kind   string `json:"kind"`
	Digest string `json:"digest"`
}

// Envelope is the common header of every artifact. P is the payload type.
type Envelope[P any] struct {
	Kind          string   `json:"kind"`
	SchemaVersion int      `json:"schemaVersion"`
	Producer      Producer `json:"producer"`
	Inputs        []Input  `json:"inputs"`
	Payload       P        `json:"payload"`
}

// header is what Decode reads before the payload.
type header struct {
	Kind          *string `json:"kind"`
	SchemaVersion *int    `json:"schemaVersion"`
}

// ErrKind reports an artifact of another kind than expected.
var ErrKind = errors.New("wrong artifact kind")

// ErrVersion reports a schema version this build cannot read.
var ErrVersion = errors.New("unsupported schema version")

// Migration upgrades the raw JSON of an artifact from version From to From+1.
type Migration struct {
	From    int
	Migrate func(raw []byte) ([]byte, error)
}

// Spec describes one artifact kind as this build knows it.
type Spec struct {
	Kind       string
	Version    int
	Migrations []Migration
}

// Encode returns the canonical encoding of v: two-space indentation, no HTML
// escaping, one trailing newline. Struct field order and sorted map keys make
// it deterministic.
func Encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Digest returns the "sha256:<hex>" digest of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// DigestFile returns the digest of a file's bytes.
func DigestFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %q: %w", path, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// Decode checks raw's kind and schemaVersion against spec, runs migrations
// from older versions, and decodes the result into an envelope. Unknown keys
// are errors: an artifact is never half understood.
func Decode[P any](raw []byte, spec Spec) (*Envelope[P], error) {
	var h header
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("not a lambda-check artifact: %w", err)
	}
	if h.Kind == nil || h.SchemaVersion == nil {
		return nil, errors.New("not a lambda-check artifact: no kind or schemaVersion")
	}
	if *h.Kind != spec.Kind {
		return nil, fmt.Errorf("%w: got %q, want %q", ErrKind, *h.Kind, spec.Kind)
	}
	v := *h.SchemaVersion
	switch {
	case v > spec.Version:
		return nil, fmt.Errorf("%w: %s version %d is newer than this build reads (%d); upgrade lambda-check", ErrVersion, spec.Kind, v, spec.Version)
	case v < 1:
		return nil, fmt.Errorf("%w: %s version %d", ErrVersion, spec.Kind, v)
	}
	for v < spec.Version {
		var m *Migration
		for i := range spec.Migrations {
			if spec.Migrations[i].From == v {
				m = &spec.Migrations[i]
			}
		}
		if m == nil {
			return nil, fmt.Errorf("%w: no migration of %s from version %d", ErrVersion, spec.Kind, v)
		}
		var err error
		if raw, err = m.Migrate(raw); err != nil {
			return nil, fmt.Errorf("migrate %s from version %d: %w", spec.Kind, v, err)
		}
		v++
	}
	var env Envelope[P]
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("decode %s: %w", spec.Kind, err)
	}
	env.SchemaVersion = spec.Version
	return &env, nil
}

// Read reads and decodes the artifact at path. Errors about the content are
// classified as bad input by the caller; the path is named in every error.
func Read[P any](path string, spec Spec) (*Envelope[P], []byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	env, err := Decode[P](raw, spec)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return env, raw, nil
}

// WriteFile writes b to path atomically: a temporary file in the same
// directory, fsync, rename, fsync of the directory. A reader sees the old
// content or the new one, never a mix, even if the process is killed.
//
// A path that names a device or a FIFO (/dev/null, /dev/stdout), directly or
// through a symlink, is written in place: a rename would replace the device
// node or the link with a regular file. A symlink to anything else is
// replaced, never written through.
func WriteFile(path string, b []byte, perm os.FileMode) error {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		if fi.Mode()&os.ModeSymlink != 0 {
			fi, err = os.Stat(path)
		}
		if err == nil && fi.IsDir() {
			return fmt.Errorf("%s: is a directory", path)
		}
		if err == nil && fi.Mode()&(os.ModeDevice|os.ModeCharDevice|os.ModeNamedPipe) != 0 {
			return writeInPlace(path, b)
		}
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: the directory %s does not exist", path, dir)
	}
	if err != nil {
		return fmt.Errorf("%s: cannot write in %s: %w", path, dir, errors.Unwrap(err))
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		// Best effort: the rename is already visible; this makes it durable.
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func writeInPlace(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Write encodes env canonically and writes it atomically to path. It returns
// the bytes written and their digest.
func Write[P any](path string, env *Envelope[P]) ([]byte, string, error) {
	if !strings.HasPrefix(env.Kind, KindPrefix) {
		return nil, "", fmt.Errorf("artifact kind %q lacks prefix %q", env.Kind, KindPrefix)
	}
	if env.Inputs == nil {
		env.Inputs = []Input{}
	}
	b, err := Encode(env)
	if err != nil {
		return nil, "", fmt.Errorf("encode %s: %w", env.Kind, err)
	}
	if err := WriteFile(path, b, 0o644); err != nil {
		return nil, "", fmt.Errorf("write %q: %w", path, err)
	}
	return b, Digest(b), nil
}
