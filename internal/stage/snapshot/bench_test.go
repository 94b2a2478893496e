package snapshot_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/lambda-os/lambda-check/internal/requires"
	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
)

// benchCase is one workspace shape of the benchmark.
type benchCase struct {
	modules, files int
}

func (c benchCase) String() string { return fmt.Sprintf("modules=%d/files=%d", c.modules, c.files) }

var benchCases = []benchCase{{55, 26}, {55, 300}, {500, 26}, {2000, 26}}

var (
	benchMu   sync.Mutex
	benchRoot string
	benchWS   = map[benchCase]*sample.Workspace{}
)

// workspaceFor generates each shape once per process, in a directory
// removed by TestMain.
func workspaceFor(tb testing.TB, c benchCase) *sample.Workspace {
	benchMu.Lock()
	defer benchMu.Unlock()
	if ws, ok := benchWS[c]; ok {
		return ws
	}
	if benchRoot == "" {
		d, err := os.MkdirTemp("", "lambda-check-bench-")
		if err != nil {
			tb.Fatal(err)
		}
		benchRoot = d
	}
	ws, err := sample.Generate(context.Background(), filepath.Join(benchRoot, fmt.Sprintf("%d-%d", c.modules, c.files)),
		sample.Options{Modules: c.modules - 2, Files: c.files})
	if err != nil {
		tb.Fatal(err)
	}
	// Let git refresh its index stat data once, as on any real machine.
	if err := gitCLISnapshot(context.Background(), ws); err != nil {
		tb.Fatal(err)
	}
	benchWS[c] = ws
	return ws
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchRoot != "" {
		os.RemoveAll(benchRoot)
	}
	os.Exit(code)
}

func inProcess(ctx context.Context, ws *sample.Workspace) error {
	_, err := snapshot.Run(ctx, snapshot.Request{Workspace: ws.Root, Parallelism: 4 * runtime.GOMAXPROCS(0)})
	return err
}

// gitCLISnapshot is the baseline: what a careful script does with the git
// CLI to learn the same facts — the superproject's status including
// submodules, then each submodule's status with its HEAD, run with the same
// parallelism as lambda-check.
func gitCLISnapshot(ctx context.Context, ws *sample.Workspace) error {
	run := func(dir string, args ...string) error {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		cmd.Stdout, cmd.Stderr = nil, nil
		return cmd.Run()
	}
	if err := run(ws.Root, "status", "--porcelain=v2", "-z", "--branch", "--ignore-submodules=none"); err != nil {
		return err
	}
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(4 * runtime.GOMAXPROCS(0))
	for _, r := range ws.Repos {
		g.Go(func() error {
			return run(filepath.Join(ws.Root, r.Path), "status", "--porcelain=v2", "-z", "--branch", "--untracked-files=all")
		})
	}
	return g.Wait()
}

func BenchmarkSnapshot(b *testing.B) {
	if _, err := exec.LookPath("git"); err != nil {
		b.Skipf("skipped: git is not installed: %v", err)
	}
	for _, c := range benchCases {
		ws := workspaceFor(b, c)
		b.Run(c.String()+"/lambda-check", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := inProcess(b.Context(), ws); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.String()+"/git-cli", func(b *testing.B) {
			for b.Loop() {
				if err := gitCLISnapshot(b.Context(), ws); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestBenchReport prints the table docs/performance.md records: both
// approaches measured in the same run, as a ratio. It runs only when
// LAMBDA_CHECK_BENCH=1, and asserts nothing about time.
func TestBenchReport(t *testing.T) {
	if os.Getenv("LAMBDA_CHECK_BENCH") != "1" {
		t.Skip("skipped: set LAMBDA_CHECK_BENCH=1 to measure (see docs/performance.md)")
	}
	requires.Tool(t, "git")
	fmt.Printf("| workspace | lambda-check | allocs/op | bytes/op | git CLI | speed-up |\n|---|---|---|---|---|---|\n")
	for _, c := range benchCases {
		ws := workspaceFor(t, c)
		ours := testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := inProcess(context.Background(), ws); err != nil {
					b.Fatal(err)
				}
			}
		})
		theirs := testing.Benchmark(func(b *testing.B) {
			for b.Loop() {
				if err := gitCLISnapshot(context.Background(), ws); err != nil {
					b.Fatal(err)
				}
			}
		})
		o, g := float64(ours.NsPerOp())/1e6, float64(theirs.NsPerOp())/1e6
		fmt.Printf("| %d submodules × %d files | %.1f ms | %d | %d KiB | %.1f ms | %.1fx |\n",
			c.modules, c.files, o, ours.AllocsPerOp(), ours.AllocedBytesPerOp()/1024, g, g/o)
	}
}
