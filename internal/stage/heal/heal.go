// Package heal is the heal stage: a module that passed verification in
// the previous run and fails now is a regression; when the submodule's pin
// moved since it last passed, the rollback is a proposal (kind rollback)
// back to the last pin it passed under, taken from the recorded verify
// history, never simply "the commit before".
package heal

import (
	"context"
	"fmt"
	"sort"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
	"github.com/lambda-os/lambda-check/internal/stage/verify"
)

// Spec identifies the heal artifact.
var Spec = artifact.Spec{Kind: artifact.KindPrefix + "heal", Version: 1}

// Entry is one module's verdict in one verify run, oldest first.
type Entry struct {
	Run       string `json:"run"`
	Module    string `json:"module"`
	Submodule string `json:"submodule,omitempty"`
	Gitlink   string `json:"gitlink,omitempty"`
	Verdict   string `json:"verdict"`
	Reason    string `json:"reason"`
}

// Regression is a module that passed before and fails now.
type Regression struct {
	Module    string `json:"module"`
	Submodule string `json:"submodule,omitempty"`
	// Now is the pin it fails under; LastPass the last it passed under.
	Now      string `json:"now"`
	LastPass string `json:"lastPass,omitempty"`
	Reason   string `json:"reason"`
	// Proposal is the rollback proposal's id; Problem says why there is
	// none.
	Proposal   string `json:"proposal,omitempty"`
	Approvable bool   `json:"approvable,omitempty"`
	Problem    string `json:"problem,omitempty"`
	// Applied is the rollback's commit when heal.autoApply applied it.
	Applied string `json:"applied,omitempty"`
}

// Report is the payload of heal.json.
type Report struct {
	Run         string       `json:"run"` // the verify.json digest judged
	Regressions []Regression `json:"regressions"`
	// Verdict: healthy (no regression) or regressed.
	Verdict string `json:"verdict"`
	// Reverify is the verification after an automatic rollback.
	Reverify *verify.Summary `json:"reverify,omitempty"`
}

// Request is what heal judges.
type Request struct {
	Current    *verify.Report
	CurrentRun string
	// History is every recorded verdict, oldest first (the current run's
	// included or not).
	History []Entry
	// Propose writes rollback proposals (its Snapshot is the workspace
	// now).
	Propose propose.Request
}

// Result is the stage's outcome.
type Result struct {
	Report Report
}

// Run finds regressions and proposes their rollbacks.
func Run(ctx context.Context, req Request) (*Result, error) {
	rep := Report{Run: req.CurrentRun, Regressions: []Regression{}, Verdict: "healthy"}
	previous := map[string]Entry{} // the module's last verdict before this run
	lastPass := map[string]Entry{}
	for _, e := range req.History {
		if e.Run == req.CurrentRun {
			continue
		}
		previous[e.Module] = e
		if e.Verdict == verify.Pass && e.Gitlink != "" {
			lastPass[e.Module] = e
		}
	}
	for _, m := range req.Current.Modules {
		if m.Verdict == verify.Pass {
			continue
		}
		prev, ok := previous[m.Name]
		if !ok || prev.Verdict != verify.Pass {
			continue // not a regression: it did not pass last time
		}
		r := Regression{Module: m.Name, Submodule: m.Submodule, Now: m.Gitlink, Reason: m.Reason}
		lp, ok := lastPass[m.Name]
		switch {
		case m.Submodule == "" || m.Gitlink == "":
			r.Problem = "the module is not mapped to a submodule of the workspace: nothing to roll back"
		case !ok:
			r.Problem = "no pin under which it passed is recorded"
		case lp.Gitlink == m.Gitlink:
			r.LastPass = lp.Gitlink
			r.Problem = "it fails under the very pin it passed under: the build or the environment changed, not the pin; no rollback"
		case lp.Submodule != m.Submodule:
			r.LastPass = lp.Gitlink
			r.Problem = fmt.Sprintf("it passed as part of %s, now of %s: no rollback across submodules", lp.Submodule, m.Submodule)
		default:
			r.LastPass = lp.Gitlink
			o, err := propose.Rollback(ctx, propose.RollbackRequest{Request: req.Propose, Submodule: m.Submodule, To: lp.Gitlink})
			if err != nil {
				r.Problem = err.Error()
			} else {
				r.Proposal, r.Approvable = o.ID, o.Approvable
			}
		}
		rep.Regressions = append(rep.Regressions, r)
	}
	sort.Slice(rep.Regressions, func(i, j int) bool { return rep.Regressions[i].Module < rep.Regressions[j].Module })
	if len(rep.Regressions) > 0 {
		rep.Verdict = "regressed"
	}
	return &Result{Report: rep}, nil
}
