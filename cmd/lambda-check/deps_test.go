package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The binary links no test kit: no package testing, no package whose name
// of ours ends in "test", nothing of internal/requires.
func TestBinaryLinksNoTestKit(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		base := p[strings.LastIndex(p, "/")+1:]
		ours := strings.HasPrefix(p, "github.com/lambda-os/lambda-check/")
		if p == "testing" || ours && (strings.HasSuffix(base, "test") || base == "requires") {
			t.Errorf("lambda-check links %s", p)
		}
	}
}
