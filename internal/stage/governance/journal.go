package governance

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
)

// errCrashed stands for a kill in tests: the apply stops dead, its
// journal left for Recover.
var errCrashed = errors.New("crashed (test)")

// journal is what an apply saved before its first change: enough to put
// the workspace back as it was.
type journal struct {
	Proposal  string       `json:"proposal"`
	Root      string       `json:"root"`
	Decisions string       `json:"decisions"`
	BranchRef string       `json:"branchRef"`
	Head      string       `json:"head"`
	HasLock   bool         `json:"hasLock"`
	FlakeLock []byte       `json:"flakeLock,omitempty"`
	Index     []byte       `json:"index"`
	Subs      []journalSub `json:"subs"`
}

type journalSub struct {
	Path  string `json:"path"`
	From  string `json:"from"`
	Index []byte `json:"index"`
	HEAD  []byte `json:"head"`
}

func writeJournal(p string, j *journal) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return artifact.WriteFile(p, b, 0o600)
}

// Recover finishes or undoes an apply a crash interrupted, from its
// journal at p (the caller holds the state lock): an apply whose record
// is written and whose commit is the branch's head is finished (the
// journal goes); any other is undone, the branch, both indexes,
// flake.lock and every submodule's checkout and HEAD put back. Lock files
// the dead apply left in the repositories (newer than the journal) are
// removed. It says what it did; "" when there was no journal.
func Recover(p string) (string, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	st, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	var j journal
	if err := json.Unmarshal(b, &j); err != nil {
		return "", fmt.Errorf("apply journal %s: %w (remove it after checking the workspace by hand)", p, err)
	}
	super, err := gitrepo.Open(j.Root)
	if err != nil {
		return "", err
	}
	// Our own lock files, left by the kill.
	dirs := []string{super.GitDir}
	for _, s := range j.Subs {
		if r, err := gitrepo.Open(filepath.Join(j.Root, filepath.FromSlash(s.Path))); err == nil {
			dirs = append(dirs, r.GitDir)
		}
	}
	for _, d := range dirs {
		for _, n := range []string{"index", "HEAD", j.BranchRef} {
			lock := filepath.Join(d, filepath.FromSlash(n)) + ".lock"
			if fi, err := os.Stat(lock); err == nil && !fi.ModTime().Before(st.ModTime()) {
				os.Remove(lock)
			}
		}
	}
	tip, _ := readRef(super, j.BranchRef)
	appliedPath := filepath.Join(RecordsFor(j.Decisions, j.Proposal).Dir, AppliedFile)
	if raw, err := os.ReadFile(appliedPath); err == nil {
		var a Applied
		if json.Unmarshal(raw, &a) == nil && a.Commit != "" && a.Commit == tip {
			return fmt.Sprintf("%s: the interrupted apply had finished (commit %s); its journal is removed", j.Proposal, tip), os.Remove(p)
		}
	}
	var errs []string
	if tip != "" && tip != j.Head {
		// Only our own commit on top of the saved head is taken back.
		if parent, msg, err := super.CommitParentAndMessage(plumbing.NewHash(tip)); err == nil && parent == j.Head &&
			strings.Contains(msg, "Lambda-Check-Proposal: "+j.Proposal+"\n") {
			if err := super.SetRef(j.BranchRef, plumbing.NewHash(j.Head)); err != nil {
				errs = append(errs, err.Error())
			}
		} else {
			errs = append(errs, fmt.Sprintf("%s is at %s, which is not this apply's commit: left as it is", j.BranchRef, tip))
		}
	}
	if err := super.RestoreIndex(j.Index); err != nil {
		errs = append(errs, err.Error())
	}
	if j.HasLock {
		if err := artifact.WriteFile(filepath.Join(j.Root, "flake.lock"), j.FlakeLock, 0o644); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for _, s := range j.Subs {
		r, err := gitrepo.Open(filepath.Join(j.Root, filepath.FromSlash(s.Path)))
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if err := r.Checkout(plumbing.NewHash(s.From), true); err != nil {
			errs = append(errs, err.Error())
		}
		if err := r.RestoreIndex(s.Index); err != nil {
			errs = append(errs, err.Error())
		}
		if err := artifact.WriteFile(filepath.Join(r.GitDir, "HEAD"), s.HEAD, 0o644); err != nil {
			errs = append(errs, err.Error())
		}
	}
	os.Remove(appliedPath)
	if len(errs) > 0 {
		return "", fmt.Errorf("undoing the interrupted apply of %s: %s (the journal %s is kept)", j.Proposal, strings.Join(errs, "; "), p)
	}
	return fmt.Sprintf("%s: an interrupted apply was undone, the workspace is as it was before it", j.Proposal), os.Remove(p)
}

// readRef is what the branch apply committed on points at: HEAD's (the
// branch is HEAD's own, or HEAD detached).
func readRef(r *gitrepo.Repo, _ string) (string, error) {
	h, err := r.Head()
	return h.Hash.String(), err
}
