package workflow_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/config"
	"github.com/lambda-os/lambda-check/internal/logos"
	"github.com/lambda-os/lambda-check/internal/requires"
	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/stage/cycle"
	"github.com/lambda-os/lambda-check/internal/workflow"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// newEnv generates the demo's workspace and an environment for it, with
// the clock fixed and nix out of the way.
func newEnv(t *testing.T) *workflow.Env {
	t.Helper()
	requires.Tool(t, "git")
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.DemoOptions())
	assert.NilError(t, err)
	return &workflow.Env{Workspace: ws.Root, StateDir: filepath.Join(ws.Root, ".lambda-check"), Config: config.Default(),
		Now: func() time.Time { return now }, Producer: artifact.Producer{Name: "lambda-check", Version: "test"},
		Actor: "tester@host", Log: t.Logf, Getenv: func(string) string { return "" }, Environ: []string{"PATH=/nonexistent"}}
}

func events(t *testing.T, e *workflow.Env) []audit.Event {
	t.Helper()
	f, err := os.Open(e.File(workflow.AuditFile))
	assert.NilError(t, err)
	defer f.Close()
	var out []audit.Event
	assert.NilError(t, audit.Scan(f, func(_ int64, line []byte) error {
		ev, err := audit.Decode(line)
		if err != nil {
			return err
		}
		out = append(out, *ev)
		return nil
	}))
	return out
}

// A workflow that writes refuses to run without the state directory's
// lock.
func TestWritesNeedTheLock(t *testing.T) {
	e := newEnv(t)
	_, err := workflow.TakeSnapshot(context.Background(), e, "")
	assert.ErrorContains(t, err, "lock is not held")
	assert.NilError(t, e.Open())
	_, err = workflow.Policy(context.Background(), e, workflow.PolicyOptions{NoEval: true})
	assert.ErrorContains(t, err, "lock is not held")
}

// What the audit log says was written is what was: the artifact's digest
// and its inputs, from the same values.
func TestArtifactAndEventAgree(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	release, err := e.Lock(ctx, time.Second)
	assert.NilError(t, err)
	defer release()
	snap, err := workflow.TakeSnapshot(ctx, e, "")
	assert.NilError(t, err)
	pcfg, err := workflow.LoadPolicyConfig(e.Workspace, "")
	assert.NilError(t, err)
	res, err := workflow.Policy(ctx, e, workflow.PolicyOptions{Snap: snap, Fresh: true, Config: pcfg, NoEval: true})
	assert.NilError(t, err)
	b, err := os.ReadFile(e.File("policy.json"))
	assert.NilError(t, err)
	assert.DeepEqual(t, b, res.Bytes)
	evs := events(t, e)
	last := evs[len(evs)-1]
	assert.Equal(t, last.Stage, "policy")
	assert.Equal(t, last.Output.Digest, artifact.Digest(b))
	assert.DeepEqual(t, last.Inputs, []artifact.Input{{Kind: "lambda-check/snapshot", Digest: snap.Digest}})
	assert.Equal(t, last.Result, audit.ResultFail) // the demo's drifted lock entry
	assert.Equal(t, last.Time, now.Format(time.RFC3339))
	assert.Equal(t, last.Actor, "tester@host")
	var env struct {
		Inputs []artifact.Input `json:"inputs"`
	}
	assert.NilError(t, json.Unmarshal(b, &env))
	assert.DeepEqual(t, env.Inputs, last.Inputs)
	assert.ErrorContains(t, workflow.PolicyVerdict(res.Report, false), "1 deny finding")
}

// The cycle hands its values on: one snapshot for the round, the plan the
// plan step wrote is what propose follows, and cycle.json, the history and
// the log agree.
func TestCycleHandsValuesOn(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	release, err := e.Lock(ctx, time.Second)
	assert.NilError(t, err)
	defer release()
	var seen []string
	sum, err := workflow.Cycle(ctx, e, workflow.CycleOptions{Progress: func(r *cycle.StageResult, finished bool) {
		if finished {
			seen = append(seen, r.Name+"="+r.Status)
		}
	}})
	assert.NilError(t, err)
	assert.DeepEqual(t, seen, []string{"snapshot=ok", "verify=skipped", "heal=skipped", "policy=fail", "upgrades=ok",
		"plan=ok", "propose=ok", "governance=skipped", "audit=ok", "notify=skipped"})
	assert.Equal(t, sum.Health, cycle.Degraded)
	assert.Equal(t, sum.Exit, 3)
	assert.ErrorContains(t, workflow.CycleVerdict(sum), "health degraded")
	assert.Equal(t, sum.Stage("propose").Counts["proposals"], 3)

	stages := map[string]int{}
	var planEvent, cycleEvent audit.Event
	for _, ev := range events(t, e) {
		stages[ev.Stage]++
		switch ev.Stage {
		case "plan":
			planEvent = ev
		case "cycle":
			cycleEvent = ev
		}
	}
	assert.Equal(t, stages["snapshot"], 1, "one snapshot for the whole round: %v", stages)
	assert.Equal(t, stages["propose"], 3)
	// plan.json was made from the upgrades the upgrades step found.
	ub, err := os.ReadFile(e.File("upgrades.json"))
	assert.NilError(t, err)
	assert.DeepEqual(t, planEvent.Inputs, []artifact.Input{{Kind: "lambda-check/upgrades", Digest: artifact.Digest(ub)}})
	cb, err := os.ReadFile(e.File("cycle.json"))
	assert.NilError(t, err)
	assert.Equal(t, cycleEvent.Output.Digest, artifact.Digest(cb))
	assert.Equal(t, cycleEvent.Result, audit.ResultFail)
	hist, bad, err := cycle.ReadHistory(e.File(workflow.CyclesFile))
	assert.NilError(t, err)
	assert.Equal(t, bad, 0)
	assert.Equal(t, len(hist), 1)
	assert.Equal(t, hist[0].Health, cycle.Degraded)

	// A second round proposes nothing new: the same proposals, unchanged.
	sum, err = workflow.Cycle(ctx, e, workflow.CycleOptions{})
	assert.NilError(t, err)
	assert.Equal(t, sum.Stage("propose").Counts["proposals"], 3)
	assert.Assert(t, strings.Contains(sum.Stage("propose").Detail, "3 pending"), sum.Stage("propose").Detail)
}

// The node's read model is what the report and the notifications show.
func TestNodeReadModel(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	release, err := e.Lock(ctx, time.Second)
	assert.NilError(t, err)
	_, err = workflow.Cycle(ctx, e, workflow.CycleOptions{Skip: []string{"upgrades"}})
	assert.NilError(t, err)
	release()
	n, err := workflow.ReadNode(ctx, e, nil)
	assert.NilError(t, err)
	assert.Assert(t, n.Cycle != nil)
	assert.Equal(t, len(n.Cycles), 1)
	assert.Equal(t, n.Cycle.Stage("upgrades").Status, cycle.StatusSkipped)
	r, err := workflow.Report(ctx, e, 5)
	assert.NilError(t, err)
	assert.Equal(t, r.Health, n.Cycle.Health)
	assert.Assert(t, len(r.Events) <= 5 && len(r.Events) > 0)
}

// What a killed run left (a torn last audit line, a process group still
// running) is cleaned up at the next lock, the log first, each recorded.
func TestLockCleansUpInOrder(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	release, err := e.Lock(ctx, time.Second)
	assert.NilError(t, err)
	_, err = workflow.TakeSnapshot(ctx, e, "")
	assert.NilError(t, err)
	release()
	f, err := os.OpenFile(e.File(workflow.AuditFile), os.O_WRONLY|os.O_APPEND, 0)
	assert.NilError(t, err)
	_, err = f.WriteString(`{"seq":2,"torn`)
	assert.NilError(t, err)
	assert.NilError(t, f.Close())
	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	assert.NilError(t, cmd.Start())
	defer cmd.Process.Kill()
	(&logos.Tracker{Dir: e.File("running")}).Add(cmd.Process.Pid)

	release, err = e.Lock(ctx, time.Second)
	assert.NilError(t, err)
	release()
	_ = cmd.Wait()
	var stages []string
	for _, ev := range events(t, e) {
		stages = append(stages, ev.Stage+"/"+ev.Result)
	}
	assert.DeepEqual(t, stages, []string{"snapshot/ok", "audit/fail", "lock/fail"})
}
