package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/stage/upgrades"
	"github.com/lambda-os/lambda-check/internal/workflow"
)

// UpgradesCmd is "lambda-check upgrades".
type UpgradesCmd struct {
	Offline     bool          `help:"Do not query remotes: compare with the submodules' already-fetched remote-tracking refs."`
	Snapshot    string        `placeholder:"FILE" help:"Use this snapshot artifact instead of taking a new snapshot."`
	Parallelism int           `placeholder:"N" help:"Remotes queried at once (default: upgrades.parallelism in the config, else 64)."`
	Timeout     time.Duration `placeholder:"DURATION" help:"Time allowed per remote, retries included (default: upgrades.timeout, else 60s)."`
	Out         string        `placeholder:"FILE" help:"Write the artifact here instead of <state-dir>/upgrades.json."`
}

// Help is shown by "lambda-check upgrades --help".
func (c *UpgradesCmd) Help() string {
	return `For every submodule: the branch it tracks (its branch in .gitmodules, else the
branch its remote's HEAD names), that branch's head on the remote, and how the
pin (the gitlink) relates to it: up-to-date, behind N (a fast-forward: an
upgrade), ahead, diverged, or unknown with the reason (unreachable, timeout,
auth, not-found, missing objects). Only a fast-forward is ever an upgrade.

Each remote is the one git itself fetches from: the submodule's own
remote.origin.url, else submodule.<name>.url in the workspace's .git/config,
else the url in .gitmodules; then git's url.<base>.insteadOf rules (system,
global and repository config, longest prefix wins) and upgrades.insteadOf in
lambda-check's config, e.g. {"git@github.com:": "https://github.com/"} to read
public repositories without SSH keys. SSH goes through the agent
(SSH_AUTH_SOCK), else ~/.ssh/id_ed25519, id_ecdsa or id_rsa, with host keys
from ~/.ssh/known_hosts. Submodules nested in submodules belong to their
parent repository and are not checked.

Remotes are queried through the git protocol of their URL (file, git, http,
https, ssh), several at once, with a time limit per remote and retries of
transient failures. Objects are fetched into stores in <state-dir>/remotes
(not at all when the head is already there); the workspace and its
submodules are not touched. Remotes that cannot be checked are grouped by
cause, each said once with its fix, and make the verdict fail (exit 3); the
artifact is written either way. Writes upgrades.json, which 'plan' and
'propose' read.`
}

// Run checks the remotes.
func (c *UpgradesCmd) Run(rt *Runtime) error {
	out, err := outFile(rt, c.Out)
	if err != nil {
		return err
	}
	o := workflow.UpgradesOptions{Offline: c.Offline, Parallelism: c.Parallelism, Timeout: c.Timeout, Out: out}
	if _, err := rt.Config(); err != nil {
		return err
	}
	if c.Snapshot == "" {
		if err := snapshot.CheckWorkspace(rt.WorkspaceDir()); err != nil {
			return err
		}
	} else {
		var err error
		if o.Snap, err = workflow.ReadSnapshot(rt.Abs(c.Snapshot)); err != nil {
			return err
		}
	}
	e, release, err := rt.Lock()
	if err != nil {
		return err
	}
	defer release()
	res, err := workflow.Upgrades(rt.Ctx, e, o)
	if err != nil {
		return err
	}
	if rt.Globals.JSON {
		return rt.Print(res.Bytes)
	}
	renderUpgrades(rt, res.Upgrades)
	rt.Logf("wrote %s (%s)", res.Path, res.Digest)
	return workflow.UpgradesVerdict(res.Upgrades)
}

func renderUpgrades(rt *Runtime, u *upgrades.Upgrades) {
	s := u.Summary
	mode := ""
	if u.Offline {
		mode = " (offline: as last fetched)"
	}
	nested := ""
	if s.Nested > 0 {
		nested = fmt.Sprintf("; %d nested submodules left to their parent repositories", s.Nested)
	}
	rt.Printf("upgrades%s: %d behind, %d ahead, %d diverged, %d up to date, %d unknown (%d repositories%s)\n",
		mode, s.Behind, s.Ahead, s.Diverged, s.UpToDate, s.Unknown, s.Repos, nested)
	// A cause shared by several remotes is said once.
	grouped := map[string]bool{}
	for _, p := range u.Problems {
		if len(p.Repos) < 2 {
			continue
		}
		names := p.Repos
		more := ""
		if len(names) > 4 {
			names, more = names[:4], fmt.Sprintf(" and %d more", len(p.Repos)-4)
		}
		rt.Printf("  unknown   %d repositories: %s\n            (%s%s)\n", len(p.Repos), p.Cause, strings.Join(names, ", "), more)
		if p.Hint != "" {
			rt.Printf("            hint: %s\n", p.Hint)
		}
		for _, r := range p.Repos {
			grouped[r] = true
		}
	}
	for _, r := range u.Repos {
		switch r.Relation {
		case upgrades.UpToDate:
			continue
		case upgrades.Unknown:
			if !grouped[r.Path] {
				rt.Printf("  %-9s %s: %s\n", r.Relation, r.Path, r.Reason)
			}
			continue
		}
		detail := workflow.Plural(r.Behind, "commit")
		switch r.Relation {
		case upgrades.Ahead:
			detail = fmt.Sprintf("%d local commits not on the remote", r.Ahead)
		case upgrades.Diverged:
			detail = fmt.Sprintf("%d local and %d remote commits: not a fast-forward, never proposed", r.Ahead, r.Behind)
		}
		inputs := ""
		if len(r.Inputs) > 0 {
			inputs = "  input " + strings.Join(r.Inputs, ", ")
		}
		rt.Printf("  %-9s %s  %s  %s → %s  (%s)%s\n", r.Relation, r.Path, r.Branch, short(r.Pin), short(r.Head), detail, inputs)
	}
}
