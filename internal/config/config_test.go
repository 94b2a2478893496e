package config_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/lambda-os/lambda-check/internal/config"
)

func TestParse(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(`{"schemaVersion":1,"snapshot":{"parallelism":3,"exclude":["build"]}}`), "t")
	assert.NilError(t, err)
	assert.Equal(t, cfg.Snapshot.Parallelism, 3)
	assert.DeepEqual(t, cfg.Snapshot.Exclude, []string{"build"})
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, err string }{
		{`{"schemaVersion":1,"snapshot":{"paralelism":3}}`, `line 1, column 32: unknown key "snapshot.paralelism"; did you mean "parallelism"?`},
		{`{"schemaVersion":1,"colour":"red"}`, `line 1, column 20: unknown key "colour"`},
		{`{"snapshot":{}}`, `missing "schemaVersion"`},
		{`{"schemaVersion":2}`, "schemaVersion 2 is not supported"},
		{"{\"schemaVersion\":1,\n\"snapshot\":{\"parallelism\":\"x\"}}", "line 2"},
		{`{"schemaVersion":1,"snapshot":{"parallelism":-1}}`, "must be >= 0"},
		{`{"schemaVersion":1,"snapshot":{"exclude":["../x"]}}`, "clean path inside the workspace"},
		{`{"schemaVersion":1} {}`, "after top-level value"},
	} {
		_, err := config.Parse([]byte(tc.in), "t")
		assert.ErrorContains(t, err, tc.err, tc.in)
	}
}

func TestDurationsParsedOnce(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(`{"schemaVersion": 1, "verify": {"deadline": "3s"}, "governance": {"programTimeout": "1m"},
		"upgrades": {"timeout": "90s"}, "notify": {"digest": "24h", "channels": [{"name": "d", "type": "desktop", "timeout": "5s"}]}}`), "test")
	assert.NilError(t, err)
	assert.Equal(t, cfg.VerifyDeadline(), 3*time.Second)
	assert.Equal(t, cfg.ProgramTimeout(), time.Minute)
	assert.Equal(t, cfg.UpgradesTimeout(), 90*time.Second)
	assert.Equal(t, cfg.NotifyDigest(), 24*time.Hour)
	assert.Equal(t, cfg.ChannelTimeout("d"), 5*time.Second)
	assert.Equal(t, config.Default().VerifyDeadline(), time.Duration(0))
}

func TestLoadOptional(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg, err := config.Load(filepath.Join(dir, "absent.json"), true)
	assert.NilError(t, err)
	want := config.Default()
	want.Dir = dir
	assert.DeepEqual(t, cfg, want, cmpopts.IgnoreUnexported(config.Config{}))
	_, err = config.Load(filepath.Join(t.TempDir(), "absent.json"), false)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":1,"snapshot":{"parallelism":3,"exclude":["build"]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = config.Parse(b, "fuzz")
	})
}

func TestGraphExclude(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(`{"schemaVersion": 1}`), "t")
	assert.NilError(t, err)
	assert.DeepEqual(t, cfg.GraphExclude(), config.DefaultGraphExclude)
	cfg, err = config.Parse([]byte(`{"schemaVersion": 1, "graph": {"exclude": []}}`), "t")
	assert.NilError(t, err)
	assert.DeepEqual(t, cfg.GraphExclude(), []string{})
	_, err = config.Parse([]byte(`{"schemaVersion": 1, "graph": {"exclude": ["["]}}`), "t")
	assert.ErrorContains(t, err, `graph.exclude: bad pattern "["`)
}

func TestDuplicateKeysRefused(t *testing.T) {
	t.Parallel()
	_, err := config.Parse([]byte("{\"schemaVersion\": 1,\n \"verify\": {\"deadline\": \"1s\", \"deadline\": \"9s\"}}"), "dup")
	assert.ErrorContains(t, err, `line 2, column 31: the key "deadline" appears twice in one object`)
	_, err = config.Parse([]byte(`{"schemaVersion": 1, "schemaVersion": 1}`), "dup")
	assert.ErrorContains(t, err, `"schemaVersion" appears twice`)
	// The same name in sibling objects, in arrays, as a value: fine.
	_, err = config.Parse([]byte(`{"schemaVersion": 1, "notify": {"channels": [{"name": "a", "type": "desktop"}, {"name": "b", "type": "desktop"}]}, "verify": {"env": ["name"]}}`), "ok")
	assert.NilError(t, err)
	_, err = config.Parse([]byte(`{"schemaVersion": 1, "governance": {"backend": "multisig", "threshold": 0}}`), "t0")
	assert.ErrorContains(t, err, "governance.threshold must be at least 1")
}

// Keys are matched exactly (encoding/json alone takes "reportHTML" for
// "reportHtml"); a wrong one is named with its place and the key meant.
func TestKnownKeys(t *testing.T) {
	for in, want := range map[string]string{
		"{\"schemaVersion\": 1,\n \"cycle\": {\"reportHTML\": \"x\"}}":          `line 2, column 12: unknown key "cycle.reportHTML"; did you mean "reportHtml"? (keys are case-sensitive)`,
		"{\"schemaVersion\": 1, \"verify\": {\"calls\": [{\"modul\": \"m\"}]}}": `unknown key "verify.calls[0].modul"; did you mean "module"?`,
		"{\"schemaVersion\": 1, \"zzz\": 1}":                                    `line 1, column 22: unknown key "zzz"`,
	} {
		_, err := config.Parse([]byte(in), "t")
		assert.ErrorContains(t, err, want)
	}
	// Maps take any key.
	_, err := config.Parse([]byte(`{"schemaVersion": 1, "upgrades": {"insteadOf": {"git@github.com:": "file:///m/"}}}`), "t")
	assert.NilError(t, err)
}

// A secret's file in the Nix store is refused: every user can read it.
func TestSecretsOutsideStore(t *testing.T) {
	for _, in := range []string{
		`{"schemaVersion": 1, "heal": {"key": "/nix/store/abc-healer.key"}}`,
		`{"schemaVersion": 1, "audit": {"checkpointKey": "/nix/store/abc-cp.key"}}`,
		`{"schemaVersion": 1, "notify": {"channels": [{"name": "tg", "type": "telegram", "chatId": "1", "tokenFile": "/nix/store/abc-token"}]}}`,
	} {
		_, err := config.Parse([]byte(in), "t")
		assert.ErrorContains(t, err, "in the Nix store")
	}
	_, err := config.Parse([]byte(`{"schemaVersion": 1, "heal": {"key": "/run/credentials/lambda-check.service/healer"}}`), "t")
	assert.NilError(t, err)
}
