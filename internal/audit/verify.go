package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/sign"
)

// CheckpointDomain is what checkpoint signatures are made for.
const CheckpointDomain = "lambda-check/audit-checkpoint/v1"

// CheckpointKind names a signed checkpoint document.
const CheckpointKind = "lambda-check/audit-checkpoint"

// Checkpoint is a signed statement of the log's head: "line Seq has digest
// Head". It is kept in the log (as the event after that line), beside it
// in <state-dir>/checkpoints/<seq>.json, and in publications.
type Checkpoint struct {
	Seq    int64  `json:"seq"`
	Head   string `json:"head"`
	Signer string `json:"signer"`
	// Document is the signed checkpoint document.
	Document json.RawMessage `json:"document"`
}

type checkpointDoc struct {
	Kind          string          `json:"kind"`
	SchemaVersion int             `json:"schemaVersion"`
	Seq           int64           `json:"seq"`
	Head          string          `json:"head"`
	Signer        string          `json:"signer"`
	Time          string          `json:"time"`
	Signatures    json.RawMessage `json:"signatures,omitempty"`
}

// SignCheckpoint makes a signed checkpoint of a head.
func SignCheckpoint(h Head, k *sign.PrivateKey, now time.Time) (*Checkpoint, error) {
	b, err := json.Marshal(checkpointDoc{Kind: CheckpointKind, SchemaVersion: 1, Seq: h.Seq, Head: h.Digest, Signer: k.ID, Time: now.UTC().Format(time.RFC3339)})
	if err != nil {
		return nil, err
	}
	doc, err := sign.SignDocument(b, CheckpointDomain, k)
	if err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, doc); err != nil {
		return nil, err
	}
	return &Checkpoint{Seq: h.Seq, Head: h.Digest, Signer: k.ID, Document: compact.Bytes()}, nil
}

// ParseCheckpoint reads a signed checkpoint document.
func ParseCheckpoint(doc []byte) (*Checkpoint, error) {
	var d checkpointDoc
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if d.Kind != CheckpointKind || d.SchemaVersion != 1 || d.Seq < 0 || !isDigest(d.Head) && d.Head != Genesis {
		return nil, errors.New("checkpoint: not a version 1 audit checkpoint")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, doc); err != nil {
		return nil, err
	}
	return &Checkpoint{Seq: d.Seq, Head: d.Head, Signer: d.Signer, Document: compact.Bytes()}, nil
}

// VerifySignature checks a checkpoint's signature against a registry: a
// key with the checkpoint role, valid when the checkpoint was signed (its
// signed time, which must not be after now): a checkpoint stays valid after
// its key expires, and an expired key signs none that count.
func (c *Checkpoint) VerifySignature(reg *sign.Registry, now time.Time) error {
	var d checkpointDoc
	if err := json.Unmarshal(c.Document, &d); err != nil {
		return fmt.Errorf("checkpoint at seq %d: %w", c.Seq, err)
	}
	at, err := time.Parse(time.RFC3339, d.Time)
	if err != nil {
		return fmt.Errorf("checkpoint at seq %d: time %q is not RFC 3339", c.Seq, d.Time)
	}
	if at.After(now.Add(5 * time.Minute)) {
		return fmt.Errorf("checkpoint at seq %d is signed at %s, after now", c.Seq, d.Time)
	}
	ch, err := sign.Verify(c.Document, CheckpointDomain, reg, func(k *sign.Key) error { return k.Allows(sign.RoleCheckpoint, "", at) })
	if err != nil {
		return err
	}
	if ch.Verdict != sign.Valid {
		return fmt.Errorf("checkpoint at seq %d is %s", c.Seq, ch)
	}
	for _, id := range ch.ValidKeys {
		if id == c.Signer {
			return nil
		}
	}
	return fmt.Errorf("checkpoint at seq %d names signer %q but is signed by %v", c.Seq, c.Signer, ch.ValidKeys)
}

// VerifyOptions say what else to check the log against.
type VerifyOptions struct {
	// Registry checks checkpoint signatures; nil leaves them unchecked
	// (and says so).
	Registry *sign.Registry
	Now      time.Time
	// Checkpoints are signed checkpoints kept outside the log (the
	// state dir's checkpoints/, a publication).
	Checkpoints []*Checkpoint
}

// Report is the outcome of verifying a log.
type Report struct {
	Events int64 `json:"events"`
	// Head is the last line's digest (Genesis when empty).
	Head        string          `json:"head"`
	Checkpoints []CheckedAnchor `json:"checkpoints"`
	// Problem is the first thing wrong; nil when the log verifies.
	Problem *Problem `json:"problem,omitempty"`
	// Notes say what was not checked.
	Notes []string `json:"notes"`
}

// CheckedAnchor is a checkpoint the log was checked against.
type CheckedAnchor struct {
	Seq       int64  `json:"seq"`
	Signer    string `json:"signer"`
	Where     string `json:"where"` // "log" or "outside"
	Signature string `json:"signature"`
}

// Verify reads a whole log and checks every line, the chain between them,
// and the checkpoints in it and given outside it. It stops at the first
// problem, which names the line.
func Verify(r io.Reader, o VerifyOptions) (*Report, error) {
	rep := &Report{Head: Genesis, Checkpoints: []CheckedAnchor{}, Notes: []string{}}
	need := map[int64]string{} // seq -> digest the outside checkpoints expect
	for _, c := range o.Checkpoints {
		if d, ok := need[c.Seq]; ok && d != c.Head {
			rep.Problem = &Problem{Seq: c.Seq, What: fmt.Sprintf("two checkpoints of seq %d disagree", c.Seq)}
			return rep, nil
		}
		need[c.Seq] = c.Head
	}
	prev := Genesis
	var seen int64
	var c checker
	err := Scan(r, func(n int64, line []byte) error {
		seq, p, d, err := c.check(line)
		if err != nil {
			return &Problem{Line: n, What: err.Error()}
		}
		if seq != n {
			return &Problem{Line: n, Seq: seq, What: fmt.Sprintf("has seq %d where %d belongs (a line was deleted, inserted or moved)", seq, n)}
		}
		if p != prev {
			return &Problem{Line: n, Seq: seq, What: "its prev is not the digest of the line before it (a line before it was changed, deleted or moved)"}
		}
		if want, ok := need[seq]; ok && want != d {
			return &Problem{Line: n, Seq: seq, What: "differs from the signed checkpoint of this line: the log was rewritten from here or before"}
		}
		if bytes.Contains(line[:min(len(line), 256)], []byte(`"stage":"checkpoint"`)) {
			e, err := Decode(line)
			if err != nil {
				return &Problem{Line: n, Seq: seq, What: "checkpoint event: " + err.Error()}
			}
			if e.Checkpoint != nil {
				c := e.Checkpoint
				if c.Seq != seq-1 || c.Head != prev {
					return &Problem{Line: n, Seq: seq, What: "checkpoint does not name the line before it"}
				}
				doc, err := ParseCheckpoint(c.Document)
				if err != nil || doc.Seq != c.Seq || doc.Head != c.Head || doc.Signer != c.Signer {
					return &Problem{Line: n, Seq: seq, What: "checkpoint document does not match the event"}
				}
				status := "not checked (no key registry)"
				if o.Registry != nil {
					if err := c.VerifySignature(o.Registry, o.Now); err != nil {
						return &Problem{Line: n, Seq: seq, What: err.Error()}
					}
					status = "valid"
				}
				rep.Checkpoints = append(rep.Checkpoints, CheckedAnchor{Seq: c.Seq, Signer: c.Signer, Where: "log", Signature: status})
			}
		}
		prev, seen = d, seq
		return nil
	})
	var pr *Problem
	if errors.As(err, &pr) {
		rep.Problem = pr
		return rep, nil
	}
	if err != nil {
		return nil, err
	}
	rep.Events, rep.Head = seen, prev
	for _, c := range o.Checkpoints {
		if c.Seq > seen {
			rep.Problem = &Problem{Seq: c.Seq, What: fmt.Sprintf("the log ends at seq %d but a signed checkpoint names seq %d: it was truncated", seen, c.Seq)}
			return rep, nil
		}
		status := "not checked (no key registry)"
		if o.Registry != nil {
			if err := c.VerifySignature(o.Registry, o.Now); err != nil {
				rep.Problem = &Problem{Seq: c.Seq, What: "checkpoint outside the log: " + err.Error()}
				return rep, nil
			}
			status = "valid"
		}
		rep.Checkpoints = append(rep.Checkpoints, CheckedAnchor{Seq: c.Seq, Signer: c.Signer, Where: "outside", Signature: status})
	}
	sort.SliceStable(rep.Checkpoints, func(i, j int) bool { return rep.Checkpoints[i].Seq < rep.Checkpoints[j].Seq })
	if len(rep.Checkpoints) == 0 {
		rep.Notes = append(rep.Notes, "no checkpoint: a truncated or rewritten tail cannot be told from a shorter log")
	} else if last := rep.Checkpoints[len(rep.Checkpoints)-1].Seq; last+1 < seen {
		// (The line after a checkpointed one is the checkpoint event.)
		rep.Notes = append(rep.Notes, fmt.Sprintf("events after seq %d are not covered by a checkpoint", last))
	}
	if o.Registry == nil && len(rep.Checkpoints) > 0 {
		rep.Notes = append(rep.Notes, "checkpoint signatures not checked: no key registry")
	}
	return rep, nil
}

// ReadCheckpoints reads the signed checkpoints kept in dir (<seq>.json).
func ReadCheckpoints(dir string) ([]*Checkpoint, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Checkpoint
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		if _, err := strconv.ParseInt(name, 10, 64); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		c, err := ParseCheckpoint(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		if name != strconv.FormatInt(c.Seq, 10) {
			return nil, fmt.Errorf("%s holds the checkpoint of seq %d", e.Name(), c.Seq)
		}
		out = append(out, c)
	}
	return out, nil
}
