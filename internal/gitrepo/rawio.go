package gitrepo

import (
	"io/fs"
	"syscall"
)

// readFile is os.ReadFile for the many small files a status reads (HEAD,
// index, config, ignore rules, loose objects): only the system calls (open,
// fstat, reads, close) where os.ReadFile makes more, because an
// *os.File is set up for the runtime's poller. Errors are *fs.PathError
// wrapping the errno, so errors.Is(err, fs.ErrNotExist) holds as for os.
func readFile(path string) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		return nil, &fs.PathError{Op: "read", Path: path, Err: syscall.EISDIR}
	}
	size := int(st.Size) + 1 // one more: a file of its stat size fits without regrowth
	if size < 512 {
		size = 512
	}
	b := make([]byte, 0, size)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := syscall.Read(fd, b[len(b):cap(b)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return b, nil
		}
		b = b[:len(b)+n]
	}
}
