package policy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/lambda-os/lambda-check/internal/requires"
	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/stage/plan"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

var benchSizes = []int{55, 2000}

var (
	benchMu sync.Mutex
	benchWS = map[int]*benchWorkspace{}
)

type benchWorkspace struct {
	ws   *sample.Workspace
	snap *workspace.Snapshot
	cfg  *Config
}

// benchFor generates each size once per process (in a temporary directory
// removed when the test binary's TempDir is).
func benchFor(tb testing.TB, n int) *benchWorkspace {
	benchMu.Lock()
	defer benchMu.Unlock()
	if b, ok := benchWS[n]; ok {
		return b
	}
	dir, err := os.MkdirTemp("", "lambda-check-policy-bench-")
	if err != nil {
		tb.Fatal(err)
	}
	ws, err := sample.Generate(context.Background(), dir, sample.Options{Modules: n - 2, Drift: []string{"logos-liblogos"}})
	if err != nil {
		tb.Fatal(err)
	}
	res, err := snapshot.Run(context.Background(), snapshot.Request{Workspace: ws.Root, Parallelism: 8})
	if err != nil {
		tb.Fatal(err)
	}
	cfg, err := LoadConfig(filepath.Join(ws.Root, "policy.json"), false)
	if err != nil {
		tb.Fatal(err)
	}
	b := &benchWorkspace{ws: ws, snap: &res.Snapshot, cfg: cfg}
	benchWS[n] = b
	return b
}

// graphPlanPolicy is the whole job: the graph from flake.lock, a plan of
// every input, and every default rule over a fresh snapshot, with
// lock-integrity's results of an earlier run when cache is set (as the
// CLI keeps them in the state directory).
func graphPlanPolicy(ctx context.Context, b *benchWorkspace, cfg *Config, cache *IntegrityCache) error {
	v, err := plan.LoadGraph(ctx, plan.GraphRequest{Workspace: b.ws.Root, Why: "benchmark"})
	if err != nil {
		return err
	}
	if _, err := plan.Run(ctx, plan.Request{Graph: &v.Graph, Changes: v.RootInputs()}); err != nil {
		return err
	}
	res, err := Run(ctx, Request{Snapshot: b.snap, Config: cfg, NixNote: "benchmark", Now: now, Fresh: true, Integrity: cache})
	if err != nil {
		return err
	}
	if res.Report.Summary.Deny != 1 {
		return fmt.Errorf("want the one drift finding, got %+v", res.Report.Summary)
	}
	return nil
}

// warmCache runs the policy once and returns lock-integrity's results.
func warmCache(tb testing.TB, b *benchWorkspace) *IntegrityCache {
	res, err := Run(context.Background(), Request{Snapshot: b.snap, Config: b.cfg, NixNote: "benchmark", Now: now, Fresh: true})
	if err != nil {
		tb.Fatal(err)
	}
	return res.Integrity
}

// gitSubmoduleStatus is the baseline: git's own check of every gitlink
// against its checkout, the least a script checking drift runs.
func gitSubmoduleStatus(ctx context.Context, b *benchWorkspace) error {
	cmd := exec.CommandContext(ctx, "git", "-C", b.ws.Root, "submodule", "status", "--recursive")
	return cmd.Run()
}

func BenchmarkGraphPlanPolicy(b *testing.B) {
	for _, n := range benchSizes {
		bw := benchFor(b, n)
		cache := warmCache(b, bw)
		b.Run(fmt.Sprintf("inputs=%d/warm", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := graphPlanPolicy(b.Context(), bw, bw.cfg, cache); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("inputs=%d/cold", n), func(b *testing.B) {
			for b.Loop() {
				if err := graphPlanPolicy(b.Context(), bw, bw.cfg, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("inputs=%d/git-submodule-status", n), func(b *testing.B) {
			for b.Loop() {
				if err := gitSubmoduleStatus(b.Context(), bw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestBenchReport prints the table docs/performance.md records. It runs
// only when LAMBDA_CHECK_BENCH=1, and asserts nothing about time.
func TestBenchReport(t *testing.T) {
	if os.Getenv("LAMBDA_CHECK_BENCH") != "1" {
		t.Skip("skipped: set LAMBDA_CHECK_BENCH=1 to measure (see docs/performance.md)")
	}
	requires.Tool(t, "git")
	fmt.Printf("| inputs | graph + plan + policy | allocs/op | cold (every locked tree hashed) | git submodule status | warm / git |\n|---|---|---|---|---|---|\n")
	for _, n := range benchSizes {
		bw := benchFor(t, n)
		cache := warmCache(t, bw)
		bench := func(f func() error) testing.BenchmarkResult {
			return testing.Benchmark(func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := f(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		ctx := context.Background()
		warm := bench(func() error { return graphPlanPolicy(ctx, bw, bw.cfg, cache) })
		cold := bench(func() error { return graphPlanPolicy(ctx, bw, bw.cfg, nil) })
		git := bench(func() error { return gitSubmoduleStatus(ctx, bw) })
		w, c, g := float64(warm.NsPerOp())/1e6, float64(cold.NsPerOp())/1e6, float64(git.NsPerOp())/1e6
		fmt.Printf("| %d | %.1f ms | %d | %.1f ms | %.1f ms | %.2f |\n", n, w, warm.AllocsPerOp(), c, g, w/g)
	}
	for _, bw := range benchWS {
		os.RemoveAll(filepath.Dir(bw.ws.Root))
	}
}
