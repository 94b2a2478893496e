package propose

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lambda-os/lambda-check/internal/nixcli"
	"github.com/lambda-os/lambda-check/internal/requires"
	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/stage/plan"
)

// TestBenchReport prints the figures docs/performance.md records: propose
// for 55 upgrades (every repository of a 55-repository workspace behind its
// remote), against Nix computing the same 55 lock changes with
// "nix flake lock --update-input". It runs only when LAMBDA_CHECK_BENCH=1,
// and asserts nothing about time.
func TestBenchReport(t *testing.T) {
	if os.Getenv("LAMBDA_CHECK_BENCH") != "1" {
		t.Skip("skipped: set LAMBDA_CHECK_BENCH=1 to measure (see docs/performance.md)")
	}
	ahead := map[string]int{}
	for i, name := range sample.RepoNames(53) {
		ahead[name] = 1 + i%3
	}
	f := newFixture(t, sample.Options{Modules: 53, Ahead: ahead})
	if f.up.Summary.Behind != 55 {
		t.Fatalf("want 55 upgrades, got %+v", f.up.Summary)
	}
	v, err := plan.LoadGraph(context.Background(), plan.GraphRequest{Workspace: f.ws.Root})
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, r := range f.up.Repos {
		changes = append(changes, r.Inputs...)
	}
	pl, err := plan.Run(context.Background(), plan.Request{Graph: &v.Graph, Changes: changes})
	if err != nil {
		t.Fatal(err)
	}
	ours := median(3, func() {
		res, err := Run(context.Background(), Request{
			Snapshot: f.snap, Upgrades: f.up, Plan: &pl.Plan, Stores: filepath.Join(f.state, "remotes"),
			Dir: t.TempDir(), Policy: f.policy, Producer: producer,
		})
		if err != nil || len(res.Outcomes) != 55 {
			t.Fatalf("propose: %v (%d)", err, len(res.Outcomes))
		}
	})
	fmt.Printf("| upgrades | propose (patches, proposal flakes and locks, policy) | nix flake lock --update-input, each | ratio |\n|---|---|---|---|\n")
	theirs := "not measured (nix is not installed)"
	ratio := "-"
	if _, err := exec.LookPath("nix"); err == nil {
		n, err := nixcli.Find(requires.NixEnv())
		if err != nil {
			t.Fatal(err)
		}
		clone := filepath.Join(t.TempDir(), "clone")
		git(t, t.TempDir(), "clone", "-q", f.ws.Root, clone)
		start := time.Now()
		for _, in := range changes {
			if _, err := n.Run(context.Background(), clone, "flake", "lock", "--update-input", in); err != nil {
				t.Fatal(err)
			}
			git(t, clone, "checkout", "-q", "flake.lock")
		}
		d := time.Since(start)
		theirs = fmt.Sprintf("%.0f ms", float64(d.Milliseconds()))
		ratio = fmt.Sprintf("%.1fx faster", float64(d)/float64(ours))
	}
	fmt.Printf("| 55 | %.0f ms | %s | %s |\n", float64(ours.Milliseconds()), theirs, ratio)
}

func median(n int, f func()) time.Duration {
	ds := make([]time.Duration, n)
	for i := range ds {
		start := time.Now()
		f()
		ds[i] = time.Since(start)
	}
	for i := range ds {
		for j := i + 1; j < len(ds); j++ {
			if ds[j] < ds[i] {
				ds[i], ds[j] = ds[j], ds[i]
			}
		}
	}
	return ds[n/2]
}
