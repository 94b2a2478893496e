package upgrades

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/requires"
	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// latency adds a round trip to every remote operation, as a remote on the
// internet has (GitHub answers ls-remote in 100-300 ms): what parallelism
// is for.
type latency struct {
	d time.Duration
}

func (l latency) LsRemote(ctx context.Context, url string) (*gitrepo.RemoteRefs, error) {
	time.Sleep(l.d)
	return gitRemote{}.LsRemote(ctx, url)
}

func (l latency) Fetch(ctx context.Context, s *gitrepo.Repo, url, branch string, haves map[string]plumbing.Hash) (plumbing.Hash, error) {
	time.Sleep(l.d)
	return gitRemote{}.Fetch(ctx, s, url, branch, haves)
}

// benchWorkspace is 55 repositories, a third of their remotes ahead, as on
// a day with upstream work.
func benchWorkspace(t *testing.T) (*workspace.Snapshot, string) {
	ahead := map[string]int{}
	for i, name := range sample.RepoNames(53) {
		if i%3 == 0 {
			ahead[name] = 1 + i%4
		}
	}
	dir := t.TempDir()
	ws, err := sample.Generate(context.Background(), dir, sample.Options{Modules: 53, Ahead: ahead})
	if err != nil {
		t.Fatal(err)
	}
	return snap(t, ws.Root), filepath.Join(dir, "store")
}

// median runs f n times and returns the median duration.
func median(n int, f func()) time.Duration {
	ds := make([]time.Duration, n)
	for i := range ds {
		start := time.Now()
		f()
		ds[i] = time.Since(start)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[n/2]
}

// TestBenchReport prints the table docs/performance.md records: the
// upgrades of 55 local remotes against the slowest single remote, with and
// without a simulated network round trip. It runs only when
// LAMBDA_CHECK_BENCH=1, and asserts nothing about time.
func TestBenchReport(t *testing.T) {
	if os.Getenv("LAMBDA_CHECK_BENCH") != "1" {
		t.Skip("skipped: set LAMBDA_CHECK_BENCH=1 to measure (see docs/performance.md)")
	}
	requires.Tool(t, "git")
	s, store := benchWorkspace(t)
	ctx := context.Background()
	fmt.Printf("| remotes | round trip | all %d, parallel | slowest single remote | ratio |\n|---|---|---|---|---|\n", len(s.Submodules))
	for _, rtt := range []time.Duration{0, 150 * time.Millisecond} {
		var net remote = gitRemote{}
		if rtt > 0 {
			net = latency{rtt}
		}
		run := func(sub []workspace.Submodule) {
			one := *s
			one.Submodules = sub
			res, err := Run(ctx, Request{Snapshot: &one, Store: store, network: net})
			if err != nil {
				t.Fatal(err)
			}
			if res.Upgrades.Summary.Unknown > 0 {
				t.Fatalf("unknown relations: %+v", res.Upgrades.Summary)
			}
		}
		run(s.Submodules) // fill the stores once, as any run after the first
		all := median(5, func() { run(s.Submodules) })
		slowest := time.Duration(0)
		for i := range s.Submodules {
			slowest = max(slowest, median(3, func() { run(s.Submodules[i : i+1]) }))
		}
		fmt.Printf("| %d local (file://) | %v | %.1f ms | %.1f ms | %.2fx |\n", len(s.Submodules), rtt,
			float64(all.Microseconds())/1000, float64(slowest.Microseconds())/1000, float64(all)/float64(slowest))
	}
}
