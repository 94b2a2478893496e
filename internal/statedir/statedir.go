// Package statedir owns lambda-check's state directory: where artifacts live,
// the .gitignore that keeps it out of the workspace's git status, and the
// lock that keeps two writers from interleaving.
package statedir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultName is the state directory's name inside a workspace.
const DefaultName = ".lambda-check"

const gitignore = "# Written by lambda-check: its state is never part of the workspace.\n*\n"

// Dir is an opened state directory.
type Dir struct {
	Path string
}

// Open creates the state directory if needed and makes sure its .gitignore
// exists, so git (and lambda-check's own snapshot) never count its files.
func Open(path string) (*Dir, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	gi := filepath.Join(abs, ".gitignore")
	if b, err := os.ReadFile(gi); err != nil || string(b) != gitignore {
		if err := os.WriteFile(gi, []byte(gitignore), 0o644); err != nil {
			return nil, fmt.Errorf("write %q: %w", gi, err)
		}
	}
	return &Dir{Path: abs}, nil
}

// File returns the path of name inside the state directory.
func (d *Dir) File(name string) string { return filepath.Join(d.Path, name) }

// Lock is a held writer lock on a state directory.
type Lock struct {
	f *os.File
}

// ErrLocked reports that another process holds the lock past the timeout.
var ErrLocked = errors.New("state dir is locked by another lambda-check")

// Lock takes the state directory's exclusive writer lock, waiting up to
// wait. The lock is an flock(2) on a file: the kernel releases it when the
// holder exits, however it exits, so a killed process never leaves a stale
// lock behind. The holder's pid is written into the file for messages.
func (d *Dir) Lock(ctx context.Context, wait time.Duration) (*Lock, error) {
	path := d.File("lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", NoFollow(path, err))
	}
	deadline := time.Now().Add(wait)
	delay := 10 * time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %q: %w", path, err)
		}
		if time.Now().After(deadline) {
			holder := readHolder(path)
			f.Close()
			return nil, fmt.Errorf("%w (%s) after waiting %s", ErrLocked, holder, wait)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 200*time.Millisecond)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

func readHolder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "holder unknown"
	}
	pid := strings.TrimSpace(string(b))
	if pid == "" {
		return "holder unknown"
	}
	return "pid " + pid
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	l.f = nil
	return err
}

// Sweep removes what a writer killed mid-write can leave behind: temporary
// files of atomic writes (".NAME.tmp-*") in the state directory and
// temporary proposal directories (".tmp-*") in proposals/. Only the lock
// holder may call it: with the lock held, no other writer owns them. It
// returns the paths it removed.
func (d *Dir) Sweep() ([]string, error) {
	var removed []string
	for _, dir := range []string{d.Path, d.File("proposals")} {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, err
		}
		for _, e := range ents {
			n := e.Name()
			if !strings.HasPrefix(n, ".") || !(strings.Contains(n, ".tmp-") || strings.HasPrefix(n, ".tmp-")) {
				continue
			}
			p := filepath.Join(dir, n)
			if err := os.RemoveAll(p); err != nil {
				return removed, fmt.Errorf("remove leftover %q: %w", p, err)
			}
			removed = append(removed, p)
		}
	}
	return removed, nil
}

// NoFollow names a symbolic link where a file of the state directory
// should be: it is refused, never followed.
func NoFollow(path string, err error) error {
	if errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("%s is a symbolic link: refusing to write through it (remove it; lambda-check makes the file)", path)
	}
	return err
}
