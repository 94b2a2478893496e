package cycle

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gotest.tools/v3/assert"
)

func step(name string, health bool, o Outcome, needs ...string) Step {
	return Step{Name: name, Health: health, Needs: needs, Run: func(context.Context) Outcome { return o }}
}

func statuses(s *Summary) map[string]string {
	m := map[string]string{}
	for _, r := range s.Stages {
		m[r.Name] = r.Status
	}
	return m
}

func TestRun(t *testing.T) {
	t.Parallel()
	ok := Outcome{Detail: "fine"}
	for _, tc := range []struct {
		name     string
		steps    []Step
		health   string
		exit     int
		statuses map[string]string
	}{
		{
			name:     "all pass",
			steps:    []Step{step("snapshot", true, ok), step("verify", true, ok, "snapshot"), step("upgrades", false, ok, "snapshot")},
			health:   Healthy,
			statuses: map[string]string{"snapshot": "ok", "verify": "ok", "upgrades": "ok"},
		},
		{
			name: "a failed verdict still feeds the stages that need it",
			steps: []Step{step("snapshot", true, ok), step("verify", true, Outcome{Status: StatusFail, Detail: "1 of 3 fail"}, "snapshot"),
				step("heal", true, ok, "verify")},
			health: Degraded, exit: 3,
			statuses: map[string]string{"snapshot": "ok", "verify": "fail", "heal": "ok"},
		},
		{
			name: "an error skips what needs it, the rest runs",
			steps: []Step{step("snapshot", true, ok), step("upgrades", false, Outcome{Err: errors.New("remote gone")}, "snapshot"),
				step("plan", false, ok, "upgrades"), step("propose", false, ok, "plan"), step("audit", true, ok)},
			health: Healthy, exit: 1,
			statuses: map[string]string{"snapshot": "ok", "upgrades": "error", "plan": "skipped", "propose": "skipped", "audit": "ok"},
		},
		{
			name:   "a health stage without a verdict is unknown, never healthy",
			steps:  []Step{step("snapshot", true, ok), step("verify", true, Outcome{Status: StatusSkipped, Detail: "no modules directory"})},
			health: Unknown, exit: 3,
			statuses: map[string]string{"snapshot": "ok", "verify": "skipped"},
		},
		{
			name:   "nothing judged is unknown",
			steps:  []Step{step("upgrades", false, ok)},
			health: Unknown, exit: 3,
			statuses: map[string]string{"upgrades": "ok"},
		},
		{
			name: "a failure outweighs an unknown",
			steps: []Step{step("snapshot", true, Outcome{Err: errors.New("corrupt index")}), step("policy", true, ok, "snapshot"),
				step("audit", true, Outcome{Status: StatusFail, Detail: "line 7 edited"})},
			health: Degraded, exit: 1,
			statuses: map[string]string{"snapshot": "error", "policy": "skipped", "audit": "fail"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Run(context.Background(), Request{Steps: tc.steps})
			assert.NilError(t, err)
			assert.Equal(t, s.Health, tc.health, "%v", s.Reasons)
			assert.Equal(t, s.Exit, tc.exit)
			assert.DeepEqual(t, statuses(s), tc.statuses)
			if tc.health != Healthy {
				assert.Assert(t, len(s.Reasons) > 0)
			}
		})
	}
}

func TestRunCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	ran := []string{}
	mk := func(name string, f func()) Step {
		return Step{Name: name, Health: true, Run: func(ctx context.Context) Outcome {
			ran = append(ran, name)
			f()
			if ctx.Err() != nil {
				return Outcome{Err: ctx.Err()}
			}
			return Outcome{}
		}}
	}
	s, err := Run(ctx, Request{Steps: []Step{mk("a", func() {}), mk("b", cancel), mk("c", func() {})}})
	assert.NilError(t, err)
	assert.DeepEqual(t, ran, []string{"a", "b"})
	assert.DeepEqual(t, statuses(s), map[string]string{"a": "ok", "b": "cancelled", "c": "cancelled"})
	assert.Equal(t, s.Exit, 130)
}

func TestRunRefusesBadSteps(t *testing.T) {
	t.Parallel()
	_, err := Run(context.Background(), Request{Steps: []Step{step("plan", false, Outcome{}, "upgrades")}})
	assert.ErrorContains(t, err, `needs "upgrades", which does not run before it`)
	_, err = Run(context.Background(), Request{Steps: []Step{step("a", false, Outcome{}), step("a", false, Outcome{})}})
	assert.ErrorContains(t, err, "repeated")
}

func TestHistory(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "cycles.jsonl")
	clock := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 2; i++ {
		s, err := Run(context.Background(), Request{Steps: []Step{step("a", true, Outcome{})}, Now: func() time.Time { return clock }})
		assert.NilError(t, err)
		assert.NilError(t, AppendHistory(p, s))
	}
	// A crash mid-line, then one more cycle.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	assert.NilError(t, err)
	_, _ = f.WriteString(`{"started":"2026-`)
	f.Close()
	s, err := Run(context.Background(), Request{Steps: []Step{step("a", true, Outcome{Status: StatusFail})}, Now: func() time.Time { return clock }})
	assert.NilError(t, err)
	assert.NilError(t, AppendHistory(p, s))
	h, bad, err := ReadHistory(p)
	assert.NilError(t, err)
	assert.Equal(t, bad, 1)
	assert.Equal(t, len(h), 3)
	assert.Equal(t, h[2].Health, Degraded)
	assert.Equal(t, h[0].Stages["a"], StatusOK)
}

// FuzzReadHistory: any bytes in cycles.jsonl (a crash, an edit) are read
// without a panic, and every entry returned is whole.
func FuzzReadHistory(f *testing.F) {
	f.Add([]byte(`{"started":"2026-11-27T12:00:00Z","finished":"2026-11-27T12:00:01Z","health":"healthy","exit":0,"reasons":[],"stages":{"snapshot":"ok"}}` + "\n"))
	f.Add([]byte(`{"started":"2026-11-27T12:00:00Z","fin`))
	f.Add([]byte("\n\n{}\n[1,2]\nnull\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "cycles.jsonl")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		h, bad, err := ReadHistory(p)
		if err != nil {
			return // a line over the scanner's limit
		}
		for _, e := range h {
			if e.Started == "" || e.Health == "" {
				t.Fatalf("a partial entry was returned: %+v", e)
			}
		}
		if bad < 0 || len(h)+bad > bytes.Count(b, []byte("\n"))+1 {
			t.Fatalf("%d entries and %d bad lines from %d lines", len(h), bad, bytes.Count(b, []byte("\n"))+1)
		}
	})
}
