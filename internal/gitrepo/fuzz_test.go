package gitrepo_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/sample"
)

// FuzzDecodeIndex: any bytes either decode or fail with an error; never a
// panic, never an endless loop. Seeds are real indexes of a generated module
// and superproject (gitlinks, a TREE extension).
func FuzzDecodeIndex(f *testing.F) {
	ws, err := sample.Generate(context.Background(), f.TempDir(), sample.Options{Modules: 1})
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range []string{".git/index", ".git/modules/repos/logos-liblogos/index"} {
		b, err := os.ReadFile(filepath.Join(ws.Root, p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = gitrepo.DecodeIndex(b)
	})
}

func FuzzParseGitmodules(f *testing.F) {
	f.Add([]byte("[submodule \"repos/a\"]\n\tpath = repos/a\n\turl = ../a.git\n\tbranch = main\n"))
	f.Add([]byte("[submodule \"x\"]\n\tpath = ../escape\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		subs, err := gitrepo.ParseGitmodules(b, "fuzz")
		if err != nil {
			return
		}
		for _, s := range subs {
			if s.Path == "" || filepath.IsAbs(s.Path) || s.Path == ".." || len(s.Path) >= 3 && s.Path[:3] == "../" {
				t.Fatalf("unsafe path accepted: %q", s.Path)
			}
		}
	})
}
