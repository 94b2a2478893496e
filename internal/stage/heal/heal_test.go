package heal

import (
	"context"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/stage/verify"
)

// The cases that are not, or cannot be, rolled back (the rollback itself
// is tested end to end in cmd/lambda-check/testdata/script/heal.txtar).
func TestRegressions(t *testing.T) {
	t.Parallel()
	history := []Entry{
		{Run: "r1", Module: "a", Submodule: "repos/a", Gitlink: "p1", Verdict: verify.Pass},
		{Run: "r1", Module: "b", Submodule: "repos/b", Gitlink: "q1", Verdict: verify.Pass},
		{Run: "r1", Module: "c", Submodule: "repos/c", Gitlink: "s1", Verdict: verify.Fail, Reason: "hang"},
		{Run: "r1", Module: "d", Verdict: verify.Pass},
		{Run: "r2", Module: "a", Submodule: "repos/a", Gitlink: "p1", Verdict: verify.Fail},
	}
	cur := &verify.Report{Modules: []verify.Module{
		{Name: "a", Submodule: "repos/a", Gitlink: "p1", Verdict: verify.Fail, Reason: "crashed"}, // same pin
		{Name: "b", Submodule: "repos/b", Gitlink: "q1", Verdict: verify.Pass},                    // fine
		{Name: "c", Submodule: "repos/c", Gitlink: "s2", Verdict: verify.Fail, Reason: "hang"},    // failed before too
		{Name: "d", Verdict: verify.Fail, Reason: "crashed"},                                      // not mapped
		{Name: "e", Submodule: "repos/e", Gitlink: "t1", Verdict: verify.Fail},                    // no history
	}}
	res, err := Run(context.Background(), Request{Current: cur, CurrentRun: "r2", History: history})
	assert.NilError(t, err)
	assert.Equal(t, res.Report.Verdict, "regressed")
	assert.DeepEqual(t, res.Report.Regressions, []Regression{
		{Module: "a", Submodule: "repos/a", Now: "p1", LastPass: "p1", Reason: "crashed",
			Problem: "it fails under the very pin it passed under: the build or the environment changed, not the pin; no rollback"},
		{Module: "d", Reason: "crashed", Problem: "the module is not mapped to a submodule of the workspace: nothing to roll back"},
	})

	healthy, err := Run(context.Background(), Request{Current: &verify.Report{Modules: []verify.Module{{Name: "b", Verdict: verify.Pass}}}, CurrentRun: "r3", History: history})
	assert.NilError(t, err)
	assert.Equal(t, healthy.Report.Verdict, "healthy")
	assert.DeepEqual(t, healthy.Report.Regressions, []Regression{})
}
