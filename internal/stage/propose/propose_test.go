package propose

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/flake"
	"github.com/lambda-os/lambda-check/internal/nixcli"
	"github.com/lambda-os/lambda-check/internal/requires"
	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/stage/plan"
	"github.com/lambda-os/lambda-check/internal/stage/policy"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/stage/upgrades"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

var producer = artifact.Producer{Name: "lambda-check", Version: "test"}

type fixture struct {
	ws     *sample.Workspace
	state  string
	snap   *workspace.Snapshot
	up     *upgrades.Upgrades
	policy *policy.Config
	eval   flake.Evaluator
}

func newFixture(t *testing.T, o sample.Options) *fixture {
	t.Helper()
	requires.Tool(t, "git")
	ws, err := sample.Generate(context.Background(), t.TempDir(), o)
	assert.NilError(t, err)
	f := &fixture{ws: ws, state: t.TempDir()}
	f.snap = takeSnapshot(t, ws.Root)
	res, err := upgrades.Run(context.Background(), upgrades.Request{Snapshot: f.snap, Store: filepath.Join(f.state, "remotes")})
	assert.NilError(t, err)
	f.up = &res.Upgrades
	f.policy, err = policy.LoadConfig(filepath.Join(ws.Root, "policy.json"), false)
	assert.NilError(t, err)
	return f
}

func takeSnapshot(t *testing.T, root string) *workspace.Snapshot {
	t.Helper()
	res, err := snapshot.Run(context.Background(), snapshot.Request{Workspace: root, Parallelism: 4})
	assert.NilError(t, err)
	return &res.Snapshot
}

func (f *fixture) propose(t *testing.T) *Result {
	t.Helper()
	v, err := plan.LoadGraph(context.Background(), plan.GraphRequest{Workspace: f.ws.Root})
	assert.NilError(t, err)
	var changes []string
	for _, r := range f.up.Repos {
		if r.IsUpgrade() {
			changes = append(changes, r.Inputs...)
		}
	}
	pl, err := plan.Run(context.Background(), plan.Request{Graph: &v.Graph, Changes: changes})
	assert.NilError(t, err)
	res, err := Run(context.Background(), Request{
		Snapshot: f.snap, Upgrades: f.up, Plan: &pl.Plan, Stores: filepath.Join(f.state, "remotes"),
		Dir: filepath.Join(f.state, "proposals"), Policy: f.policy, Producer: producer, Eval: f.eval,
	})
	assert.NilError(t, err)
	return res
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_COMMITTER_NAME=lambda-check", "GIT_COMMITTER_EMAIL=lambda-check@localhost")
	out, err := cmd.CombinedOutput()
	assert.NilError(t, err, string(out))
	return strings.TrimSpace(string(out))
}

// Proposals in plan order, their patches applying with git as they are
// meant to, the workspace untouched, and a second run changing nothing.
func TestPropose(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sample.DemoOptions())
	before := takeSnapshot(t, f.ws.Root)
	res := f.propose(t)
	var order []string
	for _, o := range res.Outcomes {
		assert.Check(t, o.Written && o.Approvable && o.Skipped == "", "%+v", o)
		order = append(order, o.Submodule)
	}
	assert.DeepEqual(t, order, []string{"repos/logos-storage-module", "repos/logos-waku-module", "repos/logos-chat-module"})
	assert.DeepEqual(t, workspace.Compare(before, takeSnapshot(t, f.ws.Root)), []workspace.Difference(nil))

	dir := filepath.Join(f.state, "proposals")
	chatID := res.Outcomes[2].ID
	assert.Assert(t, IDPattern().MatchString(chatID), chatID)
	p, err := Load(dir, chatID)
	assert.NilError(t, err)
	chat := f.ws.Repo("logos-chat-module")
	assert.Equal(t, p.From, chat.Pin.String())
	assert.Equal(t, p.To, chat.Head.String())
	assert.Equal(t, p.Commits, 3)
	assert.Equal(t, p.Log[0].Subject, "Upstream change 3 in logos-chat-module")
	assert.Equal(t, p.Level, 1)
	assert.DeepEqual(t, p.Inputs, []string{"logos-chat-module"})
	assert.Equal(t, len(p.Lock), 1)
	assert.Equal(t, p.Lock[0].To.String("rev"), chat.Head.String())
	assert.Check(t, p.Build.Locked, p.Build.LockNote)
	assert.DeepEqual(t, p.Findings, []policy.Finding{})

	// The patch: git apply --index, then git am, to a clone of the base.
	clone := filepath.Join(t.TempDir(), "clone")
	git(t, t.TempDir(), "clone", "-q", f.ws.Root, clone)
	patch := filepath.Join(dir, chatID, PatchFile)
	git(t, clone, "apply", "--index", "--check", patch)
	git(t, clone, "am", "-q", patch)
	assert.Equal(t, git(t, clone, "ls-tree", "HEAD", "repos/logos-chat-module"), "160000 commit "+chat.Head.String()+"\trepos/logos-chat-module")
	assert.Check(t, is.Contains(git(t, clone, "log", "-1", "--format=%an %s"), "lambda-check Upgrade logos-chat-module to "+chat.Head.String()[:12]))
	// The gitlink and the lock move together: policy finds no drift.
	lock, err := os.ReadFile(filepath.Join(clone, "flake.lock"))
	assert.NilError(t, err)
	assert.Check(t, bytes.Contains(lock, []byte(`"rev": "`+chat.Head.String()+`"`)))

	// Same inputs: nothing changes.
	again := f.propose(t)
	for _, o := range again.Outcomes {
		assert.Check(t, !o.Written, "%s rewritten", o.ID)
	}
	// A changed file is detected.
	assert.NilError(t, os.WriteFile(patch, []byte("tampered\n"), 0o644))
	_, err = Load(dir, chatID)
	assert.ErrorContains(t, err, "change.patch does not match its digest")
	_, err = Load(dir, "../etc")
	assert.ErrorContains(t, err, "is not a proposal id")
}

// Status is derived: a proposal is stale once the workspace leaves its
// base, superseded when another moves the same pin further.
func TestStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sample.Options{Modules: 3, Ahead: map[string]int{"logos-chat-module": 2}})
	first := f.propose(t)
	assert.Equal(t, len(first.Outcomes), 1)
	ls, err := List(filepath.Join(f.state, "proposals"), takeSnapshot(t, f.ws.Root), filepath.Join(f.state, "remotes"))
	assert.NilError(t, err)
	assert.Equal(t, len(ls), 1)
	assert.Equal(t, ls[0].Status, StatusPending)

	// Upstream moves on: a new proposal supersedes the first.
	chat := f.ws.Repo("logos-chat-module")
	tree := git(t, chat.Remote, "rev-parse", chat.Head.String()+"^{tree}")
	cmd := exec.Command("git", "-C", chat.Remote, "commit-tree", tree, "-p", chat.Head.String(), "-m", "More upstream")
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=u", "GIT_AUTHOR_EMAIL=u@u", "GIT_COMMITTER_NAME=u", "GIT_COMMITTER_EMAIL=u@u")
	out, err := cmd.Output()
	assert.NilError(t, err)
	git(t, chat.Remote, "update-ref", "refs/heads/master", strings.TrimSpace(string(out)))
	res, err := upgrades.Run(context.Background(), upgrades.Request{Snapshot: f.snap, Store: filepath.Join(f.state, "remotes")})
	assert.NilError(t, err)
	f.up = &res.Upgrades
	second := f.propose(t)
	ls, err = List(filepath.Join(f.state, "proposals"), takeSnapshot(t, f.ws.Root), filepath.Join(f.state, "remotes"))
	assert.NilError(t, err)
	status := map[string]string{}
	for _, l := range ls {
		status[l.Proposal.ID] = l.Status
	}
	assert.Equal(t, status[first.Outcomes[0].ID], StatusSuperseded)
	assert.Equal(t, status[second.Outcomes[0].ID], StatusPending)

	// The workspace moves elsewhere: nothing they change moved, so
	// nothing goes stale.
	git(t, f.ws.Root, "-c", "user.name=o", "-c", "user.email=o@o", "commit", "-q", "--allow-empty", "-m", "Elsewhere")
	ls, err = List(filepath.Join(f.state, "proposals"), takeSnapshot(t, f.ws.Root), filepath.Join(f.state, "remotes"))
	assert.NilError(t, err)
	for _, l := range ls {
		assert.Equal(t, l.Status, status[l.Proposal.ID], l.Proposal.ID)
	}
	// The gitlink they move from moves: stale.
	sub := filepath.Join(f.ws.Root, "repos", "logos-chat-module")
	git(t, sub, "-c", "user.name=o", "-c", "user.email=o@o", "commit", "-q", "--allow-empty", "-m", "local")
	git(t, f.ws.Root, "add", "repos/logos-chat-module")
	git(t, f.ws.Root, "-c", "user.name=o", "-c", "user.email=o@o", "commit", "-q", "-m", "Moved chat")
	ls, err = List(filepath.Join(f.state, "proposals"), takeSnapshot(t, f.ws.Root), filepath.Join(f.state, "remotes"))
	assert.NilError(t, err)
	for _, l := range ls {
		assert.Equal(t, l.Status, StatusStale, l.Proposal.ID)
		assert.Equal(t, l.Why, "the gitlink moved")
	}
}

// A change a deny rule forbids is written with its findings and is never
// approvable.
func TestForbiddenChange(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sample.Options{Modules: 3, Ahead: map[string]int{"logos-chat-module": 1}})
	cfg, err := policy.ParseConfig([]byte(`{"schemaVersion": 1, "rules": {"forbidden-paths": {"options": {"paths": ["repos/logos-chat-module"]}}, "local-override": {"enabled": false}}}`), "test", f.ws.Root)
	assert.NilError(t, err)
	f.policy = cfg
	res := f.propose(t)
	assert.Equal(t, len(res.Outcomes), 1)
	o := res.Outcomes[0]
	assert.Check(t, !o.Approvable)
	p, err := Load(filepath.Join(f.state, "proposals"), o.ID)
	assert.NilError(t, err)
	assert.Equal(t, len(p.Findings), 1)
	assert.Equal(t, p.Findings[0].Rule, "forbidden-paths")
	assert.Equal(t, p.Findings[0].Subject.Name, "repos/logos-chat-module")
	assert.Equal(t, p.Findings[0].Message, "proposal "+o.ID+" change to a forbidden path")
}

// With Nix: the patched flake.lock is byte for byte what
// "nix flake lock --update-input" writes, the proposal's flake.lock is what
// "nix flake lock" writes for its flake.nix, and the proposal builds the
// module at the new revision (and its dependants with it).
func TestProposalWithNix(t *testing.T) {
	t.Parallel()
	requires.Tool(t, "nix")
	n, err := nixcli.Find(requires.NixEnv())
	assert.NilError(t, err)
	// Chat's upstream also changes its flake's own inputs (takes
	// logos-nix, drops logos-liblogos): re-locked as Nix does.
	o := sample.DemoOptions()
	o.ChangedInputs = []string{"logos-chat-module"}
	f := newFixture(t, o)
	f.eval = n
	res := f.propose(t)
	ctx := context.Background()
	dir := filepath.Join(f.state, "proposals")
	for _, o := range res.Outcomes {
		p, err := Load(dir, o.ID)
		assert.NilError(t, err)
		input := p.Inputs[0]

		// nix flake lock --update-input in a clone of the base, against
		// git apply of the patch in another.
		nixClone := filepath.Join(t.TempDir(), "nix")
		git(t, t.TempDir(), "clone", "-q", f.ws.Root, nixClone)
		_, err = n.Run(ctx, nixClone, "flake", "lock", "--update-input", input)
		assert.NilError(t, err)
		nixLock, err := os.ReadFile(filepath.Join(nixClone, "flake.lock"))
		assert.NilError(t, err)
		ourClone := filepath.Join(t.TempDir(), "ours")
		git(t, t.TempDir(), "clone", "-q", f.ws.Root, ourClone)
		git(t, ourClone, "apply", "--index", filepath.Join(dir, o.ID, PatchFile))
		ourLock, err := os.ReadFile(filepath.Join(ourClone, "flake.lock"))
		assert.NilError(t, err)
		assert.Equal(t, string(ourLock), string(nixLock), "patched flake.lock of %s", input)

		// The proposal flake's lock, as nix flake lock writes it.
		copyDir := filepath.Join(t.TempDir(), "proposal")
		assert.NilError(t, os.MkdirAll(copyDir, 0o755))
		nixFile, err := os.ReadFile(filepath.Join(dir, o.ID, FlakeFile))
		assert.NilError(t, err)
		assert.NilError(t, os.WriteFile(filepath.Join(copyDir, FlakeFile), nixFile, 0o644))
		_, err = n.Run(ctx, copyDir, "flake", "lock", "path:"+copyDir)
		assert.NilError(t, err)
		theirs, err := os.ReadFile(filepath.Join(copyDir, LockFile))
		assert.NilError(t, err)
		ours, err := os.ReadFile(filepath.Join(dir, o.ID, LockFile))
		assert.NilError(t, err)
		assert.Equal(t, string(ours), string(theirs), "proposal flake.lock of %s", input)
	}

	// Build the chat proposal: the module at its new revision, and the
	// chat UI (which follows it) built against it.
	chat := res.Outcomes[2]
	assert.Equal(t, chat.Submodule, "repos/logos-chat-module")
	p, err := Load(dir, chat.ID)
	assert.NilError(t, err)
	build := func(attr string) string {
		out, err := n.Run(ctx, dir, "build", "--no-link", "--json", p.Build.Flake+"#packages."+f.ws.System+"."+attr)
		assert.NilError(t, err)
		var built []struct {
			Outputs map[string]string `json:"outputs"`
		}
		assert.NilError(t, json.Unmarshal(out, &built))
		b, err := os.ReadFile(built[0].Outputs["out"])
		assert.NilError(t, err)
		return string(b)
	}
	head := f.ws.Repo("logos-chat-module").Head.String()
	// Its own inputs were re-locked from its new flake.lock: logos-nix
	// taken, logos-liblogos dropped; and it evaluates and builds with them.
	assert.DeepEqual(t, p.Lock[0].Added, []string{sample.InfraRepo})
	assert.DeepEqual(t, p.Lock[0].Removed, []string{"logos-liblogos"})
	chatOut := build("logos-chat-module")
	assert.Check(t, strings.HasPrefix(chatOut, "logos-chat-module "+head+"\n"))
	assert.Check(t, is.Contains(chatOut, "-"+sample.InfraRepo+"\n"))
	ui := build("logos-chat-ui")
	assert.Check(t, is.Contains(ui, "-logos-chat-module\n"))
	_, err = n.Run(ctx, dir, "flake", "check", p.Build.Flake)
	assert.NilError(t, err)
	// Building did not change the proposal.
	_, err = Load(dir, chat.ID)
	assert.NilError(t, err)
}

// A repository locked through a path input cannot be moved by a proposal:
// it is proposed (the gitlink) but never approvable.
func TestUnmovableLock(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sample.Options{Modules: 3, Ahead: map[string]int{"logos-chat-module": 1}, Override: []string{"logos-chat-module"}})
	res := f.propose(t)
	assert.Equal(t, len(res.Outcomes), 1)
	assert.Check(t, !res.Outcomes[0].Approvable)
	p, err := Load(filepath.Join(f.state, "proposals"), res.Outcomes[0].ID)
	assert.NilError(t, err)
	assert.Equal(t, len(p.Lock), 0)
	assert.Equal(t, p.Findings[0].Rule, "lock-drift")
	assert.Check(t, is.Contains(p.Findings[0].Message, "through a path input"))
	assert.Check(t, !p.Build.Locked)
}

// With Group "level", the upgrades of one plan level are one proposal: one
// change moving every member's gitlink and lock node, its commit the same
// change's; the next level stays alone. Proposing again changes nothing.
func TestGroupedByLevel(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sample.DemoOptions())
	v, err := plan.LoadGraph(context.Background(), plan.GraphRequest{Workspace: f.ws.Root})
	assert.NilError(t, err)
	var changes []string
	for _, r := range f.up.Repos {
		if r.IsUpgrade() {
			changes = append(changes, r.Inputs...)
		}
	}
	pl, err := plan.Run(context.Background(), plan.Request{Graph: &v.Graph, Changes: changes})
	assert.NilError(t, err)
	req := Request{Snapshot: f.snap, Upgrades: f.up, Plan: &pl.Plan, Stores: filepath.Join(f.state, "remotes"),
		Dir: filepath.Join(f.state, "proposals"), Policy: f.policy, Producer: producer, Group: "level"}
	res, err := Run(context.Background(), req)
	assert.NilError(t, err)
	assert.Equal(t, len(res.Outcomes), 2)
	g, err := Load(req.Dir, res.Outcomes[0].ID)
	assert.NilError(t, err)
	assert.Equal(t, g.Kind, KindGroup)
	assert.Equal(t, len(g.Members), 2)
	assert.Equal(t, g.Level, 0)
	nodes := 0
	for _, m := range g.Members {
		nodes += len(m.Lock)
	}
	assert.Equal(t, len(g.Lock), nodes)
	assert.Assert(t, g.Approvable)
	single, err := Load(req.Dir, res.Outcomes[1].ID)
	assert.NilError(t, err)
	assert.Equal(t, single.Kind, KindUpgrade)
	assert.Equal(t, single.Level, 1)
	// One patch for the whole level (apply recomputing its commit is in
	// group.txtar).
	patch, err := os.ReadFile(filepath.Join(req.Dir, g.ID, PatchFile))
	assert.NilError(t, err)
	assert.Assert(t, strings.Contains(string(patch), "Subject: [PATCH] Upgrade "))
	again, err := Run(context.Background(), req)
	assert.NilError(t, err)
	for _, o := range again.Outcomes {
		assert.Assert(t, !o.Written, o.ID)
	}
}
