package gitrepo

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
)

// StatCache remembers, from one status to the next, the content hash of
// tracked files whose stat data no longer matches the index (after a copy,
// a checkout by another tool, a touch): git would hash them once and write
// the new stat data into the index; lambda-check never writes the index,
// so without this every status would hash them again. An entry counts only
// for exactly the same stat data (size, times to the nanosecond, inode,
// device, mode, owner) and only for a file last modified before the cache
// was written (git's rule against racily clean entries). It is kept in the
// state directory; entries not used by a status are dropped when it is
// saved.
type StatCache struct {
	mu      sync.Mutex
	written int64 // Unix seconds the loaded file was written
	old     map[string]statEntry
	used    map[string]statEntry
}

type statEntry struct {
	size, mtime, ctime int64
	ino, dev           uint64
	mode, uid, gid     uint32
	blob               plumbing.Hash
}

const statCacheMagic = "lambda-check stat cache 1\n"

// LoadStatCache reads the cache at path; a missing or unreadable one is
// an empty cache (it is only ever an optimisation).
func LoadStatCache(path string) *StatCache {
	c := &StatCache{old: map[string]statEntry{}, used: map[string]statEntry{}}
	f, err := os.Open(path)
	if err != nil {
		return c
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return c
	}
	c.written = st.ModTime().Unix()
	r := bufio.NewReader(f)
	magic := make([]byte, len(statCacheMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != statCacheMagic {
		return c
	}
	for {
		var n uint16
		if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
			return c
		}
		key := make([]byte, n)
		var e struct {
			Size, Mtime, Ctime int64
			Ino, Dev           uint64
			Mode, UID, GID     uint32
			Blob               [20]byte
		}
		if _, err := io.ReadFull(r, key); err != nil {
			return c
		}
		if err := binary.Read(r, binary.LittleEndian, &e); err != nil {
			return c
		}
		c.old[string(key)] = statEntry{e.Size, e.Mtime, e.Ctime, e.Ino, e.Dev, e.Mode, e.UID, e.GID, e.Blob}
	}
}

// Save writes the entries this cache's statuses used or added; nothing
// when there are none and there were none.
func (c *StatCache) Save(path string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.used) == 0 && len(c.old) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.WriteString(statCacheMagic)
	for k, e := range c.used {
		if len(k) > 65535 {
			continue
		}
		binary.Write(&b, binary.LittleEndian, uint16(len(k)))
		b.WriteString(k)
		binary.Write(&b, binary.LittleEndian, struct {
			Size, Mtime, Ctime int64
			Ino, Dev           uint64
			Mode, UID, GID     uint32
			Blob               [20]byte
		}{e.size, e.mtime, e.ctime, e.ino, e.dev, e.mode, e.uid, e.gid, e.blob})
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// A temporary name the state directory's sweeper recognises.
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}

func entryOf(st *syscall.Stat_t, blob plumbing.Hash) statEntry {
	return statEntry{st.Size, st.Mtim.Nano(), st.Ctim.Nano(), st.Ino, st.Dev, st.Mode, st.Uid, st.Gid, blob}
}

// lookup returns the hash remembered for key with exactly this stat data.
func (c *StatCache) lookup(key string, st *syscall.Stat_t) (plumbing.Hash, bool) {
	if c == nil {
		return plumbing.ZeroHash, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.old[key]
	if !ok || st.Mtim.Sec >= c.written {
		return plumbing.ZeroHash, false
	}
	if want := entryOf(st, e.blob); want != e {
		return plumbing.ZeroHash, false
	}
	c.used[key] = e
	return e.blob, true
}

func (c *StatCache) store(key string, st *syscall.Stat_t, blob plumbing.Hash) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.used[key] = entryOf(st, blob)
	c.mu.Unlock()
}
