package statedir

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// maxLine bounds one journal line when reading.
const maxLine = 16 << 20

// Journal is a JSON Lines file of the state directory that only grows (the
// verify history, the cycle history). Records are appended together in one
// write, each ending in a newline, and synced; a line torn by a crash is
// ended before the next append, so it stays one bad line instead of gluing
// itself to a good one. Readers skip the lines that do not decode and
// count them. The lock holder appends.
type Journal struct{ Path string }

// Append adds the records, one line each, in one write.
func (j Journal) Append(records ...any) error {
	var buf bytes.Buffer
	if st, err := os.Stat(j.Path); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if f, err := os.Open(j.Path); err == nil {
			_, _ = f.ReadAt(last, st.Size()-1)
			f.Close()
		}
		if last[0] != '\n' {
			buf.WriteByte('\n')
		}
	}
	for _, r := range records {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	// Never through a symbolic link planted in the state directory.
	f, err := os.OpenFile(j.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return NoFollow(j.Path, err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadJournal reads a journal's records, oldest first. A line that does
// not decode as T, or that valid refuses, is skipped and counted in bad.
// A journal that does not exist is empty.
func ReadJournal[T any](j Journal, valid func(*T) bool) (records []T, bad int, err error) {
	f, err := os.Open(j.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var r T
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || (valid != nil && !valid(&r)) {
			bad++
			continue
		}
		records = append(records, r)
	}
	return records, bad, sc.Err()
}
