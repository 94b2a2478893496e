package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/codex"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/statedir"
)

// auditFile is the log in the state directory; checkpointsDir keeps the
// signed checkpoints beside it.
const (
	auditFile      = "audit.jsonl"
	checkpointsDir = "checkpoints"
)

// record appends an event to the audit log; the caller holds the lock.
func (rt *Runtime) record(sd *statedir.Dir, e audit.Event) error {
	now, err := rt.Clock()
	if err != nil {
		return err
	}
	e.Time = now.UTC().Format(time.RFC3339)
	e.Actor = rt.actor()
	if e.Result == "" {
		e.Result = audit.ResultOK
	}
	if _, err := audit.Append(sd.File(auditFile), e); err != nil {
		return exitcode.Input(fmt.Errorf("append to the audit log: %w", err), "run 'lambda-check audit verify' to see what is wrong with it")
	}
	return nil
}

// actor names who ran the command: $USER@host.
func (rt *Runtime) actor() string {
	user := rt.Env.Getenv("USER")
	if user == "" {
		user = "unknown"
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return user + "@" + host
}

// output describes a written artifact for an audit event.
func output(kind, path string, b []byte) *audit.Output {
	return &audit.Output{Kind: kind, Digest: artifact.Digest(b), Path: path}
}

// registry reads the configured key registry; nil and a reason when none
// is configured.
func (rt *Runtime) registry() (*sign.Registry, string, error) {
	cfg, err := rt.Config()
	if err != nil {
		return nil, "", err
	}
	p := cfg.KeysPath()
	if p == "" {
		return nil, "no key registry configured (\"keys\" in the config)", nil
	}
	reg, err := sign.ReadRegistry(p)
	if err != nil {
		return nil, "", exitcode.Input(err, "\"keys\" in the config names the key registry (docs/artifacts.md)")
	}
	return reg, "", nil
}

// AuditCmd is "lambda-check audit".
type AuditCmd struct {
	Verify     AuditVerifyCmd     `cmd:"" help:"Check the whole log: every line, the chain, the checkpoints."`
	Tail       AuditTailCmd       `cmd:"" help:"Print the last events."`
	Show       AuditShowCmd       `cmd:"" help:"Print one event."`
	Export     AuditExportCmd     `cmd:"" help:"Write a sidecar index linking every event to its digest and offset."`
	Checkpoint AuditCheckpointCmd `cmd:"" help:"Sign the log's head with a checkpoint key."`
	Publish    AuditPublishCmd    `cmd:"" help:"Publish the log since the last publication, with a signed checkpoint, to Codex."`
}

// AuditVerifyCmd is "lambda-check audit verify".
type AuditVerifyCmd struct {
	FromCodex string `name:"from-codex" placeholder:"CID" help:"Verify the log published under this CID instead of the local one."`
	Codex     string `placeholder:"URL" help:"The Codex node's API URL (with --from-codex)."`
}

// Help is shown by "lambda-check audit verify --help".
func (c *AuditVerifyCmd) Help() string {
	return `Reads the whole audit log and checks every line's digest, that each line's
prev is the digest of the line before and its seq the next number, and every
signed checkpoint (in the log, in <state-dir>/checkpoints/, or in the
publications): an edited, inserted, deleted, reordered or truncated line is
found and the first bad one named (exit 3). Checkpoint signatures are checked
against the key registry ("keys" in the config) when there is one.`
}

// Run verifies.
func (c *AuditVerifyCmd) Run(rt *Runtime) error {
	reg, why, err := rt.registry()
	if err != nil {
		return err
	}
	now, err := rt.Clock()
	if err != nil {
		return err
	}
	o := audit.VerifyOptions{Registry: reg, Now: now}
	var rep *audit.Report
	source := ""
	if c.FromCodex != "" {
		if c.Codex == "" {
			return errUsage("--from-codex needs --codex URL")
		}
		log, cps, err := audit.Fetch(rt.Ctx, codex.New(c.Codex, 0), c.FromCodex)
		if err != nil {
			return exitcode.Input(err, "")
		}
		o.Checkpoints = cps
		rep, err = audit.Verify(bytes.NewReader(log), o)
		if err != nil {
			return err
		}
		source = "publication " + c.FromCodex
	} else {
		dir := rt.StateDirPath()
		cps, err := audit.ReadCheckpoints(filepath.Join(dir, checkpointsDir))
		if err != nil {
			return exitcode.Input(err, "")
		}
		o.Checkpoints = cps
		f, err := os.Open(filepath.Join(dir, auditFile))
		if errors.Is(err, os.ErrNotExist) {
			return exitcode.Input(fmt.Errorf("no audit log in %s", dir), "every stage appends to it; run one")
		}
		if err != nil {
			return err
		}
		defer f.Close()
		rep, err = audit.Verify(f, o)
		if err != nil {
			return err
		}
		source = filepath.Join(dir, auditFile)
	}
	if reg == nil && why != "" {
		rep.Notes = append(rep.Notes, why)
	}
	if rt.Globals.JSON {
		if err := rt.PrintJSON(rep); err != nil {
			return err
		}
	} else {
		if rep.Problem == nil {
			rt.Printf("audit: %s verifies: %d events, head %s\n", source, rep.Events, rep.Head)
		} else {
			rt.Printf("audit: %s does NOT verify: %s\n", source, rep.Problem)
		}
		for _, cp := range rep.Checkpoints {
			rt.Printf("  checkpoint seq %d by %s (%s): %s\n", cp.Seq, cp.Signer, cp.Where, cp.Signature)
		}
		for _, n := range rep.Notes {
			rt.Logf("note: %s", n)
		}
	}
	if rep.Problem != nil {
		return &exitcode.FailError{Reason: "audit: " + rep.Problem.Error()}
	}
	return nil
}

// AuditTailCmd is "lambda-check audit tail".
type AuditTailCmd struct {
	N int `short:"n" default:"10" help:"How many events."`
}

// Run prints the last events.
func (c *AuditTailCmd) Run(rt *Runtime) error {
	f, err := os.Open(filepath.Join(rt.StateDirPath(), auditFile))
	if err != nil {
		return exitcode.Input(fmt.Errorf("read the audit log: %w", err), "")
	}
	defer f.Close()
	var ring [][]byte
	err = audit.Scan(f, func(_ int64, line []byte) error {
		ring = append(ring, append([]byte{}, line...))
		if len(ring) > c.N {
			ring = ring[1:]
		}
		return nil
	})
	if err != nil {
		return exitcode.Input(err, "run 'lambda-check audit verify'")
	}
	for _, l := range ring {
		if rt.Globals.JSON {
			rt.Printf("%s\n", l)
			continue
		}
		e, err := audit.Decode(l)
		if err != nil {
			rt.Printf("(bad line: %v)\n", err)
			continue
		}
		renderEvent(rt, e)
	}
	return nil
}

func renderEvent(rt *Runtime, e *audit.Event) {
	out := ""
	if e.Output != nil {
		out = " → " + e.Output.Kind + " " + short(e.Output.Digest[7:])
	}
	detail := ""
	if e.Detail != "" {
		detail = ": " + e.Detail
	}
	rt.Printf("%6d  %s  %-10s %-5s %s%s%s\n", e.Seq, e.Time, e.Stage, e.Result, e.Actor, out, detail)
}

// AuditShowCmd is "lambda-check audit show".
type AuditShowCmd struct {
	Seq int64 `arg:"" help:"The event's sequence number."`
}

// Run prints one event.
func (c *AuditShowCmd) Run(rt *Runtime) error {
	f, err := os.Open(filepath.Join(rt.StateDirPath(), auditFile))
	if err != nil {
		return exitcode.Input(fmt.Errorf("read the audit log: %w", err), "")
	}
	defer f.Close()
	var found []byte
	err = audit.Scan(f, func(n int64, line []byte) error {
		if n == c.Seq {
			found = append([]byte{}, line...)
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return exitcode.Input(err, "run 'lambda-check audit verify'")
	}
	if found == nil {
		return exitcode.Input(fmt.Errorf("no event %d", c.Seq), "'lambda-check audit tail' shows the last ones")
	}
	e, err := audit.Decode(found)
	if err != nil {
		return exitcode.Input(fmt.Errorf("event %d: %w", c.Seq, err), "run 'lambda-check audit verify'")
	}
	return rt.PrintJSON(e)
}

var errStop = errors.New("stop")

// AuditExportCmd is "lambda-check audit export".
type AuditExportCmd struct {
	Out string `placeholder:"FILE" help:"Where to write the index (default: <state-dir>/audit.index.json)."`
}

// Run writes the sidecar index.
func (c *AuditExportCmd) Run(rt *Runtime) error {
	p := filepath.Join(rt.StateDirPath(), auditFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return exitcode.Input(fmt.Errorf("read the audit log: %w", err), "")
	}
	type entry struct {
		Seq    int64  `json:"seq"`
		Digest string `json:"digest"`
		Offset int64  `json:"offset"`
		Length int    `json:"length"`
		Stage  string `json:"stage"`
		Time   string `json:"time"`
	}
	index := struct {
		Log     string  `json:"log"`
		Digest  string  `json:"digest"`
		Entries []entry `json:"entries"`
	}{Log: p, Digest: artifact.Digest(b), Entries: []entry{}}
	var off int64
	err = audit.Scan(bytes.NewReader(b), func(n int64, line []byte) error {
		e, err := audit.Decode(line)
		if err != nil {
			return &audit.Problem{Line: n, What: err.Error()}
		}
		index.Entries = append(index.Entries, entry{e.Seq, e.Digest, off, len(line) + 1, e.Stage, e.Time})
		off += int64(len(line) + 1)
		return nil
	})
	if err != nil {
		return exitcode.Input(err, "run 'lambda-check audit verify'")
	}
	out := c.Out
	if out == "" {
		out = filepath.Join(rt.StateDirPath(), "audit.index.json")
	} else {
		out = rt.Abs(out)
	}
	enc, err := artifact.Encode(index)
	if err != nil {
		return err
	}
	if err := artifact.WriteFile(out, enc, 0o644); err != nil {
		return err
	}
	rt.Logf("wrote %s: %d events", out, len(index.Entries))
	return nil
}

// AuditCheckpointCmd is "lambda-check audit checkpoint".
type AuditCheckpointCmd struct {
	Key string `required:"" placeholder:"FILE" help:"A private key file whose registry entry has the checkpoint role."`
}

// Run signs the head.
func (c *AuditCheckpointCmd) Run(rt *Runtime) error {
	k, err := sign.ReadPrivateKey(rt.Abs(c.Key))
	if err != nil {
		return exitcode.Input(err, "")
	}
	sd, unlock, err := rt.LockState()
	if err != nil {
		return err
	}
	defer unlock()
	cp, err := checkpointLocked(rt, sd, k)
	if err != nil {
		return err
	}
	rt.Printf("checkpoint: seq %d, head %s, signed by %s\n", cp.Seq, cp.Head, cp.Signer)
	return nil
}

// checkpointLocked signs the head, keeps the checkpoint beside the log and
// appends it to the log; the caller holds the lock.
func checkpointLocked(rt *Runtime, sd *statedir.Dir, k *sign.PrivateKey) (*audit.Checkpoint, error) {
	now, err := rt.Clock()
	if err != nil {
		return nil, err
	}
	h, err := audit.ReadHead(sd.File(auditFile))
	if err != nil {
		return nil, exitcode.Input(fmt.Errorf("audit log: %w", err), "run 'lambda-check audit verify'")
	}
	if h.Seq == 0 {
		return nil, exitcode.Input(errors.New("the audit log is empty: nothing to checkpoint"), "")
	}
	cp, err := audit.SignCheckpoint(h, k, now)
	if err != nil {
		return nil, err
	}
	dir := sd.File(checkpointsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := artifact.WriteFile(filepath.Join(dir, strconv.FormatInt(cp.Seq, 10)+".json"), append(cp.Document, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := rt.record(sd, audit.Event{Stage: "checkpoint", Checkpoint: cp}); err != nil {
		return nil, err
	}
	return cp, nil
}

// AuditPublishCmd is "lambda-check audit publish".
type AuditPublishCmd struct {
	Codex string `required:"" placeholder:"URL" help:"The Codex node's API URL, e.g. http://127.0.0.1:8080."`
	Key   string `required:"" placeholder:"FILE" help:"The checkpoint key that signs what is published."`
}

// Help is shown by "lambda-check audit publish --help".
func (c *AuditPublishCmd) Help() string {
	return `Signs a checkpoint of the log's head, uploads the lines since the last
publication (the segment) and a manifest naming the segment, its digest, the
checkpoint and the previous manifest's CID to a Codex node
(POST /api/codex/v1/data), and records the manifest's CID in the log. The
last CID reaches the whole log: 'audit verify --from-codex CID --codex URL'
downloads and verifies it.`
}

// Run publishes.
func (c *AuditPublishCmd) Run(rt *Runtime) error {
	k, err := sign.ReadPrivateKey(rt.Abs(c.Key))
	if err != nil {
		return exitcode.Input(err, "")
	}
	sd, unlock, err := rt.LockState()
	if err != nil {
		return err
	}
	defer unlock()
	log := sd.File(auditFile)
	last, err := audit.LastPublish(log)
	if err != nil {
		return exitcode.Input(err, "run 'lambda-check audit verify'")
	}
	cp, err := checkpointLocked(rt, sd, k)
	if err != nil {
		return err
	}
	h, err := audit.ReadHead(log)
	if err != nil {
		return err
	}
	from, prev := int64(1), ""
	if last != nil {
		from, prev = last.ToSeq+1, last.Manifest
	}
	cid, _, err := audit.PublishSegment(rt.Ctx, codex.New(c.Codex, 0), log, from, h.Seq, cp, prev)
	if err != nil {
		return err
	}
	if err := rt.record(sd, audit.Event{Stage: "publish", Publish: &audit.Publish{Manifest: cid, FromSeq: from, ToSeq: h.Seq, URL: c.Codex}}); err != nil {
		return err
	}
	if rt.Globals.JSON {
		return rt.PrintJSON(map[string]any{"cid": cid, "fromSeq": from, "toSeq": h.Seq})
	}
	rt.Printf("published seq %d..%d to %s: %s\n", from, h.Seq, c.Codex, cid)
	rt.Printf("verify with: lambda-check audit verify --from-codex %s --codex %s\n", cid, c.Codex)
	return nil
}
