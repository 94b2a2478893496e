package governance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/gitrepo"
	"github.com/lambda-os/lambda-check/internal/requires"
	"github.com/lambda-os/lambda-check/internal/sample"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/stage/plan"
	"github.com/lambda-os/lambda-check/internal/stage/policy"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
	"github.com/lambda-os/lambda-check/internal/stage/snapshot"
	"github.com/lambda-os/lambda-check/internal/stage/upgrades"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

type fixture struct {
	ws    *sample.Workspace
	state string
	keys  map[string]*sign.PrivateKey
	reg   *sign.Registry
	ids   []string // proposal ids, in plan order
}

func key(t *testing.T, id string, seed byte) *sign.PrivateKey {
	k, err := sign.GenerateKey(id, bytes.NewReader(bytes.Repeat([]byte{seed}, 32)))
	assert.NilError(t, err)
	return k
}

// newFixture: a workspace with the chat and waku modules behind, their
// proposals, and keys alice, bob, carol (approvers), dave (approver,
// expired), erin (checkpoint only).
func newFixture(t *testing.T) *fixture {
	t.Helper()
	requires.Tool(t, "git")
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 3, Ahead: map[string]int{"logos-chat-module": 2, "logos-waku-module": 1}})
	assert.NilError(t, err)
	f := &fixture{ws: ws, state: t.TempDir(), keys: map[string]*sign.PrivateKey{}}
	var entries []sign.Key
	for i, id := range []string{"alice", "bob", "carol", "dave", "erin"} {
		k := key(t, id, byte(10+i))
		f.keys[id] = k
		sc := sign.Scope{Owner: strings.ToUpper(id[:1]) + id[1:], Roles: []string{sign.RoleApprover}}
		switch id {
		case "dave":
			sc.Expires = now.Add(-time.Hour)
		case "erin":
			sc.Roles = []string{sign.RoleCheckpoint}
		}
		entries = append(entries, sign.RegistryKey(k, sc))
	}
	b, err := artifact.Encode(sign.Registry{SchemaVersion: 1, Keys: entries})
	assert.NilError(t, err)
	f.reg, err = sign.ParseRegistry(b)
	assert.NilError(t, err)
	s := f.snapshot(t)
	up, err := upgrades.Run(context.Background(), upgrades.Request{Snapshot: s, Store: filepath.Join(f.state, "remotes")})
	assert.NilError(t, err)
	pcfg, err := policy.LoadConfig(filepath.Join(ws.Root, "policy.json"), false)
	assert.NilError(t, err)
	res, err := propose.Run(context.Background(), propose.Request{Snapshot: s, Upgrades: &up.Upgrades, Stores: filepath.Join(f.state, "remotes"),
		Dir: filepath.Join(f.state, "proposals"), Policy: pcfg,
		Producer: artifact.Producer{Name: "lambda-check", Version: "test"}})
	assert.NilError(t, err)
	for _, o := range res.Outcomes {
		f.ids = append(f.ids, o.ID)
	}
	assert.Equal(t, len(f.ids), 2)
	return f
}

func (f *fixture) snapshot(t *testing.T) *workspace.Snapshot {
	t.Helper()
	res, err := snapshot.Run(context.Background(), snapshot.Request{Workspace: f.ws.Root, Parallelism: 4, Exclude: []string{f.state}})
	assert.NilError(t, err)
	return &res.Snapshot
}

func (f *fixture) env(t *testing.T, cfg Config) Env {
	t.Helper()
	assert.NilError(t, cfg.Validate(f.reg))
	return Env{Proposals: filepath.Join(f.state, "proposals"), Decisions: filepath.Join(f.state, "decisions"),
		Stores: filepath.Join(f.state, "remotes"), Snapshot: f.snapshot(t), Registry: f.reg, Config: &cfg, Now: now}
}

func (f *fixture) chat() string { return f.ids[len(f.ids)-1] } // level 1: after waku

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	out, err := cmd.CombinedOutput()
	assert.NilError(t, err, string(out))
	return strings.TrimSpace(string(out))
}

func TestHumanApproveApply(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	env := f.env(t, Config{Backend: Human})
	id := f.ids[0]
	st, err := EvaluateOne(env, id)
	assert.NilError(t, err)
	assert.Equal(t, st.State, StatePending)
	assert.Equal(t, st.Missing, 1)

	_, err = Apply(context.Background(), ApplyRequest{Env: env, ID: id, Committer: gitrepo.Signature{Name: "op", Email: "op@node"}})
	assert.Assert(t, errors.Is(err, ErrTransition), "%v", err)

	st, err = Record(env, id, Approve, "looks right", f.keys["alice"])
	assert.NilError(t, err)
	assert.Equal(t, st.State, StateApproved)
	assert.DeepEqual(t, st.Approvals, []Signer{{Key: "alice", Owner: "Alice", Time: now.Format(time.RFC3339), Reason: "looks right"}})

	res, err := Apply(context.Background(), ApplyRequest{Env: env, ID: id, Committer: gitrepo.Signature{Name: "op", Email: "op@node"}})
	assert.NilError(t, err)
	p, err := propose.Load(env.Proposals, id)
	assert.NilError(t, err)

	// The workspace: one commit touching exactly the gitlink and the lock,
	// with trailers; the submodule checked out at the new revision; git
	// itself sees a clean tree.
	assert.Equal(t, git(t, f.ws.Root, "rev-parse", "HEAD"), res.Applied.Commit)
	assert.Equal(t, git(t, f.ws.Root, "diff", "--name-only", "HEAD~1", "HEAD"), "flake.lock\n"+p.Submodule)
	msg := git(t, f.ws.Root, "log", "-1", "--format=%B")
	assert.Check(t, is.Contains(msg, "Lambda-Check-Proposal: "+id))
	assert.Check(t, is.Contains(msg, "Approved-by: alice (Alice)"))
	assert.Equal(t, git(t, f.ws.Root, "status", "--porcelain"), "")
	assert.Equal(t, git(t, filepath.Join(f.ws.Root, p.Submodule), "rev-parse", "HEAD"), p.To)
	after := f.snapshot(t)
	m := after.Submodule(p.Submodule)
	assert.Equal(t, m.State, workspace.StateClean)
	assert.Equal(t, m.Gitlink, p.To)

	env.Snapshot = after
	st, err = EvaluateOne(env, id)
	assert.NilError(t, err)
	assert.Equal(t, st.State, StateApplied)
	_, err = Record(env, id, Reject, "", f.keys["bob"])
	assert.Assert(t, errors.Is(err, ErrTransition), "%v", err)
	// The other proposal touches other paths: HEAD moved, but what it
	// changes did not. It stays pending, is approved, and applies onto the
	// new HEAD, changing only its own paths.
	st, err = EvaluateOne(env, f.ids[1])
	assert.NilError(t, err)
	assert.Equal(t, st.State, StatePending)
	_, err = Record(env, f.ids[1], Approve, "", f.keys["alice"])
	assert.NilError(t, err)
	before := git(t, f.ws.Root, "rev-parse", "HEAD")
	res2, err := Apply(context.Background(), ApplyRequest{Env: env, ID: f.ids[1], Committer: gitrepo.Signature{Name: "op", Email: "op@node"}})
	assert.NilError(t, err)
	assert.Equal(t, res2.Applied.Onto, before)
	assert.Equal(t, git(t, f.ws.Root, "rev-parse", "HEAD^"), before)
	p1, err := propose.Load(env.Proposals, f.ids[1])
	assert.NilError(t, err)
	changed := git(t, f.ws.Root, "diff", "--name-only", "HEAD^", "HEAD")
	assert.Equal(t, changed, "flake.lock\n"+p1.Submodule)
	assert.Equal(t, git(t, f.ws.Root, "status", "--porcelain"), "")
	both := f.snapshot(t)
	assert.Equal(t, both.Submodule(p.Submodule).Gitlink, p.To)
	assert.Equal(t, both.Submodule(p1.Submodule).Gitlink, p1.To)
	env.Snapshot = both
	for _, id := range f.ids[:2] {
		st, err = EvaluateOne(env, id)
		assert.NilError(t, err)
		assert.Equal(t, st.State, StateApplied, id)
	}
}

// A proposal approved before what it changes moved is refused; one whose
// paths did not move applies onto the new HEAD.
func TestApplyStaleApproved(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	env := f.env(t, Config{Backend: Human})
	_, err := Record(env, f.ids[0], Approve, "", f.keys["alice"])
	assert.NilError(t, err)
	p, err := propose.Load(env.Proposals, f.ids[0])
	assert.NilError(t, err)
	// The gitlink it moves from moves.
	sub := filepath.Join(f.ws.Root, p.Submodule)
	git(t, sub, "-c", "user.name=o", "-c", "user.email=o@o", "commit", "-q", "--allow-empty", "-m", "local")
	git(t, f.ws.Root, "add", p.Submodule)
	git(t, f.ws.Root, "-c", "user.name=o", "-c", "user.email=o@o", "commit", "-q", "-m", "moved the gitlink")
	env.Snapshot = f.snapshot(t)
	head := git(t, f.ws.Root, "rev-parse", "HEAD")
	_, err = Apply(context.Background(), ApplyRequest{Env: env, ID: f.ids[0]})
	assert.Assert(t, errors.Is(err, ErrTransition), "%v", err)
	assert.ErrorContains(t, err, "is stale (the gitlink moved)")
	assert.Equal(t, git(t, f.ws.Root, "rev-parse", "HEAD"), head)
}

// Another commit elsewhere leaves an approved proposal approved; it applies
// onto the new HEAD.
func TestApplyOntoMovedHead(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	env := f.env(t, Config{Backend: Human})
	_, err := Record(env, f.ids[0], Approve, "", f.keys["alice"])
	assert.NilError(t, err)
	git(t, f.ws.Root, "-c", "user.name=o", "-c", "user.email=o@o", "commit", "-q", "--allow-empty", "-m", "elsewhere")
	head := git(t, f.ws.Root, "rev-parse", "HEAD")
	env.Snapshot = f.snapshot(t)
	st, err := EvaluateOne(env, f.ids[0])
	assert.NilError(t, err)
	assert.Equal(t, st.State, StateApproved)
	res, err := Apply(context.Background(), ApplyRequest{Env: env, ID: f.ids[0], Committer: gitrepo.Signature{Name: "op", Email: "op@node"}})
	assert.NilError(t, err)
	assert.Equal(t, res.Applied.Onto, head)
	assert.Equal(t, git(t, f.ws.Root, "rev-parse", "HEAD^"), head)
	assert.Equal(t, git(t, f.ws.Root, "status", "--porcelain"), "")
}

// Forged, replayed, duplicated and expired decisions do not count.
func TestBadDecisions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	env := f.env(t, Config{Backend: Multisig, Threshold: 2, Signers: []string{"alice", "bob", "carol"}})
	a, b := f.ids[0], f.ids[1]
	boundA, err := LoadBound(env.Proposals, a)
	assert.NilError(t, err)
	boundB, err := LoadBound(env.Proposals, b)
	assert.NilError(t, err)
	file := func(id, name string, raw []byte) {
		dir := RecordsFor(env.Decisions, id).Dir
		assert.NilError(t, os.MkdirAll(dir, 0o755))
		assert.NilError(t, os.WriteFile(filepath.Join(dir, name), raw, 0o644))
	}
	sig := func(bd *Bound, k string) []byte {
		raw, err := SignDecision(bd, Approve, "", Multisig, f.keys[k], now)
		assert.NilError(t, err)
		return raw
	}
	// A key not in the registry.
	file(a, "mallory.json", sig(boundA, "alice")[:0])
	mallory := key(t, "mallory", 99)
	raw, err := SignDecision(boundA, Approve, "", Multisig, mallory, now)
	assert.NilError(t, err)
	file(a, "mallory.json", raw)
	// Alice's decision on B, replayed onto A.
	file(a, "alice.json", sig(boundB, "alice"))
	// Bob's, edited after signing.
	file(a, "bob.json", bytes.Replace(sig(boundA, "bob"), []byte(`"reason"`), []byte(`"reason"`), 1))
	edited := bytes.Replace(sig(boundA, "bob"), []byte(`"verdict": "approve"`), []byte(`"verdict": "reject"`), 1)
	file(a, "bob.json", edited)
	// Carol's, filed twice.
	file(a, "carol.json", sig(boundA, "carol"))
	file(a, "carol-again.json", sig(boundA, "carol"))
	// Dave's key expired.
	file(a, "dave.json", sig(boundA, "dave"))

	st, err := EvaluateOne(env, a)
	assert.NilError(t, err)
	assert.Equal(t, st.State, StatePending)
	assert.DeepEqual(t, keysOf(st.Approvals), []string{"carol"})
	assert.Equal(t, st.Missing, 1)
	ignored := strings.Join(st.Ignored, "\n")
	for _, want := range []string{
		`alice.json: decision is for proposal ` + b,
		`bob.json: signature invalid: signature by "bob" does not verify`,
		`carol-again.json: signed by carol, filed under another name`,
		`dave.json: signature untrusted: key "dave" expired`,
		`mallory.json: signature untrusted: key "mallory" is not in the registry`,
	} {
		assert.Check(t, is.Contains(ignored, want))
	}

	// Recording refuses what would not count, and a second decision.
	_, err = Record(env, a, Approve, "", f.keys["dave"])
	assert.ErrorContains(t, err, "would not count")
	_, err = Record(env, a, Approve, "", f.keys["erin"])
	assert.ErrorContains(t, err, `does not have the role "approver"`)
	// The same decision again changes nothing and says so.
	_, err = Record(env, a, Approve, "", f.keys["carol"])
	var done *Done
	assert.Assert(t, errors.As(err, &done), "%v", err)
	assert.ErrorContains(t, err, "already approved by carol")
}

func keysOf(ss []Signer) []string {
	out := []string{}
	for _, s := range ss {
		out = append(out, s.Key)
	}
	return out
}

// 2 of 3: exactly two distinct keys approve; two rejects reject.
func TestMultisig(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	env := f.env(t, Config{Backend: Multisig, Threshold: 2, Signers: []string{"alice", "bob", "carol"}})
	a, b := f.ids[0], f.ids[1]
	st, err := Record(env, a, Approve, "", f.keys["alice"])
	assert.NilError(t, err)
	assert.Equal(t, st.State, StatePending)
	assert.Equal(t, st.Missing, 1)
	st, err = Record(env, a, Approve, "", f.keys["bob"])
	assert.NilError(t, err)
	assert.Equal(t, st.State, StateApproved)
	assert.DeepEqual(t, keysOf(st.Approvals), []string{"alice", "bob"})

	st, err = Record(env, b, Reject, "not yet", f.keys["alice"])
	assert.NilError(t, err)
	assert.Equal(t, st.State, StatePending, "one reject of three: two approvals can still come")
	st, err = Record(env, b, Reject, "", f.keys["carol"])
	assert.NilError(t, err)
	assert.Equal(t, st.State, StateRejected)
	_, err = Record(env, b, Approve, "", f.keys["bob"])
	assert.Assert(t, errors.Is(err, ErrTransition), "%v", err)

	bad := Config{Backend: Multisig, Threshold: 4, Signers: []string{"alice", "bob", "carol"}}
	assert.ErrorContains(t, bad.Validate(f.reg), "threshold 4 is more than the 3 keys")
	bad = Config{Backend: "lez"}
	assert.ErrorContains(t, bad.Validate(f.reg), `backend "lez"`)
}

// A failure at any step of apply leaves the workspace exactly as it was.
func TestApplyFailureLeavesNoTrace(t *testing.T) {
	t.Parallel()
	for _, step := range []string{"checkout", "lock", "index", "commit", "record"} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			env := f.env(t, Config{Backend: Human})
			id := f.ids[0]
			_, err := Record(env, id, Approve, "", f.keys["alice"])
			assert.NilError(t, err)
			p, err := propose.Load(env.Proposals, id)
			assert.NilError(t, err)
			before := f.snapshot(t)
			status := git(t, f.ws.Root, "status", "--porcelain=v2", "--branch")
			subHead := git(t, filepath.Join(f.ws.Root, p.Submodule), "rev-parse", "HEAD")
			lock, err := os.ReadFile(filepath.Join(f.ws.Root, "flake.lock"))
			assert.NilError(t, err)

			_, err = Apply(context.Background(), ApplyRequest{Env: env, ID: id, failAt: step, Committer: gitrepo.Signature{Name: "op", Email: "op@node"}})
			assert.ErrorContains(t, err, "injected failure after "+step)
			assert.ErrorContains(t, err, "the workspace is as it was")

			assert.DeepEqual(t, workspace.Compare(before, f.snapshot(t)), []workspace.Difference(nil))
			assert.Equal(t, git(t, f.ws.Root, "status", "--porcelain=v2", "--branch"), status)
			assert.Equal(t, git(t, filepath.Join(f.ws.Root, p.Submodule), "rev-parse", "HEAD"), subHead)
			assert.Equal(t, git(t, filepath.Join(f.ws.Root, p.Submodule), "status", "--porcelain"), "")
			after, err := os.ReadFile(filepath.Join(f.ws.Root, "flake.lock"))
			assert.NilError(t, err)
			assert.Equal(t, string(after), string(lock))
			st, err := EvaluateOne(env, id)
			assert.NilError(t, err)
			assert.Equal(t, st.State, StateApproved, "still approved, not applied")
		})
	}
}

// --no-commit stages the change; apply refuses a workspace dirty where the
// proposal touches it.
func TestNoCommitAndDirty(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	env := f.env(t, Config{Backend: Human})
	id := f.ids[0]
	_, err := Record(env, id, Approve, "", f.keys["alice"])
	assert.NilError(t, err)
	p, err := propose.Load(env.Proposals, id)
	assert.NilError(t, err)

	sub := filepath.Join(f.ws.Root, p.Submodule)
	assert.NilError(t, os.WriteFile(filepath.Join(sub, "README.md"), []byte("local edit\n"), 0o644))
	env.Snapshot = f.snapshot(t)
	_, err = Apply(context.Background(), ApplyRequest{Env: env, ID: id})
	assert.Assert(t, errors.Is(err, ErrNotClean), "%v", err)
	git(t, sub, "checkout", "README.md")

	env.Snapshot = f.snapshot(t)
	head := git(t, f.ws.Root, "rev-parse", "HEAD")
	res, err := Apply(context.Background(), ApplyRequest{Env: env, ID: id, NoCommit: true})
	assert.NilError(t, err)
	assert.Check(t, res.Applied.Staged)
	assert.Equal(t, git(t, f.ws.Root, "rev-parse", "HEAD"), head)
	assert.Equal(t, git(t, f.ws.Root, "diff", "--cached", "--name-only"), "flake.lock\n"+p.Submodule)
	assert.Equal(t, git(t, f.ws.Root, "diff", "--name-only"), "")
	env.Snapshot = f.snapshot(t)
	st, err := EvaluateOne(env, id)
	assert.NilError(t, err)
	assert.Equal(t, st.State, StateApplied)
	assert.Equal(t, st.Why, "staged, not committed")
}

// The program backend: the decider's signed answer is filed; a failing
// or lying decider leaves the proposal pending.
func TestProgramBackend(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dir := t.TempDir()
	id := f.ids[0]
	bound, err := LoadBound(filepath.Join(f.state, "proposals"), id)
	assert.NilError(t, err)
	answer, err := SignDecision(bound, Approve, "policy program says yes", Program, f.keys["carol"], now)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "answer.json"), answer, 0o644))
	script := func(name, body string) []string {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755))
		return []string{p}
	}
	for _, tc := range []struct {
		name, body, want string
	}{
		{"fails", "echo 'chain unreachable' >&2; exit 4", "exit status 4: chain unreachable"},
		{"garbage", "echo approve", "not a valid decision"},
		{"other", "cat " + filepath.Join(dir, "answer.json"), "not among the keys that decide"},
		{"hangs", "sleep 30", "no answer within 300ms"},
	} {
		cfg := Config{Backend: Program, Program: script(tc.name, tc.body), ProgramTimeout: 300 * time.Millisecond}
		if tc.name == "other" {
			cfg.Signers = []string{"alice"}
		}
		env := f.env(t, cfg)
		_, err := Decide(context.Background(), env, id)
		var de *DeciderError
		assert.Assert(t, errors.As(err, &de), "%s: %v", tc.name, err)
		assert.ErrorContains(t, err, tc.want)
		st, err := EvaluateOne(env, id)
		assert.NilError(t, err)
		assert.Equal(t, st.State, StatePending, tc.name)
	}
	missing := f.env(t, Config{Backend: Program, Program: []string{filepath.Join(dir, "nonexistent")}})
	_, err = Decide(context.Background(), missing, id)
	assert.ErrorContains(t, err, "nonexistent")

	env := f.env(t, Config{Backend: Program, Program: script("yes", "cat >/dev/null; cat "+filepath.Join(dir, "answer.json"))})
	d, err := Decide(context.Background(), env, id)
	assert.NilError(t, err)
	assert.Equal(t, d.Signer, "carol")
	st, err := EvaluateOne(env, id)
	assert.NilError(t, err)
	assert.Equal(t, st.State, StateApproved)
	_, err = Record(env, id, Approve, "", f.keys["alice"])
	assert.Assert(t, errors.Is(err, ErrTransition))
}

func FuzzParseDecision(f *testing.F) {
	f.Add([]byte(`{"kind":"lambda-check/decision","schemaVersion":1,"proposal":"up-x-0123456789ab-0123456789","proposalDigest":"sha256:00","base":{"head":"","branch":"","gitlink":"","flakeLock":""},"verdict":"approve","signer":"a","time":"2026-11-27T12:00:00Z","backend":"human","signatures":[{"keyId":"a","signature":"AAAA"}]}`))
	f.Add([]byte(`{"kind":"lambda-check/decision"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDecision(b)
		if err != nil {
			return
		}
		if d.Verdict != Approve && d.Verdict != Reject {
			t.Fatalf("accepted verdict %q", d.Verdict)
		}
	})
}

// The new revision is not in the submodule (nor in anything it borrows
// from): apply fetches it from the submodule's remote.
func TestApplyFetches(t *testing.T) {
	t.Parallel()
	requires.Tool(t, "git")
	ws, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{Modules: 3})
	assert.NilError(t, err)
	chat := ws.Repo("logos-chat-module")
	// A remote the workspace has never seen, one commit ahead.
	other := filepath.Join(t.TempDir(), "other.git")
	git(t, t.TempDir(), "clone", "-q", "--bare", chat.Remote, other)
	tree := git(t, other, "rev-parse", "HEAD^{tree}")
	cmd := exec.Command("git", "-C", other, "commit-tree", tree, "-p", "HEAD", "-m", "Only on the other remote")
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=u", "GIT_AUTHOR_EMAIL=u@u", "GIT_COMMITTER_NAME=u", "GIT_COMMITTER_EMAIL=u@u")
	out, err := cmd.Output()
	assert.NilError(t, err)
	newHead := strings.TrimSpace(string(out))
	git(t, other, "update-ref", "refs/heads/master", newHead)
	// As after editing .gitmodules and 'git submodule sync': git fetches
	// from the submodule's own remote.
	git(t, ws.Root, "config", "-f", ".gitmodules", "submodule."+chat.Path+".url", other)
	git(t, ws.Root, "-c", "user.name=o", "-c", "user.email=o@o", "commit", "-q", "-am", "Use the other remote")
	git(t, filepath.Join(ws.Root, chat.Path), "remote", "set-url", "origin", other)

	f := &fixture{ws: ws, state: t.TempDir(), keys: map[string]*sign.PrivateKey{"alice": key(t, "alice", 10)}}
	b, err := artifact.Encode(sign.Registry{SchemaVersion: 1, Keys: []sign.Key{sign.RegistryKey(f.keys["alice"], sign.Scope{Roles: []string{sign.RoleApprover}})}})
	assert.NilError(t, err)
	f.reg, err = sign.ParseRegistry(b)
	assert.NilError(t, err)
	s := f.snapshot(t)
	up, err := upgrades.Run(context.Background(), upgrades.Request{Snapshot: s, Store: filepath.Join(f.state, "remotes")})
	assert.NilError(t, err)
	assert.Equal(t, up.Upgrades.Summary.Behind, 1)
	cfg, err := policy.ParseConfig([]byte(`{"schemaVersion": 1, "rules": {"local-override": {"enabled": false}}}`), "t", ws.Root)
	assert.NilError(t, err)
	res, err := propose.Run(context.Background(), propose.Request{Snapshot: s, Upgrades: &up.Upgrades, Stores: filepath.Join(f.state, "remotes"),
		Dir: filepath.Join(f.state, "proposals"), Policy: cfg,
		Producer: artifact.Producer{Name: "lambda-check", Version: "test"}})
	assert.NilError(t, err)
	id := res.Outcomes[0].ID
	env := f.env(t, Config{Backend: Human})
	sub, err := gitrepo.Open(filepath.Join(ws.Root, chat.Path))
	assert.NilError(t, err)
	assert.Check(t, !sub.HasCommit(plumbingHash(newHead)), "the submodule must lack it for this test")
	_, err = Record(env, id, Approve, "", f.keys["alice"])
	assert.NilError(t, err)
	_, err = Apply(context.Background(), ApplyRequest{Env: env, ID: id, Committer: gitrepo.Signature{Name: "op", Email: "op@node"}})
	assert.NilError(t, err)
	assert.Equal(t, git(t, filepath.Join(ws.Root, chat.Path), "rev-parse", "HEAD"), newHead)
	assert.Equal(t, git(t, ws.Root, "status", "--porcelain"), "")
}

func plumbingHash(s string) plumbing.Hash { return plumbing.NewHash(s) }

// Approvals belong to the change: proposed again (another producer, after
// HEAD moved elsewhere), the new proposal supersedes the old one and
// carries its signed approvals; it applies with them.
func TestApprovalsCarryOver(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	env := f.env(t, Config{Backend: Human})
	_, err := Record(env, f.chat(), Approve, "looked at it", f.keys["alice"])
	assert.NilError(t, err)
	git(t, f.ws.Root, "-c", "user.name=o", "-c", "user.email=o@o", "commit", "-q", "--allow-empty", "-m", "elsewhere")
	s := f.snapshot(t)
	up, err := upgrades.Run(context.Background(), upgrades.Request{Snapshot: s, Store: filepath.Join(f.state, "remotes")})
	assert.NilError(t, err)
	pcfg, err := policy.LoadConfig(filepath.Join(f.ws.Root, "policy.json"), false)
	assert.NilError(t, err)
	res, err := propose.Run(context.Background(), propose.Request{Snapshot: s, Upgrades: &up.Upgrades, Stores: filepath.Join(f.state, "remotes"),
		Dir: filepath.Join(f.state, "proposals"), Policy: pcfg, Producer: artifact.Producer{Name: "lambda-check", Version: "test-2"}})
	assert.NilError(t, err)
	first, err := propose.Load(env.Proposals, f.chat())
	assert.NilError(t, err)
	var again string
	for _, o := range res.Outcomes {
		if o.Submodule == first.Submodule {
			again = o.ID
		}
	}
	assert.Assert(t, again != "" && again != f.chat())
	env.Snapshot = s
	old, err := EvaluateOne(env, f.chat())
	assert.NilError(t, err)
	assert.Equal(t, old.State, StateSuperseded)
	assert.Assert(t, strings.Contains(old.Why, again), old.Why)
	st, err := EvaluateOne(env, again)
	assert.NilError(t, err)
	assert.Equal(t, st.State, StateApproved)
	assert.Equal(t, st.Approvals[0].Key, "alice")
	assert.Equal(t, st.Approvals[0].CarriedFrom, f.chat())
	_, err = Apply(context.Background(), ApplyRequest{Env: env, ID: again, Committer: gitrepo.Signature{Name: "op", Email: "op@node"}})
	assert.NilError(t, err)
	assert.Check(t, is.Contains(git(t, f.ws.Root, "log", "-1", "--format=%B"), "Approved-by: alice (Alice)"))
}

// A quarantined revision blocks the upgrade to it, approved or not.
func TestQuarantineBlocks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	env := f.env(t, Config{Backend: Human})
	_, err := Record(env, f.chat(), Approve, "", f.keys["alice"])
	assert.NilError(t, err)
	p, err := propose.Load(env.Proposals, f.chat())
	assert.NilError(t, err)
	env.Quarantine = map[string]string{propose.QuarantineKey(p.Submodule, p.To): "chatsdk_module crashed"}
	st, err := EvaluateOne(env, f.chat())
	assert.NilError(t, err)
	assert.Equal(t, st.State, StateBlocked)
	assert.Equal(t, st.Why, "its revision is quarantined: chatsdk_module crashed")
	_, err = Apply(context.Background(), ApplyRequest{Env: env, ID: f.chat()})
	assert.ErrorContains(t, err, "is blocked")
}

// An index.lock held by another git process is never overwritten: apply
// refuses, the workspace as it was, and applies once it is gone.
func TestApplyRespectsGitLocks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	env := f.env(t, Config{Backend: Human})
	_, err := Record(env, f.ids[0], Approve, "", f.keys["alice"])
	assert.NilError(t, err)
	lock := filepath.Join(f.ws.Root, ".git", "index.lock")
	assert.NilError(t, os.WriteFile(lock, []byte("held by git"), 0o644))
	head := git(t, f.ws.Root, "rev-parse", "HEAD")
	_, err = Apply(context.Background(), ApplyRequest{Env: env, ID: f.ids[0], Committer: gitrepo.Signature{Name: "op", Email: "op@node"}})
	assert.Assert(t, errors.Is(err, gitrepo.ErrLocked), "%v", err)
	b, err := os.ReadFile(lock)
	assert.NilError(t, err)
	assert.Equal(t, string(b), "held by git")
	assert.Equal(t, git(t, f.ws.Root, "rev-parse", "HEAD"), head)
	assert.NilError(t, os.Remove(lock))
	assert.Equal(t, git(t, f.ws.Root, "status", "--porcelain"), "")
	env.Snapshot = f.snapshot(t)
	_, err = Apply(context.Background(), ApplyRequest{Env: env, ID: f.ids[0], Committer: gitrepo.Signature{Name: "op", Email: "op@node"}})
	assert.NilError(t, err)
}

// A group applies as a unit: every member in one commit, and a failure at
// any step puts every member back.
func TestGroupAppliesAsAUnit(t *testing.T) {
	t.Parallel()
	for _, step := range []string{"", "checkout", "index", "commit"} {
		t.Run("fail at "+step, func(t *testing.T) {
			t.Parallel()
			requires.Tool(t, "git")
			ws, err := sample.Generate(context.Background(), t.TempDir(), sample.DemoOptions())
			assert.NilError(t, err)
			f := &fixture{ws: ws, state: t.TempDir(), keys: map[string]*sign.PrivateKey{"alice": key(t, "alice", 10)}}
			b, err := artifact.Encode(sign.Registry{SchemaVersion: 1, Keys: []sign.Key{sign.RegistryKey(f.keys["alice"], sign.Scope{Owner: "Alice", Roles: []string{sign.RoleApprover}})}})
			assert.NilError(t, err)
			f.reg, err = sign.ParseRegistry(b)
			assert.NilError(t, err)
			s := f.snapshot(t)
			up, err := upgrades.Run(context.Background(), upgrades.Request{Snapshot: s, Store: filepath.Join(f.state, "remotes")})
			assert.NilError(t, err)
			v, err := plan.LoadGraph(context.Background(), plan.GraphRequest{Workspace: ws.Root})
			assert.NilError(t, err)
			var changes []string
			for _, r := range up.Upgrades.Repos {
				if r.IsUpgrade() {
					changes = append(changes, r.Inputs...)
				}
			}
			pl, err := plan.Run(context.Background(), plan.Request{Graph: &v.Graph, Changes: changes})
			assert.NilError(t, err)
			pcfg, err := policy.LoadConfig(filepath.Join(ws.Root, "policy.json"), false)
			assert.NilError(t, err)
			res, err := propose.Run(context.Background(), propose.Request{Snapshot: s, Upgrades: &up.Upgrades, Plan: &pl.Plan,
				Stores: filepath.Join(f.state, "remotes"), Dir: filepath.Join(f.state, "proposals"), Policy: pcfg,
				Producer: artifact.Producer{Name: "lambda-check", Version: "test"}, Group: "level"})
			assert.NilError(t, err)
			id := res.Outcomes[0].ID
			env := f.env(t, Config{Backend: Human})
			_, err = Record(env, id, Approve, "", f.keys["alice"])
			assert.NilError(t, err)
			g, err := propose.Load(env.Proposals, id)
			assert.NilError(t, err)
			assert.Equal(t, g.Kind, propose.KindGroup)
			status := git(t, ws.Root, "status", "--porcelain=v2", "--branch")
			before := f.snapshot(t)
			_, err = Apply(context.Background(), ApplyRequest{Env: env, ID: id, failAt: step, Committer: gitrepo.Signature{Name: "op", Email: "op@node"}})
			if step != "" {
				assert.ErrorContains(t, err, "the workspace is as it was")
				assert.DeepEqual(t, workspace.Compare(before, f.snapshot(t)), []workspace.Difference(nil))
				assert.Equal(t, git(t, ws.Root, "status", "--porcelain=v2", "--branch"), status)
				return
			}
			assert.NilError(t, err)
			after := f.snapshot(t)
			for _, m := range g.Members {
				assert.Equal(t, after.Submodule(m.Submodule).Gitlink, m.To)
				assert.Equal(t, after.Submodule(m.Submodule).State, workspace.StateClean)
			}
			assert.Equal(t, git(t, ws.Root, "status", "--porcelain"), "")
			assert.Equal(t, git(t, ws.Root, "rev-list", "--count", before.Superproject.Head+"..HEAD"), "1")
		})
	}
}

// A kill at any step of apply (the test stops it dead after the step,
// leaving what a kill leaves) is undone by Recover from the journal: the
// workspace is as it was, no lock file stays, and the apply then succeeds.
// After the record step the apply had finished: Recover keeps it.
func TestApplyCrashRecovered(t *testing.T) {
	t.Parallel()
	for _, step := range []string{"checkout", "lock", "index", "commit", "record"} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			env := f.env(t, Config{Backend: Human})
			id := f.ids[0]
			_, err := Record(env, id, Approve, "", f.keys["alice"])
			assert.NilError(t, err)
			before := f.snapshot(t)
			status := git(t, f.ws.Root, "status", "--porcelain=v2", "--branch")
			lock, err := os.ReadFile(filepath.Join(f.ws.Root, "flake.lock"))
			assert.NilError(t, err)
			journal := filepath.Join(f.state, "apply-journal.json")
			req := ApplyRequest{Env: env, ID: id, Journal: journal, crashAt: step, Committer: gitrepo.Signature{Name: "op", Email: "op@node"}}
			_, err = Apply(context.Background(), req)
			assert.Assert(t, errors.Is(err, errCrashed), "%v", err)
			_, err = os.Stat(journal)
			assert.NilError(t, err, "the journal stays after a crash")

			if step == "lock" {
				// Killed while writing the index: its lock file stays.
				assert.NilError(t, os.WriteFile(filepath.Join(f.ws.Root, ".git", "index.lock"), []byte("half"), 0o644))
			}
			did, err := Recover(journal)
			assert.NilError(t, err)
			_, err = os.Stat(journal)
			assert.Assert(t, errors.Is(err, os.ErrNotExist), "the journal goes")
			_, err = os.Stat(filepath.Join(f.ws.Root, ".git", "index.lock"))
			assert.Assert(t, errors.Is(err, os.ErrNotExist), "the dead apply's lock file goes")
			if step == "record" {
				assert.Assert(t, strings.Contains(did, "had finished"), did)
				env.Snapshot = f.snapshot(t)
				st, err := EvaluateOne(env, id)
				assert.NilError(t, err)
				assert.Equal(t, st.State, StateApplied)
				return
			}
			assert.Assert(t, strings.Contains(did, "was undone"), did)
			assert.DeepEqual(t, workspace.Compare(before, f.snapshot(t)), []workspace.Difference(nil))
			assert.Equal(t, git(t, f.ws.Root, "status", "--porcelain=v2", "--branch"), status)
			after, err := os.ReadFile(filepath.Join(f.ws.Root, "flake.lock"))
			assert.NilError(t, err)
			assert.Equal(t, string(after), string(lock))
			env.Snapshot = f.snapshot(t)
			st, err := EvaluateOne(env, id)
			assert.NilError(t, err)
			assert.Equal(t, st.State, StateApproved)
			req.crashAt = ""
			_, err = Apply(context.Background(), req)
			assert.NilError(t, err)
			_, err = os.Stat(journal)
			assert.Assert(t, errors.Is(err, os.ErrNotExist))
		})
	}
}

// A decider's children go with it: one left running in the background
// (holding its output) is killed, and its decision still counts.
func TestDeciderChildrenDoNotSurvive(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child")
	bound, err := LoadBound(filepath.Join(f.state, "proposals"), f.ids[0])
	assert.NilError(t, err)
	raw, err := SignDecision(bound, Approve, "", Program, f.keys["alice"], now)
	assert.NilError(t, err)
	decision := filepath.Join(dir, "decision.json")
	assert.NilError(t, os.WriteFile(decision, raw, 0o644))
	script := fmt.Sprintf("sleep 300 & echo $! > %s; cat %s", pidFile, decision)
	env := f.env(t, Config{Backend: Program, Program: []string{"/bin/sh", "-c", script}})
	_, err = Decide(context.Background(), env, f.ids[0])
	assert.NilError(t, err)
	b, err := os.ReadFile(pidFile)
	assert.NilError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	assert.NilError(t, err)
	for i := 0; i < 100 && alive(pid); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	assert.Assert(t, !alive(pid), "the decider's child %d survived", pid)
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
