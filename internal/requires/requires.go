// Package requires lets tests demand an external tool: skipped with the reason
// when it is missing, failed under CI=true, where .ci/run installs it. The
// binary never links it (it imports package testing).
package requires

import (
	"os"
	"os/exec"
	"testing"
)

// Tool returns the path of an external tool a test needs. When it is
// missing the test is skipped with the reason, except under CI=true, where
// .ci/run installs every such tool and a missing one is a failure.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI (.ci/run installs it) but is not on PATH: %v", name, err)
	}
	t.Skipf("skipped: %s is not installed (%v); .ci/run installs it", name, err)
	return ""
}

// NixEnv is the environment a test runs nix with: flakes on, no
// substituters (nothing leaves the machine), no sandbox (Debian's nix-bin).
func NixEnv() []string {
	return append(os.Environ(),
		"NIX_CONFIG=experimental-features = nix-command flakes\nsubstituters =\nsandbox = false\nwarn-dirty = false",
	)
}
