package main

import (
	"bytes"
	"context"
	"os/exec"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/cli"
	"github.com/lambda-os/lambda-check/internal/requires"
)

// The manual page is valid roff: groff renders it with every warning on
// and says nothing.
func TestManPageRenders(t *testing.T) {
	t.Parallel()
	groff := requires.Tool(t, "groff")
	var page, errb bytes.Buffer
	code := cli.Main(context.Background(), []string{"man"}, cli.Env{Stdout: &page, Stderr: &errb, Dir: t.TempDir()})
	assert.Equal(t, code, 0, errb.String())
	cmd := exec.Command(groff, "-man", "-ww", "-z")
	cmd.Stdin = &page
	out, err := cmd.CombinedOutput()
	assert.NilError(t, err, string(out))
	assert.Equal(t, string(out), "", "groff warnings")
}
