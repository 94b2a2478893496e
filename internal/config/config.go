// Package config is lambda-check's configuration file: strict JSON with a
// schemaVersion, where an unknown key is an error that names the key.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Version is the config schema version this build reads.
const Version = 1

// Config is the whole configuration. Every section has working defaults, so
// an absent file is a valid configuration.
type Config struct {
	SchemaVersion int      `json:"schemaVersion"`
	Snapshot      Snapshot `json:"snapshot"`
	Graph         Graph    `json:"graph"`
	Upgrades      Upgrades `json:"upgrades"`
	// Keys is the key registry (keys.json) governance decisions and audit
	// checkpoints are checked against, relative to this file.
	Keys       string     `json:"keys,omitempty"`
	Governance Governance `json:"governance"`
	Verify     Verify     `json:"verify"`
	Heal       Heal       `json:"heal"`
	Cycle      Cycle      `json:"cycle"`
	Propose    Propose    `json:"propose"`
	Audit      Audit      `json:"audit"`
	Notify     Notify     `json:"notify"`
	// Dir is the directory of the configuration file (the state directory
	// when there is none): relative paths are resolved against it.
	Dir string `json:"-"`

	// durations are the duration strings, parsed once by validate.
	durations durations
}

// durations are the configuration's durations as parsed; 0 is "not set".
type durations struct {
	verifyDeadline, verifySettle, programTimeout, notifyDigest, upgradesTimeout time.Duration
	channelTimeout                                                              map[string]time.Duration
}

// VerifyDeadline is verify.deadline, 0 when not set.
func (c *Config) VerifyDeadline() time.Duration { return c.durations.verifyDeadline }

// VerifySettle is verify.settle, 0 when not set.
func (c *Config) VerifySettle() time.Duration { return c.durations.verifySettle }

// ProgramTimeout is governance.programTimeout, 0 when not set.
func (c *Config) ProgramTimeout() time.Duration { return c.durations.programTimeout }

// NotifyDigest is notify.digest, 0 when not set.
func (c *Config) NotifyDigest() time.Duration { return c.durations.notifyDigest }

// ChannelTimeout is the named channel's timeout, 0 when not set.
func (c *Config) ChannelTimeout(name string) time.Duration { return c.durations.channelTimeout[name] }

// positive parses a positive duration.
func positive(s string) (time.Duration, bool) {
	d, err := time.ParseDuration(s)
	return d, err == nil && d > 0
}

// Governance configures how proposals are decided.
type Governance struct {
	// Backend is human (one approver), multisig (Threshold of Signers) or
	// program (an external decider). Default human.
	Backend   string   `json:"backend,omitempty"`
	Threshold int      `json:"threshold,omitempty"`
	Signers   []string `json:"signers,omitempty"`
	// Program is the decider's command and arguments.
	Program []string `json:"program,omitempty"`
	// ProgramTimeout bounds a decider run ("60s").
	ProgramTimeout string `json:"programTimeout,omitempty"`
	// AutoApply applies a proposal as soon as a decision approves it.
	AutoApply bool `json:"autoApply,omitempty"`
}

// Verify configures the verify stage.
type Verify struct {
	// ModulesDir holds the built modules (default <workspace>/result/modules).
	ModulesDir string `json:"modulesDir,omitempty"`
	// Host is the runtime host binary; Generation "march" or "august"
	// (default: asked from the host's --help).
	Host       string `json:"host,omitempty"`
	Generation string `json:"generation,omitempty"`
	// Qt is the host's Qt version ("6.4"): newer plugins are refused
	// statically.
	Qt string `json:"qt,omitempty"`
	// Deadline bounds each load ("10s").
	Deadline string `json:"deadline,omitempty"`
	// Settle is how long a ready host must stay alive to pass ("300ms").
	Settle      string `json:"settle,omitempty"`
	Parallelism int    `json:"parallelism,omitempty"`
	// Env are variables added to each load's minimal environment.
	Env []string `json:"env,omitempty"`
	// Bwrap runs each load under bubblewrap (no network, read-only /).
	Bwrap bool `json:"bwrap,omitempty"`
	// Build is run in the workspace before verifying again after a heal
	// (it rebuilds ModulesDir from the healed pins).
	Build []string `json:"build,omitempty"`
	// Logoscore and Calls: calls made through logoscore on the modules
	// that loaded, with the result each must return.
	Logoscore string       `json:"logoscore,omitempty"`
	Calls     []VerifyCall `json:"calls,omitempty"`
}

// VerifyCall is a call verify makes through logoscore.
type VerifyCall struct {
	Module string   `json:"module"`
	Method string   `json:"method"`
	Args   []string `json:"args,omitempty"`
	Expect string   `json:"expect,omitempty"`
}

// Heal configures the heal stage.
type Heal struct {
	// AutoApply approves (with Key) and applies a rollback at once.
	AutoApply bool `json:"autoApply,omitempty"`
	// Key is an approver key file allowed to approve rollbacks.
	Key string `json:"key,omitempty"`
}

// Cycle configures "lambda-check cycle".
type Cycle struct {
	// Offline makes the upgrades stage use already-fetched refs only.
	Offline bool `json:"offline,omitempty"`
	// Skip names stages the cycle leaves out (verify, heal, upgrades,
	// plan, propose, governance, notify). Skipping a stage that judges
	// the node makes its health unknown, never healthy.
	Skip []string `json:"skip,omitempty"`
	// WorkspaceURL is how proposal flakes reach the workspace (propose's
	// --workspace-url).
	WorkspaceURL string `json:"workspaceUrl,omitempty"`
	// KeepStale keeps stale and superseded proposals nobody decided on;
	// by default the cycle prunes them after proposing.
	KeepStale bool `json:"keepStale,omitempty"`
	// ReportHTML, when set, is where every cycle writes the HTML report
	// (a dashboard a web server can serve).
	ReportHTML string `json:"reportHtml,omitempty"`
	// MetricsFile, when set, is where every cycle writes its metrics in
	// Prometheus' text format (name it *.prom in node_exporter's textfile
	// collector directory).
	MetricsFile string `json:"metricsFile,omitempty"`
}

// Audit configures the audit log.
type Audit struct {
	// CheckpointKey is a private key file with the checkpoint role: every
	// cycle ends by signing a checkpoint of the log's head with it, so
	// nothing before it can be rewritten or truncated unnoticed.
	CheckpointKey string `json:"checkpointKey,omitempty"`
}

// Propose configures how upgrades become proposals.
type Propose struct {
	// Group "level" proposes the upgrades of each plan level as one
	// proposal (one patch, one flake.lock change, approved and applied as a
	// unit); "" (the default) proposes each upgrade alone.
	Group string `json:"group,omitempty"`
}

// CycleStages are the stages of a cycle, in order.
var CycleStages = []string{"snapshot", "verify", "heal", "policy", "upgrades", "plan", "propose", "governance", "audit", "notify"}

// Notify configures notifications.
type Notify struct {
	Channels []Channel `json:"channels,omitempty"`
	// Digest sends a summary at most once per this period ("24h") even
	// when nothing changed; "" sends none.
	Digest string `json:"digest,omitempty"`
}

// Channel is one notification destination. Secrets are read from files
// (a systemd credential, a sops secret), never written in the config.
type Channel struct {
	// Name identifies the channel in records and its delivered state.
	Name string `json:"name"`
	// Type is telegram, webhook or desktop.
	Type string `json:"type"`
	// Telegram: the bot token's file, the chat, and the Bot API's base
	// URL (default https://api.telegram.org; a self-hosted server's URL).
	TokenFile string `json:"tokenFile,omitempty"`
	ChatID    string `json:"chatId,omitempty"`
	APIBase   string `json:"apiBase,omitempty"`
	// Webhook: where to POST, and the file of the HMAC-SHA256 key that
	// signs the body (header X-Lambda-Check-Signature: sha256=HEX).
	URL        string `json:"url,omitempty"`
	SecretFile string `json:"secretFile,omitempty"`
	// Desktop: the D-Bus session bus address (default
	// $DBUS_SESSION_BUS_ADDRESS).
	Bus string `json:"bus,omitempty"`
	// Timeout bounds one delivery, retries included ("30s").
	Timeout string `json:"timeout,omitempty"`
}

// Path resolves p against the configuration's directory.
func (c *Config) Path(p string) string {
	if p == "" || path.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// KeysPath returns the key registry's path, or "" when none is configured.
func (c *Config) KeysPath() string {
	if c.Keys == "" {
		return ""
	}
	if path.IsAbs(c.Keys) {
		return c.Keys
	}
	return c.Dir + "/" + c.Keys
}

// Upgrades configures how remotes are queried.
type Upgrades struct {
	// Parallelism bounds remotes queried at once; 0 = default (64).
	Parallelism int `json:"parallelism,omitempty"`
	// Timeout bounds each remote, retries included ("60s"); "" = default.
	Timeout string `json:"timeout,omitempty"`
	// Retries of a transient failure; 0 = default (2), -1 = none.
	Retries int `json:"retries,omitempty"`
	// InsteadOf rewrites remote URL prefixes, as git's
	// url.<base>.insteadOf: {"git@github.com:": "https://github.com/"}.
	InsteadOf map[string]string `json:"insteadOf,omitempty"`
}

// UpgradesTimeout returns the configured timeout, 0 for the default.
func (c *Config) UpgradesTimeout() time.Duration { return c.durations.upgradesTimeout }

// Graph configures the dependency graph graph, plan and propose use.
type Graph struct {
	// Exclude lists infrastructure inputs left out of the graph: path.Match
	// patterns on flake.lock node names and root input names. Absent means
	// DefaultGraphExclude; [] keeps everything.
	Exclude []string `json:"exclude,omitempty"`
}

// DefaultGraphExclude are the infrastructure inputs a Logos workspace
// shares but does not develop.
var DefaultGraphExclude = []string{
	"nixpkgs", "nixpkgs_*", "flake-utils", "flake-utils_*", "systems", "systems_*",
	"flake-parts", "flake-parts_*", "flake-compat", "flake-compat_*", "rust-overlay", "rust-overlay_*",
}

// GraphExclude returns the exclude patterns in force.
func (c *Config) GraphExclude() []string {
	if c.Graph.Exclude == nil {
		return DefaultGraphExclude
	}
	return c.Graph.Exclude
}

// Snapshot configures the snapshot stage.
type Snapshot struct {
	// Parallelism bounds how many submodules are read at once; 0 = default.
	Parallelism int `json:"parallelism,omitempty"`
	// Exclude lists workspace-relative paths never walked for untracked
	// files (build outputs that are not git-ignored, for instance).
	Exclude []string `json:"exclude,omitempty"`
}

// Default returns the configuration used when no file is given.
func Default() *Config {
	return &Config{SchemaVersion: Version}
}

// Parse decodes and validates a configuration; name is used in errors.
func Parse(b []byte, name string) (*Config, error) {
	var probe struct {
		SchemaVersion *int `json:"schemaVersion"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, WithPosition(b, err))
	}
	if probe.SchemaVersion == nil {
		return nil, fmt.Errorf("config %s: missing \"schemaVersion\" (this build reads %d)", name, Version)
	}
	if *probe.SchemaVersion != Version {
		return nil, fmt.Errorf("config %s: schemaVersion %d is not supported (this build reads %d)", name, *probe.SchemaVersion, Version)
	}
	if err := NoDuplicateKeys(b); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	if err := knownKeys(b, reflect.TypeOf(Config{})); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	cfg := Default()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, WithPosition(b, err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config %s: trailing data after the JSON object", name)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	return cfg, nil
}

// Load reads the configuration at p. If p is empty or (when optional) does
// not exist, it returns the defaults.
func Load(p string, optional bool) (*Config, error) {
	if p == "" {
		return Default(), nil
	}
	b, err := os.ReadFile(p)
	if optional && errors.Is(err, fs.ErrNotExist) {
		c := Default()
		c.Dir = filepath.Dir(p)
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(b, fmt.Sprintf("%q", p))
	if err != nil {
		return nil, err
	}
	c.Dir = filepath.Dir(p)
	return c, nil
}

// storeDir is the Nix store: every user can read it.
const storeDir = "/nix/store/"

// secretsOutsideStore refuses a secret's file in the Nix store (where a
// Nix path literal in the settings is copied): it would be world-readable.
func (c *Config) secretsOutsideStore() error {
	type secret struct{ key, path string }
	secrets := []secret{{"heal.key", c.Heal.Key}, {"audit.checkpointKey", c.Audit.CheckpointKey}}
	for i, ch := range c.Notify.Channels {
		secrets = append(secrets, secret{fmt.Sprintf("notify.channels[%d].tokenFile", i), ch.TokenFile},
			secret{fmt.Sprintf("notify.channels[%d].secretFile", i), ch.SecretFile})
	}
	for _, s := range secrets {
		if strings.HasPrefix(filepath.Clean(s.path)+"/", storeDir) {
			return fmt.Errorf("%s is in the Nix store (%s), which every user can read: keep the secret outside it (a systemd credential, /run/credentials/<unit>/<name>, or a sops secret)", s.key, s.path)
		}
	}
	return nil
}

func (c *Config) validate() error {
	if err := c.secretsOutsideStore(); err != nil {
		return err
	}
	if c.Snapshot.Parallelism < 0 {
		return fmt.Errorf("snapshot.parallelism must be >= 0, got %d", c.Snapshot.Parallelism)
	}
	c.durations = durations{channelTimeout: map[string]time.Duration{}}
	var ok bool
	if d := c.Verify.Deadline; d != "" {
		if c.durations.verifyDeadline, ok = positive(d); !ok {
			return fmt.Errorf("verify.deadline: %q is not a positive duration", d)
		}
	}
	if d := c.Verify.Settle; d != "" {
		if c.durations.verifySettle, ok = positive(d); !ok {
			return fmt.Errorf("verify.settle: %q is not a positive duration", d)
		}
	}
	switch c.Propose.Group {
	case "", "level":
	default:
		return fmt.Errorf("propose.group %q is not \"level\" (or absent: each upgrade alone)", c.Propose.Group)
	}
	switch c.Verify.Generation {
	case "", "march", "august":
	default:
		return fmt.Errorf("verify.generation %q is not march or august", c.Verify.Generation)
	}
	if q := c.Verify.Qt; q != "" {
		var a, b int
		if n, err := fmt.Sscanf(q, "%d.%d", &a, &b); n != 2 || err != nil {
			return fmt.Errorf("verify.qt: %q is not MAJOR.MINOR", q)
		}
	}
	if c.Heal.AutoApply && c.Heal.Key == "" {
		return fmt.Errorf("heal.autoApply needs heal.key, an approver key allowed to approve rollbacks")
	}
	switch c.Governance.Backend {
	case "", "human", "multisig", "program":
	default:
		return fmt.Errorf("governance.backend %q is not human, multisig or program", c.Governance.Backend)
	}
	if c.Governance.Backend == "multisig" && c.Governance.Threshold < 1 {
		return fmt.Errorf("governance.threshold must be at least 1 with the multisig backend, got %d", c.Governance.Threshold)
	}
	if c.Governance.Threshold < 0 {
		return fmt.Errorf("governance.threshold must not be negative, got %d", c.Governance.Threshold)
	}
	if t := c.Governance.ProgramTimeout; t != "" {
		if c.durations.programTimeout, ok = positive(t); !ok {
			return fmt.Errorf("governance.programTimeout: %q is not a positive duration", t)
		}
	}
	for _, n := range c.Cycle.Skip {
		if n == "snapshot" || n == "audit" || !slices.Contains(CycleStages, n) {
			return fmt.Errorf("cycle.skip: %q is not a stage the cycle can leave out (%s)", n, strings.Join(CycleStages[1:len(CycleStages)-2], ", ")+", notify")
		}
	}
	if d := c.Notify.Digest; d != "" {
		if c.durations.notifyDigest, ok = positive(d); !ok {
			return fmt.Errorf("notify.digest: %q is not a positive duration (\"24h\")", d)
		}
	}
	names := map[string]bool{}
	for i, ch := range c.Notify.Channels {
		where := fmt.Sprintf("notify.channels[%d]", i)
		if ch.Name == "" {
			return fmt.Errorf("%s: a channel needs a name", where)
		}
		if names[ch.Name] {
			return fmt.Errorf("%s: channel name %q is used twice", where, ch.Name)
		}
		names[ch.Name] = true
		switch ch.Type {
		case "telegram":
			if ch.TokenFile == "" || ch.ChatID == "" {
				return fmt.Errorf("%s (%s): telegram needs tokenFile and chatId", where, ch.Name)
			}
		case "webhook":
			if !strings.HasPrefix(ch.URL, "http://") && !strings.HasPrefix(ch.URL, "https://") {
				return fmt.Errorf("%s (%s): webhook needs an http(s) url, got %q", where, ch.Name, ch.URL)
			}
		case "desktop":
		default:
			return fmt.Errorf("%s (%s): type %q is not telegram, webhook or desktop", where, ch.Name, ch.Type)
		}
		if t := ch.Timeout; t != "" {
			d, ok := positive(t)
			if !ok {
				return fmt.Errorf("%s (%s): timeout %q is not a positive duration", where, ch.Name, t)
			}
			c.durations.channelTimeout[ch.Name] = d
		}
	}
	if c.Upgrades.Parallelism < 0 {
		return fmt.Errorf("upgrades.parallelism must be >= 0, got %d", c.Upgrades.Parallelism)
	}
	if c.Upgrades.Retries < -1 {
		return fmt.Errorf("upgrades.retries must be >= -1, got %d", c.Upgrades.Retries)
	}
	if t := c.Upgrades.Timeout; t != "" {
		if c.durations.upgradesTimeout, ok = positive(t); !ok {
			return fmt.Errorf("upgrades.timeout: %q is not a positive duration (\"60s\", \"2m\")", t)
		}
	}
	for _, p := range c.Graph.Exclude {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("graph.exclude: bad pattern %q", p)
		}
	}
	for _, x := range c.Snapshot.Exclude {
		if x == "" || path.IsAbs(x) || path.Clean(x) != x || x == ".." || strings.HasPrefix(x, "../") {
			return fmt.Errorf("snapshot.exclude: %q must be a clean path inside the workspace", x)
		}
	}
	return nil
}

// WithPosition adds the line and column in b to a JSON syntax or type
// error; other errors are returned as they are.
func WithPosition(b []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	off := int64(-1)
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(b)) {
		return err
	}
	line := 1 + bytes.Count(b[:off], []byte("\n"))
	col := off - int64(bytes.LastIndexByte(b[:off], '\n'))
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}

// NoDuplicateKeys refuses a JSON text in which an object names a member
// twice: encoding/json keeps the last one silently, so two readers (or a
// reviewer and the program) could see different values.
func NoDuplicateKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		keys   map[string]bool
		object bool
		key    bool // the next string token is a key
	}
	var stack []*frame
	for {
		off := dec.InputOffset()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return nil // a syntax error: the decoder proper says it, with its place
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if top != nil && top.object {
					top.key = true // the container was a member's value
				}
				stack = append(stack, &frame{keys: map[string]bool{}, object: d == '{', key: d == '{'})
			case '}', ']':
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].key = true
				}
			}
			continue
		}
		if top == nil || !top.object {
			continue
		}
		if top.key {
			k, _ := tok.(string)
			if top.keys[k] {
				for off < int64(len(b)) && bytes.IndexByte([]byte(" \t\r\n,:"), b[off]) >= 0 {
					off++ // to the key itself
				}
				line := 1 + bytes.Count(b[:off], []byte("\n"))
				col := off - int64(bytes.LastIndexByte(b[:off], '\n'))
				return fmt.Errorf("line %d, column %d: the key %q appears twice in one object", line, col, k)
			}
			top.keys[k] = true
			top.key = false
		} else {
			top.key = true
		}
	}
}
