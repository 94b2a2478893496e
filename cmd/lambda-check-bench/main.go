// Command lambda-check-bench times lambda-check as a user waits for it:
// whole processes, on workspaces with real-sized packed histories (the
// generated kit) and, when given, on the real logos-workspace test bed,
// each against its baseline in the same run (the git CLI doing the same
// job; a previous version of lambda-check built from a git revision), and
// prints the ratios and peak memory as a Markdown table.
//
//	go run ./cmd/lambda-check-bench [--testbed DIR] [--previous REV] [--runs N]
//
// It needs git and Go; nothing else. Nothing it prints is asserted by a
// test: machines are noisy, so figures are best and median of several runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/lambda-os/lambda-check/internal/sample"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "generate" {
		// A child: the workspaces are generated in a process of their own,
		// so the harness stays small (see peakFloor).
		if err := generate(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "lambda-check-bench: generate:", err)
			os.Exit(1)
		}
		return
	}
	testbed := flag.String("testbed", "", "the directory ../shared/testbed/make-realws.sh wrote (holding logos-workspace/); also measured when given")
	previous := flag.String("previous", "", "a git revision of lambda-check to build and measure as the previous version")
	runs := flag.Int("runs", 9, "runs per measurement (fewer for one that takes over 5 s)")
	modules := flag.Int("modules", 53, "modules in the generated workspace (the SDK and the runtime come on top)")
	commits := flag.Int("commits", 2000, "commits of packed history per generated repository")
	big := flag.Int("big", 2000, "submodules of the large generated workspace (0: skip it)")
	only := flag.String("only", "", "comma-separated workloads to run (kit, big, testbed)")
	flag.Parse()
	if err := run(*testbed, *previous, *runs, *modules, *commits, *big, *only); err != nil {
		fmt.Fprintln(os.Stderr, "lambda-check-bench: error:", err)
		os.Exit(1)
	}
}

type result struct {
	best, median time.Duration
	rss          int64 // KiB, the largest of the runs
	exit         int
}

func run(testbed, previous string, runs, modules, commits, big int, only string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "lambda-check-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	logf("building lambda-check in %s", tmp)
	cur := filepath.Join(tmp, "lambda-check")
	if err := goBuild(root, cur); err != nil {
		return err
	}
	prev := ""
	if previous != "" {
		logf("building the previous version %s", previous)
		src := filepath.Join(tmp, "prev-src")
		if err := os.MkdirAll(src, 0o755); err != nil {
			return err
		}
		if err := sh(root, fmt.Sprintf("git archive %s | tar -x -C %q", shellQuote(previous), src)); err != nil {
			return fmt.Errorf("export %s: %w", previous, err)
		}
		prev = filepath.Join(tmp, "lambda-check-prev")
		if err := goBuild(src, prev); err != nil {
			return err
		}
	}
	want := func(w string) bool { return only == "" || slices.Contains(strings.Split(only, ","), w) }

	var rows [][]string
	add := func(workload, what string, cmd []string, base []string, baseName string, prep func()) {
		// One unmeasured run of the baseline first: git status refreshes the
		// stat data of indexes it may write, which would otherwise favour
		// whatever is measured after it.
		if base != nil {
			measure(base, 1, prep)
		}
		r := measure(cmd, runs, prep)
		row := []string{workload, what, fmtRes(r)}
		if base != nil {
			b := measure(base, runs, prep)
			row = append(row, baseName+" "+fmtRes(b), ratio(b, r))
		} else {
			row = append(row, "", "")
		}
		if prev != "" {
			// The previous version keeps a state dir of its own: its
			// artifacts must not feed the current version's stages.
			pc := []string{prev}
			for _, a := range cmd[1:] {
				if strings.HasPrefix(a, tmp) && strings.Contains(filepath.Base(a), "state-") {
					a += "-prev"
				}
				pc = append(pc, a)
			}
			p := measure(pc, runs, prep)
			row = append(row, fmtRes(p), ratio(p, r))
		} else {
			row = append(row, "", "")
		}
		row = append(row, fmt.Sprintf("%.1f MiB", float64(r.rss)/1024))
		logf("%s", strings.Join(row, " | "))
		rows = append(rows, row)
	}
	stages := func(workload, ws string) {
		sd := filepath.Join(tmp, "state-"+workload)
		g := []string{"-w", ws, "--state-dir", sd}
		lc := func(args ...string) []string { return append(append([]string{cur}, args...), g...) }
		add(workload, "snapshot", lc("snapshot"), []string{"git", "-C", ws, "status", "--porcelain=v2", "--ignore-submodules=none", "--untracked-files=all"}, "git status", nil)
		add(workload, "policy --no-eval", lc("policy", "--no-eval"), nil, "", nil)
		add(workload, "upgrades", lc("upgrades"), lsRemotes(ws), "git ls-remote ×N (refs only, no history compared)", nil)
		add(workload, "plan", lc("plan"), nil, "", nil)
		add(workload, "propose (all new)", lc("propose"), nil, "", func() {
			os.RemoveAll(filepath.Join(sd, "proposals"))
			os.RemoveAll(filepath.Join(sd+"-prev", "proposals"))
		})
		add(workload, "propose (nothing new)", lc("propose"), nil, "", nil)
		add(workload, "cycle (no runtime)", lc("cycle", "--skip", "verify"), nil, "", nil)
	}
	floor := measure([]string{"/bin/sh", "-c", "exit 0"}, 3, nil).rss
	if want("kit") {
		logf("generating a workspace of %d repositories with %d commits of packed history each", modules+2, commits)
		dir := filepath.Join(tmp, "kit")
		if err := spawnGenerate(dir, modules, commits, 0); err != nil {
			return err
		}
		stages(fmt.Sprintf("kit, %d repos × %d commits", modules+2, commits), filepath.Join(dir, "workspace"))
	}
	if want("big") && big > 0 {
		logf("generating a workspace of %d submodules", big)
		dir := filepath.Join(tmp, "big")
		if err := spawnGenerate(dir, big-2, 0, 12); err != nil {
			return err
		}
		ws := filepath.Join(dir, "workspace")
		w := fmt.Sprintf("kit, %d submodules", big)
		sd := filepath.Join(tmp, "state-big")
		add(w, "snapshot", []string{cur, "snapshot", "-w", ws, "--state-dir", sd},
			[]string{"git", "-C", ws, "status", "--porcelain=v2", "--ignore-submodules=none", "--untracked-files=all"}, "git status", nil)
		add(w, "policy --no-eval", []string{cur, "policy", "--no-eval", "-w", ws, "--state-dir", sd}, nil, "", nil)
	}
	if testbed != "" && want("testbed") {
		dst := filepath.Join(tmp, "testbed")
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if err := sh(tmp, fmt.Sprintf("cp -a %q %q", filepath.Join(testbed, "logos-workspace"), dst)); err != nil {
			return err
		}
		stages("real logos-workspace", filepath.Join(dst, "logos-workspace"))
	}

	hdr := []string{"workspace", "command", "lambda-check best / median", "baseline best / median", "× faster than baseline", "previous best / median", "× faster than previous", "peak RSS"}
	fmt.Println("| " + strings.Join(hdr, " | ") + " |")
	fmt.Println("|" + strings.Repeat("---|", len(hdr)))
	for _, r := range rows {
		fmt.Println("| " + strings.Join(r, " | ") + " |")
	}
	fmt.Printf("\nPeak RSS is the process's ru_maxrss, which on Linux counts the harness's own %.1f MiB at the fork as a floor (a shell that exits at once measures that).\n", float64(floor)/1024)
	return nil
}

// spawnGenerate generates a workspace in a child process.
func spawnGenerate(dir string, modules, commits, files int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	c := exec.Command(self, "generate", dir, fmt.Sprint(modules), fmt.Sprint(commits), fmt.Sprint(files))
	c.Stdout, c.Stderr = os.Stderr, os.Stderr
	return c.Run()
}

// generate is the child: DIR MODULES COMMITS FILES.
func generate(args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("usage: generate DIR MODULES COMMITS FILES")
	}
	var n [3]int
	for i := range n {
		if _, err := fmt.Sscan(args[i+1], &n[i]); err != nil {
			return err
		}
	}
	o := sample.Options{Modules: n[0], Commits: n[1], Files: n[2]}
	if n[0] >= 10 {
		o.Ahead = map[string]int{"logos-chat-module": 3, "logos-waku-module": 1, "logos-storage-module": 2}
	}
	_, err := sample.Generate(context.Background(), args[0], o)
	return err
}

// measure runs cmd (after prep) up to runs times, stopping after 3 when a
// run takes over 5 s.
func measure(cmd []string, runs int, prep func()) result {
	var ds []time.Duration
	var r result
	for i := 0; i < runs; i++ {
		if prep != nil {
			prep()
		}
		c := exec.Command(cmd[0], cmd[1:]...)
		c.Stdout, c.Stderr = io.Discard, io.Discard
		c.Env = append(os.Environ(), "NIX_CONFIG=experimental-features = nix-command flakes\nsubstituters =\nsandbox = false\nwarn-dirty = false")
		start := time.Now()
		err := c.Run()
		d := time.Since(start)
		if ee, ok := err.(*exec.ExitError); ok {
			r.exit = ee.ExitCode()
		} else if err != nil {
			r.exit = -1
		}
		if c.ProcessState != nil {
			if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
				r.rss = max(r.rss, ru.Maxrss)
			}
		}
		ds = append(ds, d)
		if d > 5*time.Second && i >= 2 {
			break
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	r.best, r.median = ds[0], ds[len(ds)/2]
	return r
}

func fmtRes(r result) string {
	s := fmt.Sprintf("%s / %s", round(r.best), round(r.median))
	if r.exit != 0 && r.exit != 3 {
		s += fmt.Sprintf(" (exit %d)", r.exit)
	}
	return s
}

func round(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// ratio is how many times faster r is than base (best against best).
func ratio(base, r result) string {
	if r.best <= 0 {
		return ""
	}
	return fmt.Sprintf("%.1f×", float64(base.best)/float64(r.best))
}

// lsRemotes is the git CLI doing what upgrades does: ask every top-level
// submodule's remote for its refs, all at once.
func lsRemotes(ws string) []string {
	out, err := exec.Command("git", "-C", ws, "config", "-f", ".gitmodules", "--get-regexp", `^submodule\..*\.path$`).Output()
	if err != nil {
		return nil
	}
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		_, p, _ := strings.Cut(l, " ")
		fmt.Fprintf(&b, "git -C %s ls-remote origin >/dev/null 2>&1 & ", shellQuote(filepath.Join(ws, p)))
	}
	b.WriteString("wait")
	return []string{"sh", "-c", b.String()}
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run it inside the lambda-check module")
	}
	return filepath.Dir(mod), nil
}

func goBuild(dir, out string) error {
	c := exec.Command("go", "build", "-o", out, "./cmd/lambda-check")
	c.Dir = dir
	c.Stderr = os.Stderr
	return c.Run()
}

func sh(dir, script string) error {
	c := exec.Command("sh", "-c", script)
	c.Dir = dir
	c.Stderr = os.Stderr
	return c.Run()
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "lambda-check-bench: "+format+"\n", a...)
}
