package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/stage/cycle"
)

// benchWorkspace is the 55-submodule generated workspace (53 modules, the
// SDK and the runtime) with five remotes ahead, and every core module built
// as a stand-in plugin for the stand-in host.
func benchWorkspace(b *testing.B) *cycleFixture {
	b.Helper()
	dir := b.TempDir()
	o := sample.DemoOptions()
	o.Modules, o.Drift = 53, nil
	o.Ahead = map[string]int{"logos-chat-module": 3, "logos-waku-module": 1, "logos-storage-module": 2, "logos-wallet-module": 1, "logos-accounts-module": 4}
	ws, err := sample.Generate(context.Background(), filepath.Join(dir, "ws"), o)
	if err != nil {
		b.Fatal(err)
	}
	f := &cycleFixture{ws: ws, mods: filepath.Join(dir, "mods"), state: filepath.Join(ws.Root, ".lambda-check")}
	t := &testing.T{}
	for _, r := range ws.Repos {
		if r.Module != nil && r.Module.Type == "core" {
			f.plugin(t, r.Module.Name, "")
		}
	}
	f.config = filepath.Join(dir, "config.json")
	cfg := fmt.Sprintf(`{"schemaVersion": 1, "verify": {"modulesDir": %q, "host": "logos_host"}}`, f.mods)
	if err := os.WriteFile(f.config, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkCycle55 runs whole cycles on the 55-submodule workspace and
// reports each stage's mean time (stage-ms metrics).
func BenchmarkCycle55(b *testing.B) {
	f := benchWorkspace(b)
	if code, out, errs := f.run("cycle"); code != 0 && code != 3 {
		b.Fatalf("cycle: %d\n%s%s", code, out, errs)
	}
	stages := map[string]float64{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		code, out, errs := f.run("cycle", "--json")
		if code != 0 && code != 3 {
			b.Fatalf("cycle: %d\n%s%s", code, out, errs)
		}
		var s cycle.Summary
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			b.Fatal(err)
		}
		for _, r := range s.Stages {
			stages[r.Name] += float64(r.DurationMs)
		}
	}
	for name, ms := range stages {
		b.ReportMetric(ms/float64(b.N), name+"-ms")
	}
}

// BenchmarkCycle55GitBaseline is what a script learns with the git CLI of
// the same workspace before any verification: the status of the
// superproject and of every submodule, and every remote's branch head,
// with the same parallelism — the snapshot and upgrades stages' facts.
func BenchmarkCycle55GitBaseline(b *testing.B) {
	f := benchWorkspace(b)
	git := func(dir string, args ...string) error {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Stdout, cmd.Stderr = nil, nil
		return cmd.Run()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := git(f.ws.Root, "status", "--porcelain=v2", "-z", "--branch", "--ignore-submodules=none"); err != nil {
			b.Fatal(err)
		}
		var g errgroup.Group
		g.SetLimit(8)
		for _, r := range f.ws.Repos {
			g.Go(func() error {
				sub := filepath.Join(f.ws.Root, r.Path)
				if err := git(sub, "status", "--porcelain=v2", "-z", "--branch", "--untracked-files=all"); err != nil {
					return err
				}
				return git(sub, "ls-remote", r.Remote, "refs/heads/"+r.Branch)
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}
