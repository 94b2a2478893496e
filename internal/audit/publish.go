package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/lambda-os/lambda-check/internal/artifact"
)

// PublicationKind names a publication manifest.
const PublicationKind = "lambda-check/audit-publication"

// Store is where publications go (a Codex node).
type Store interface {
	Upload(ctx context.Context, data []byte) (string, error)
	Download(ctx context.Context, cid string) ([]byte, error)
}

// Publication is the manifest of one publication: a segment of the log
// (the lines since the previous publication), the signed checkpoint that
// ends it, and the CID of the previous publication, so that the last CID
// reaches the whole log.
type Publication struct {
	Kind          string          `json:"kind"`
	SchemaVersion int             `json:"schemaVersion"`
	FromSeq       int64           `json:"fromSeq"`
	ToSeq         int64           `json:"toSeq"`
	Segment       string          `json:"segment"`       // CID of the lines
	SegmentDigest string          `json:"segmentDigest"` // sha256 of them
	Checkpoint    json.RawMessage `json:"checkpoint"`    // signed; seq ToSeq-1 or ToSeq
	Previous      string          `json:"previous,omitempty"`
}

// LastPublish returns the last publish event of a log, or nil.
func LastPublish(path string) (*Publish, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var last *Publish
	err = Scan(f, func(n int64, line []byte) error {
		if !bytes.Contains(line[:min(len(line), 256)], []byte(`"stage":"publish"`)) {
			return nil
		}
		e, err := Decode(line)
		if err != nil {
			return &Problem{Line: n, What: err.Error()}
		}
		if e.Publish != nil {
			last = e.Publish
		}
		return nil
	})
	return last, err
}

// Segment returns the lines with seq from..to (inclusive) of a log.
func Segment(path string, from, to int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out bytes.Buffer
	err = Scan(f, func(n int64, line []byte) error {
		if n >= from && n <= to {
			out.Write(line)
			out.WriteByte('\n')
		}
		return nil
	})
	return out.Bytes(), err
}

// PublishSegment uploads lines from..to of the log with the checkpoint
// that ends them, and the manifest; it returns the manifest's CID.
func PublishSegment(ctx context.Context, s Store, path string, from, to int64, cp *Checkpoint, previous string) (string, *Publication, error) {
	seg, err := Segment(path, from, to)
	if err != nil {
		return "", nil, err
	}
	segCID, err := s.Upload(ctx, seg)
	if err != nil {
		return "", nil, err
	}
	p := &Publication{Kind: PublicationKind, SchemaVersion: 1, FromSeq: from, ToSeq: to, Segment: segCID,
		SegmentDigest: artifact.Digest(seg), Checkpoint: cp.Document, Previous: previous}
	b, err := artifact.Encode(p)
	if err != nil {
		return "", nil, err
	}
	cid, err := s.Upload(ctx, b)
	if err != nil {
		return "", nil, err
	}
	return cid, p, nil
}

// Fetch downloads a publication and every one before it, checks each
// segment against its digest and that they join without a gap, and returns
// the log they make and their checkpoints.
func Fetch(ctx context.Context, s Store, cid string) ([]byte, []*Checkpoint, error) {
	var pubs []*Publication
	seen := map[string]bool{}
	for cur := cid; cur != ""; {
		if seen[cur] || len(pubs) > 100000 {
			return nil, nil, fmt.Errorf("publication %s: the chain of previous publications loops", cur)
		}
		seen[cur] = true
		b, err := s.Download(ctx, cur)
		if err != nil {
			return nil, nil, err
		}
		var p Publication
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil || p.Kind != PublicationKind || p.SchemaVersion != 1 {
			return nil, nil, fmt.Errorf("publication %s: not a version 1 audit publication", cur)
		}
		pubs = append(pubs, &p)
		cur = p.Previous
	}
	var log bytes.Buffer
	var cps []*Checkpoint
	next := int64(1)
	for i := len(pubs) - 1; i >= 0; i-- {
		p := pubs[i]
		if p.FromSeq != next || p.ToSeq < p.FromSeq {
			return nil, nil, fmt.Errorf("publication of seq %d..%d does not follow seq %d: a segment is missing", p.FromSeq, p.ToSeq, next-1)
		}
		seg, err := s.Download(ctx, p.Segment)
		if err != nil {
			return nil, nil, err
		}
		if artifact.Digest(seg) != p.SegmentDigest {
			return nil, nil, fmt.Errorf("segment %s (seq %d..%d) does not match its digest", p.Segment, p.FromSeq, p.ToSeq)
		}
		log.Write(seg)
		cp, err := ParseCheckpoint(p.Checkpoint)
		if err != nil {
			return nil, nil, fmt.Errorf("publication of seq %d..%d: %w", p.FromSeq, p.ToSeq, err)
		}
		cps = append(cps, cp)
		next = p.ToSeq + 1
	}
	return log.Bytes(), cps, nil
}
