package audit

import (
	"bytes"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
)

// The child of TestAppendOnAFullDisk: with the file size limit just past
// the log's end (RLIMIT_FSIZE: the write is cut short, as on a full
// disk), one append.
func init() {
	path, limit := os.Getenv("LAMBDA_CHECK_TEST_FSIZE_LOG"), os.Getenv("LAMBDA_CHECK_TEST_FSIZE")
	if path == "" || limit == "" {
		return
	}
	signal.Ignore(syscall.SIGXFSZ) // a write past the limit fails instead
	n, _ := strconv.ParseUint(limit, 10, 64)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
		os.Exit(3)
	}
	if _, err := Append(path, event(99)); err == nil {
		os.Exit(4) // the append should have failed
	}
	os.Exit(0)
}

// A full disk during an append leaves no torn line: the short write is
// cut back and the log verifies as it was.
func TestAppendOnAFullDisk(t *testing.T) {
	p, before := writeLog(t, 3)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LAMBDA_CHECK_TEST_FSIZE_LOG="+p, "LAMBDA_CHECK_TEST_FSIZE="+strconv.Itoa(len(before)+40))
	out, err := cmd.CombinedOutput()
	assert.NilError(t, err, string(out))
	after, err := os.ReadFile(p)
	assert.NilError(t, err)
	assert.Assert(t, bytes.Equal(after, before), "the log changed: %d bytes, was %d", len(after), len(before))
	rep, err := Verify(bytes.NewReader(after), VerifyOptions{})
	assert.NilError(t, err)
	assert.Assert(t, rep.Problem == nil && rep.Events == 3, "%+v", rep)
}
