package nixcli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A nix that does not answer is killed at the timeout, with a clear error.
func TestRunTimeout(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "nix")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexec sleep 300\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	n := &Nix{Bin: bin, Timeout: 200 * time.Millisecond}
	_, err := n.Run(context.Background(), t.TempDir(), "eval")
	if err == nil || !strings.Contains(err.Error(), "no answer within 200ms (killed)") {
		t.Fatalf("Run of a hanging nix: %v", err)
	}
}
