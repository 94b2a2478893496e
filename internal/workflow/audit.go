package workflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/codex"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/sign"
)

// AuditVerifyResult is a verification of the audit log.
type AuditVerifyResult struct {
	Report *audit.Report
	// Source is what was verified: the log's path, or the publication.
	Source string
}

// AuditVerify checks the state directory's audit log (or, with fromCodex,
// the log published under that CID on the Codex node at codexURL): every
// line, the chain and the signed checkpoints.
func AuditVerify(ctx context.Context, e *Env, fromCodex, codexURL string) (*AuditVerifyResult, error) {
	reg, why, err := Registry(e)
	if err != nil {
		return nil, err
	}
	o := audit.VerifyOptions{Registry: reg, Now: e.Now()}
	var out AuditVerifyResult
	if fromCodex != "" {
		if codexURL == "" {
			return nil, &exitcode.UsageError{Err: errors.New("--from-codex needs --codex URL")}
		}
		log, cps, err := audit.Fetch(ctx, codex.New(codexURL, 0), fromCodex)
		if err != nil {
			return nil, exitcode.Input(err, "")
		}
		o.Checkpoints = cps
		if out.Report, err = audit.Verify(bytes.NewReader(log), o); err != nil {
			return nil, err
		}
		out.Source = "publication " + fromCodex
	} else {
		cps, err := audit.ReadCheckpoints(filepath.Join(e.StateDir, CheckpointsDir))
		if err != nil {
			return nil, exitcode.Input(err, "")
		}
		o.Checkpoints = cps
		p := filepath.Join(e.StateDir, AuditFile)
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil, exitcode.Input(fmt.Errorf("no audit log in %s", e.StateDir), "every stage appends to it; run one")
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if out.Report, err = audit.Verify(f, o); err != nil {
			return nil, err
		}
		out.Source = p
		// This node wrote further than the log goes now: restored from an
		// older copy, or cut at a line boundary.
		var last audit.Head
		if b, err := os.ReadFile(filepath.Join(e.StateDir, AuditHead)); err == nil && json.Unmarshal(b, &last) == nil &&
			out.Report.Problem == nil && out.Report.Events < last.Seq {
			out.Report.Problem = &audit.Problem{Seq: last.Seq, What: fmt.Sprintf("the log ends at seq %d, but this node had written up to seq %d (%s): it was rewound or restored from an older copy", out.Report.Events, last.Seq, AuditHead)}
		}
	}
	if reg == nil && why != "" {
		out.Report.Notes = append(out.Report.Notes, why)
	}
	return &out, nil
}

// AuditVerdict fails when the log does not verify.
func AuditVerdict(r *audit.Report) error {
	if r.Problem != nil {
		return &exitcode.FailError{Reason: "audit: " + r.Problem.Error()}
	}
	return nil
}

// Checkpoint signs the log's head, keeps the checkpoint beside the log and
// appends it to the log.
func Checkpoint(e *Env, k *sign.PrivateKey) (*audit.Checkpoint, error) {
	if err := e.mustHold(); err != nil {
		return nil, err
	}
	h, err := audit.ReadHead(e.File(AuditFile))
	if err != nil {
		return nil, exitcode.Input(fmt.Errorf("audit log: %w", err), "run 'lambda-check audit verify'")
	}
	if h.Seq == 0 {
		return nil, exitcode.Input(errors.New("the audit log is empty: nothing to checkpoint"), "")
	}
	cp, err := audit.SignCheckpoint(h, k, e.Now())
	if err != nil {
		return nil, err
	}
	dir := e.File(CheckpointsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := artifact.WriteFile(filepath.Join(dir, strconv.FormatInt(cp.Seq, 10)+".json"), append(cp.Document, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := e.Record(audit.Event{Stage: "checkpoint", Checkpoint: cp}); err != nil {
		return nil, err
	}
	return cp, nil
}

// Published is a segment of the log published to Codex.
type Published struct {
	CID     string `json:"cid"`
	FromSeq int64  `json:"fromSeq"`
	ToSeq   int64  `json:"toSeq"`
}

// Publish signs a checkpoint of the head, uploads the lines since the last
// publication with a manifest to the Codex node at url and records the
// manifest's CID.
func Publish(ctx context.Context, e *Env, url string, k *sign.PrivateKey) (*Published, error) {
	log := e.File(AuditFile)
	last, err := audit.LastPublish(log)
	if err != nil {
		return nil, exitcode.Input(err, "run 'lambda-check audit verify'")
	}
	cp, err := Checkpoint(e, k)
	if err != nil {
		return nil, err
	}
	h, err := audit.ReadHead(log)
	if err != nil {
		return nil, err
	}
	from, prev := int64(1), ""
	if last != nil {
		from, prev = last.ToSeq+1, last.Manifest
	}
	cid, _, err := audit.PublishSegment(ctx, codex.New(url, 0), log, from, h.Seq, cp, prev)
	if err != nil {
		return nil, err
	}
	if err := e.Record(audit.Event{Stage: "publish", Publish: &audit.Publish{Manifest: cid, FromSeq: from, ToSeq: h.Seq, URL: url}}); err != nil {
		return nil, err
	}
	return &Published{CID: cid, FromSeq: from, ToSeq: h.Seq}, nil
}

var errStop = errors.New("stop")

// AuditLines are the last n lines of the audit log, as written.
func AuditLines(e *Env, n int) ([][]byte, error) {
	f, err := os.Open(filepath.Join(e.StateDir, AuditFile))
	if err != nil {
		return nil, exitcode.Input(fmt.Errorf("read the audit log: %w", err), "")
	}
	defer f.Close()
	var ring [][]byte
	err = audit.Scan(f, func(_ int64, line []byte) error {
		ring = append(ring, append([]byte{}, line...))
		if len(ring) > n {
			ring = ring[1:]
		}
		return nil
	})
	if err != nil {
		return nil, exitcode.Input(err, "run 'lambda-check audit verify'")
	}
	return ring, nil
}

// AuditEvent is the event with sequence number seq.
func AuditEvent(e *Env, seq int64) (*audit.Event, error) {
	f, err := os.Open(filepath.Join(e.StateDir, AuditFile))
	if err != nil {
		return nil, exitcode.Input(fmt.Errorf("read the audit log: %w", err), "")
	}
	defer f.Close()
	var found []byte
	err = audit.Scan(f, func(n int64, line []byte) error {
		if n == seq {
			found = append([]byte{}, line...)
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, exitcode.Input(err, "run 'lambda-check audit verify'")
	}
	if found == nil {
		return nil, exitcode.Input(fmt.Errorf("no event %d", seq), "'lambda-check audit tail' shows the last ones")
	}
	ev, err := audit.Decode(found)
	if err != nil {
		return nil, exitcode.Input(fmt.Errorf("event %d: %w", seq, err), "run 'lambda-check audit verify'")
	}
	return ev, nil
}

// AuditIndex is the sidecar index of the audit log.
type AuditIndex struct {
	Log     string       `json:"log"`
	Digest  string       `json:"digest"`
	Entries []IndexEntry `json:"entries"`
}

// IndexEntry links an event to its digest and place in the log.
type IndexEntry struct {
	Seq    int64  `json:"seq"`
	Digest string `json:"digest"`
	Offset int64  `json:"offset"`
	Length int    `json:"length"`
	Stage  string `json:"stage"`
	Time   string `json:"time"`
}

// AuditExport writes the sidecar index to out (default
// <state-dir>/audit.index.json).
func AuditExport(e *Env, out string) (string, *AuditIndex, error) {
	// Streamed: the log is never held in memory whole.
	p := filepath.Join(e.StateDir, AuditFile)
	digest, err := artifact.DigestFile(p)
	if err != nil {
		return "", nil, exitcode.Input(fmt.Errorf("read the audit log: %w", err), "")
	}
	f, err := os.Open(p)
	if err != nil {
		return "", nil, exitcode.Input(fmt.Errorf("read the audit log: %w", err), "")
	}
	defer f.Close()
	index := &AuditIndex{Log: p, Digest: digest, Entries: []IndexEntry{}}
	var off int64
	err = audit.Scan(f, func(n int64, line []byte) error {
		ev, err := audit.Decode(line)
		if err != nil {
			return &audit.Problem{Line: n, What: err.Error()}
		}
		index.Entries = append(index.Entries, IndexEntry{ev.Seq, ev.Digest, off, len(line) + 1, ev.Stage, ev.Time})
		off += int64(len(line) + 1)
		return nil
	})
	if err != nil {
		return "", nil, exitcode.Input(err, "run 'lambda-check audit verify'")
	}
	out = firstOf(out, filepath.Join(e.StateDir, "audit.index.json"))
	enc, err := artifact.Encode(index)
	if err != nil {
		return "", nil, err
	}
	if err := artifact.WriteFile(out, enc, 0o644); err != nil {
		return "", nil, err
	}
	return out, index, nil
}
