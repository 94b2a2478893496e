// Package audit is lambda-check's tamper-evident log: audit.jsonl in the
// state directory, one JSON event per line. Each line carries its sequence
// number, the digest of the line before it and its own digest, so an
// edited, inserted, deleted or reordered line breaks the chain where it
// is; signed checkpoints (kept in the log and beside it, and published)
// anchor the head, so a truncated or rewritten tail is found too.
//
// A line is the JSON of an Event with "digest" last; the digest is the
// sha256 of the line's bytes without `,"digest":"..."` (that is, of the
// event's JSON with no digest member). Checking a line needs no JSON
// decoding, which keeps verifying a million events to about a second.
package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"syscall"

	"github.com/lambda-os/lambda-check/internal/artifact"
)

// Genesis is the prev of the first line.
var Genesis = "sha256:" + string(bytes.Repeat([]byte("0"), 64))

// Event is one line of the log.
type Event struct {
	Seq    int64            `json:"seq"`
	Prev   string           `json:"prev"`
	Time   string           `json:"time"` // RFC 3339, UTC
	Stage  string           `json:"stage"`
	Actor  string           `json:"actor"`
	Inputs []artifact.Input `json:"inputs"`
	Output *Output          `json:"output,omitempty"`
	// Result is ok, fail (the stage's verdict) or error.
	Result     string      `json:"result"`
	Detail     string      `json:"detail,omitempty"`
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	Publish    *Publish    `json:"publish,omitempty"`
	Digest     string      `json:"digest"`
}

// Output is what a stage wrote.
type Output struct {
	Kind   string `json:"kind"`
	Digest string `json:"digest"`
	Path   string `json:"path,omitempty"`
}

// Publish records a publication of the log to Codex.
type Publish struct {
	Manifest string `json:"manifest"` // CID of the publication manifest
	FromSeq  int64  `json:"fromSeq"`
	ToSeq    int64  `json:"toSeq"`
	URL      string `json:"url"`
}

// Results.
const (
	ResultOK    = "ok"
	ResultFail  = "fail"
	ResultError = "error"
)

// ErrPartial: the log ends in the middle of a line (a crash while
// appending, or a truncation): nothing is appended after it.
var ErrPartial = errors.New("audit log ends with a partial line")

// encode returns the line for e (with its digest set) and the digest.
func encode(e *Event) ([]byte, string, error) {
	e.Digest = ""
	b, err := json.Marshal(e)
	if err != nil {
		return nil, "", err
	}
	// Marshal wrote `,"digest":""}` last: the body is what precedes it.
	suffix := []byte(`,"digest":""}`)
	if !bytes.HasSuffix(b, suffix) {
		return nil, "", errors.New("audit: digest is not the last member")
	}
	body := append(b[:len(b)-len(suffix)], '}')
	sum := sha256.Sum256(body)
	e.Digest = "sha256:" + hex.EncodeToString(sum[:])
	line := append(body[:len(body)-1], []byte(`,"digest":"`+e.Digest+`"}`+"\n")...)
	return line, e.Digest, nil
}

// Head is the last line's sequence number and digest.
type Head struct {
	Seq    int64
	Digest string
}

// ReadHead returns the last event's seq and digest (zero and Genesis for
// an empty or absent log), reading only the end of the file.
func ReadHead(path string) (Head, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return Head{0, Genesis}, nil
	}
	if err != nil {
		return Head{}, noFollow(path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Head{}, err
	}
	size := st.Size()
	if size == 0 {
		return Head{0, Genesis}, nil
	}
	chunk := int64(4096)
	for {
		start := max(0, size-chunk)
		buf := make([]byte, size-start)
		if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
			return Head{}, err
		}
		if buf[len(buf)-1] != '\n' {
			return Head{}, ErrPartial
		}
		i := bytes.LastIndexByte(buf[:len(buf)-1], '\n')
		if i >= 0 || start == 0 {
			line := buf[i+1 : len(buf)-1]
			seq, _, digest, err := check(line)
			if err != nil {
				return Head{}, fmt.Errorf("audit log: last line: %w", err)
			}
			return Head{seq, digest}, nil
		}
		chunk *= 4
	}
}

// Append adds an event after the log's last line (the caller holds the
// state lock): seq and prev are set here, the line is written with one
// write and fsynced. The event is returned as written.
func Append(path string, e Event) (*Event, error) {
	h, err := ReadHead(path)
	if err != nil {
		return nil, err
	}
	e.Seq, e.Prev = h.Seq+1, h.Digest
	if e.Inputs == nil {
		e.Inputs = []artifact.Input{}
	}
	line, _, err := encode(&e)
	if err != nil {
		return nil, err
	}
	// Never through a symbolic link planted in the state directory.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, noFollow(path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Write(line); err != nil {
		// A short write (a full disk) would leave a torn line: cut the
		// log back to where it was (an append-only log refuses, and the
		// next lock holder's repair moves the torn part aside).
		_ = f.Truncate(st.Size())
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return &e, f.Close()
}

// check verifies one line (without its newline) on its own: its shape
// and that its digest is the digest of its body. It returns seq, prev and
// digest.
func check(line []byte) (int64, string, string, error) {
	var c checker
	return c.check(line)
}

// checker checks lines with one reusable hasher; it is the hot path of
// verifying a log.
type checker struct {
	h   hash.Hash
	sum [32]byte
	hx  [64]byte
}

func (c *checker) check(line []byte) (int64, string, string, error) {
	const pre = `{"seq":`
	if !bytes.HasPrefix(line, []byte(pre)) {
		return 0, "", "", errors.New(`does not start with {"seq":`)
	}
	rest := line[len(pre):]
	i := bytes.IndexByte(rest, ',')
	if i <= 0 || i > 19 {
		return 0, "", "", errors.New("malformed seq")
	}
	var seq int64
	for _, d := range rest[:i] {
		if d < '0' || d > '9' {
			return 0, "", "", fmt.Errorf("malformed seq %q", rest[:i])
		}
		seq = seq*10 + int64(d-'0')
	}
	if seq <= 0 || rest[0] == '0' {
		return 0, "", "", fmt.Errorf("malformed seq %q", rest[:i])
	}
	rest = rest[i:]
	const prevKey = `,"prev":"`
	if !bytes.HasPrefix(rest, []byte(prevKey)) || len(rest) < len(prevKey)+71+1 || rest[len(prevKey)+71] != '"' {
		return 0, "", "", errors.New("malformed prev")
	}
	prev := rest[len(prevKey) : len(prevKey)+71]
	const digestKey = `,"digest":"sha256:`
	n := len(digestKey) + 64 + 2
	if len(line) < n {
		return 0, "", "", errors.New("no digest")
	}
	tail := line[len(line)-n:]
	if !bytes.HasPrefix(tail, []byte(digestKey)) || !bytes.HasSuffix(tail, []byte(`"}`)) {
		return 0, "", "", errors.New("no digest at the end of the line")
	}
	if c.h == nil {
		c.h = sha256.New()
	}
	c.h.Reset()
	c.h.Write(line[:len(line)-n])
	c.h.Write([]byte{'}'})
	c.h.Sum(c.sum[:0])
	hex.Encode(c.hx[:], c.sum[:])
	if !bytes.Equal(c.hx[:], tail[len(digestKey):len(digestKey)+64]) {
		return 0, "", "", errors.New("its digest does not match its content (the line was edited)")
	}
	return seq, string(prev), "sha256:" + string(c.hx[:]), nil
}

func isDigest(s string) bool {
	if len(s) != 71 || s[:7] != "sha256:" {
		return false
	}
	for _, c := range s[7:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Decode parses one line fully and strictly (after check).
func Decode(line []byte) (*Event, error) {
	if _, _, _, err := check(bytes.TrimSuffix(line, []byte("\n"))); err != nil {
		return nil, err
	}
	var e Event
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return nil, err
	}
	return &e, nil
}

// Scan calls f for every line of the log (without its newline), with its
// 1-based line number.
func Scan(r io.Reader, f func(n int64, line []byte) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var n int64
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line over 1 MiB: read it whole. The slice ReadSlice returned
			// is the reader's buffer, which the next read overwrites: copy it
			// first.
			head := append([]byte{}, line...)
			rest, err2 := br.ReadBytes('\n')
			line = append(head, rest...)
			err = err2
		}
		if len(line) > 0 {
			n++
			if line[len(line)-1] != '\n' {
				return &Problem{Line: n, What: "the log ends in the middle of this line (truncated, or a crash while appending)"}
			}
			if ferr := f(n, line[:len(line)-1]); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Problem is the first thing wrong with a log.
type Problem struct {
	Line int64 // 1-based; 0 when not about one line
	Seq  int64 // the seq it should have or has; 0 when unknown
	What string
}

func (p *Problem) Error() string {
	if p.Line == 0 {
		return p.What
	}
	return fmt.Sprintf("line %d: %s", p.Line, p.What)
}

// RepairTail cuts a partial last line (a writer that died mid-write, or a
// power loss) off the log and appends it to path+".torn", so nothing is
// lost and the chain can go on from the last complete line. It returns the
// number of bytes moved (0 when the log ends with a complete line). The
// caller holds the state lock and records the repair as an event.
func RepairTail(path string) (int64, error) {
	// Read-only unless there is something to repair: an append-only log
	// (chattr +a) cannot be opened for writing, and a whole one needs not.
	if whole, err := endsWithNewline(path); err != nil || whole {
		return 0, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, noFollow(path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	if size == 0 {
		return 0, nil
	}
	// Find the end of the last complete line, reading backwards.
	end, chunk := int64(-1), int64(4096)
	for pos := size; pos > 0 && end < 0; {
		start := max(0, pos-chunk)
		buf := make([]byte, pos-start)
		if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if pos == size && buf[len(buf)-1] == '\n' {
			return 0, nil
		}
		if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
			end = start + int64(i) + 1
		}
		pos = start
	}
	if end < 0 {
		end = 0
	}
	tail := make([]byte, size-end)
	if _, err := f.ReadAt(tail, end); err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	torn, err := os.OpenFile(path+".torn", os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return 0, noFollow(path+".torn", err)
	}
	if _, err := torn.Write(append(tail, '\n')); err != nil {
		torn.Close()
		return 0, err
	}
	if err := torn.Sync(); err != nil {
		torn.Close()
		return 0, err
	}
	if err := torn.Close(); err != nil {
		return 0, err
	}
	if err := f.Truncate(end); err != nil {
		return 0, err
	}
	return int64(len(tail)), f.Sync()
}

// noFollow names a symbolic link where a file of the state directory
// should be: it is refused, never followed.
func noFollow(path string, err error) error {
	if errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("%s is a symbolic link: refusing to write through it (remove it; lambda-check makes the file)", path)
	}
	return err
}

// endsWithNewline says whether the log is absent, empty or ends with a
// complete line, reading only its last byte.
func endsWithNewline(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, noFollow(path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err == nil, err
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, st.Size()-1); err != nil {
		return false, err
	}
	return last[0] == '\n', nil
}
