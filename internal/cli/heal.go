package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/stage/governance"
	"github.com/lambda-os/lambda-check/internal/stage/heal"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
	"github.com/lambda-os/lambda-check/internal/stage/verify"
	"github.com/lambda-os/lambda-check/internal/statedir"
)

// HealCmd is "lambda-check heal".
type HealCmd struct {
	Policy string `placeholder:"FILE" help:"The policy configuration rollbacks are checked against (default: <workspace>/policy.json when it exists)."`
}

// Help is shown by "lambda-check heal --help".
func (c *HealCmd) Help() string {
	return `Reads the last verify.json and the verify history. A module that passed in
the previous run and fails now is a regression; when its submodule's pin
moved since it last passed, heal writes a rollback proposal (kind rollback:
the gitlink and its flake.lock node back to the last pin it passed under,
the same patch and flake as an upgrade) to be approved and applied like any
other. With heal.autoApply (off by default) it approves the rollback with
heal.key and applies it through 'governance apply', runs verify.build and
verifies again. Writes heal.json; exit 3 when there was a regression, healed
or not.`
}

// Run heals.
func (c *HealCmd) Run(rt *Runtime) error {
	cfg, err := rt.Config()
	if err != nil {
		return err
	}
	pcfg, err := loadPolicyConfig(rt, c.Policy)
	if err != nil {
		return err
	}
	sd, unlock, err := rt.LockState()
	if err != nil {
		return err
	}
	defer unlock()
	env, vb, err := artifact.Read[verify.Report](sd.File("verify.json"), verify.Spec)
	if errors.Is(err, fs.ErrNotExist) {
		return exitcode.Input(errors.New("no verify.json: nothing to judge"), "run 'lambda-check verify' first")
	}
	if err != nil {
		return exitcode.Input(fmt.Errorf("read verify.json: %w", err), "")
	}
	history, err := readHistory(sd.File(historyFile))
	if err != nil {
		return exitcode.Input(err, "")
	}
	w, err := snapshotLocked(rt, sd, "")
	if err != nil {
		return err
	}
	run := artifact.Digest(vb)
	res, err := heal.Run(rt.Ctx, heal.Request{Current: &env.Payload, CurrentRun: run, History: history,
		Propose: propose.Request{Snapshot: w.snapshot, Dir: sd.File("proposals"), Stores: sd.File("remotes"), Policy: pcfg, Producer: rt.Producer()}})
	if err != nil {
		return err
	}
	rep := &res.Report
	for i := range rep.Regressions {
		r := &rep.Regressions[i]
		e := audit.Event{Stage: "heal", Result: audit.ResultFail,
			Detail: fmt.Sprintf("regression of %s (%s) at %s; last passed at %s", r.Module, r.Reason, short(r.Now), short(r.LastPass))}
		if r.Proposal != "" {
			e.Detail += "; rollback proposal " + r.Proposal
		} else {
			e.Detail += "; no rollback: " + r.Problem
		}
		if err := rt.record(sd, e); err != nil {
			return err
		}
	}
	if cfg.Heal.AutoApply {
		if err := autoHeal(rt, sd, rep); err != nil {
			return err
		}
	}
	b, _, err := artifact.Write(sd.File("heal.json"), &artifact.Envelope[*heal.Report]{
		Kind: heal.Spec.Kind, SchemaVersion: heal.Spec.Version, Producer: rt.Producer(),
		Inputs: []artifact.Input{{Kind: verify.Spec.Kind, Digest: run}}, Payload: rep,
	})
	if err != nil {
		return err
	}
	result := audit.ResultOK
	if rep.Verdict != "healthy" {
		result = audit.ResultFail
	}
	if err := rt.record(sd, audit.Event{Stage: "heal", Inputs: []artifact.Input{{Kind: verify.Spec.Kind, Digest: run}},
		Output: output(heal.Spec.Kind, sd.File("heal.json"), b), Result: result, Detail: rep.Verdict}); err != nil {
		return err
	}
	if rt.Globals.JSON {
		if err := rt.PrintJSON(rep); err != nil {
			return err
		}
	} else {
		renderHeal(rt, rep)
	}
	if rep.Verdict != "healthy" {
		return &exitcode.FailError{Reason: fmt.Sprintf("heal: %d regressions", len(rep.Regressions))}
	}
	return nil
}

// autoHeal approves each rollback with heal.key, applies it, rebuilds with
// verify.build and verifies again.
func autoHeal(rt *Runtime, sd *statedir.Dir, rep *heal.Report) error {
	cfg, _ := rt.Config()
	k, err := sign.ReadPrivateKey(cfg.Path(cfg.Heal.Key))
	if err != nil {
		return exitcode.Input(fmt.Errorf("heal.key: %w", err), "")
	}
	applied := false
	for i := range rep.Regressions {
		r := &rep.Regressions[i]
		if r.Proposal == "" || !r.Approvable {
			continue
		}
		env, err := govEnv(rt, sd, true)
		if err != nil {
			return err
		}
		st, err := governance.Record(env, r.Proposal, governance.Approve, "heal.autoApply: roll back "+r.Module, k)
		if err != nil {
			r.Problem = "auto-approval refused: " + err.Error()
			continue
		}
		if err := rt.record(sd, audit.Event{Stage: governance.Approve, Detail: fmt.Sprintf("%s by %s (heal.autoApply): now %s", r.Proposal, k.ID, st.State)}); err != nil {
			return err
		}
		if st.State != governance.StateApproved {
			r.Problem = "auto-approval does not meet the threshold: " + st.Why
			continue
		}
		env, err = govEnv(rt, sd, true)
		if err != nil {
			return err
		}
		gcfg, ssh, err := rt.Git()
		if err != nil {
			return err
		}
		res, err := governance.Apply(rt.Ctx, governance.ApplyRequest{Env: env, ID: r.Proposal,
			Committer: gitrepo.Signature{Name: rt.actor(), Email: rt.actor()}, Git: gcfg, SSH: ssh, InsteadOf: cfg.Upgrades.InsteadOf})
		// The workspace may have moved: a cycle's later stages take a new
		// snapshot.
		rt.snaps.invalidate()
		if err != nil {
			r.Problem = "apply: " + err.Error()
			continue
		}
		r.Applied = res.Applied.Commit
		applied = true
		if err := rt.record(sd, audit.Event{Stage: "apply", Detail: r.Proposal + ": committed " + res.Applied.Commit + " (heal.autoApply)"}); err != nil {
			return err
		}
	}
	if !applied {
		return nil
	}
	if len(cfg.Verify.Build) > 0 {
		cmd := exec.CommandContext(rt.Ctx, cfg.Verify.Build[0], cfg.Verify.Build[1:]...)
		cmd.Dir = rt.WorkspaceDir()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("verify.build after the rollback: %w: %s", err, out)
		}
	}
	again, _, err := verifyLocked(rt, sd, &VerifyCmd{})
	if err != nil {
		return err
	}
	rep.Reverify = &again.Summary
	return nil
}

func readHistory(p string) ([]heal.Entry, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []heal.Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var e heal.Entry
		var raw HistoryEntry
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", p, n, err)
		}
		e = heal.Entry{Run: raw.Run, Module: raw.Module, Submodule: raw.Submodule, Gitlink: raw.Gitlink, Verdict: raw.Verdict, Reason: raw.Reason}
		out = append(out, e)
	}
	return out, sc.Err()
}

func renderHeal(rt *Runtime, r *heal.Report) {
	if len(r.Regressions) == 0 {
		rt.Printf("heal: healthy: no module regressed since the last run\n")
		return
	}
	rt.Printf("heal: %d regressions\n", len(r.Regressions))
	for _, g := range r.Regressions {
		rt.Printf("  %s (%s) fails at %s; last passed at %s\n", g.Module, g.Reason, short(g.Now), short(g.LastPass))
		switch {
		case g.Applied != "":
			rt.Printf("    rolled back by %s: commit %s\n", g.Proposal, g.Applied)
		case g.Proposal != "":
			rt.Printf("    rollback proposal %s (approve and apply it with 'lambda-check governance')\n", g.Proposal)
		}
		if g.Problem != "" {
			rt.Printf("    %s\n", g.Problem)
		}
	}
	if r.Reverify != nil {
		rt.Printf("  verified again: %s (%d pass, %d fail)\n", r.Reverify.Verdict, r.Reverify.Pass, r.Reverify.Fail)
	}
}
