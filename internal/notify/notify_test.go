package notify

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"gotest.tools/v3/assert"
)

func healthy() *State {
	return &State{Health: "healthy", Failing: map[string]string{}, Regressions: map[string]string{},
		Proposals: map[string]string{}, Subjects: map[string]string{}, Audit: "ok"}
}

func TestDiff(t *testing.T) {
	t.Parallel()
	kinds := func(cs []Change) []string {
		out := []string{}
		for _, c := range cs {
			out = append(out, c.Kind+":"+c.Subject)
		}
		return out
	}
	assert.DeepEqual(t, kinds(Diff(nil, healthy())), []string{"watching:node"})
	assert.DeepEqual(t, kinds(Diff(healthy(), healthy())), []string{})

	// The audit log: fewer events than last seen, or the event last seen
	// replaced, is an alarm; a log that only grew is not.
	seen := healthy()
	seen.AuditSeq, seen.AuditHead = 10, "sha256:aa"
	shorter := healthy()
	shorter.AuditSeq, shorter.AuditHead = 7, "sha256:bb"
	assert.DeepEqual(t, kinds(Diff(seen, shorter)), []string{"audit-rewound:audit.jsonl"})
	grown := healthy()
	grown.AuditSeq, grown.AuditHead = 12, "sha256:cc"
	grown.AuditHas = func(seq int64, d string) bool { return seq == 10 && d == "sha256:aa" }
	assert.DeepEqual(t, kinds(Diff(seen, grown)), []string{})
	grown.AuditHas = func(int64, string) bool { return false }
	assert.DeepEqual(t, kinds(Diff(seen, grown)), []string{"audit-rewound:audit.jsonl"})

	broken := healthy()
	broken.Health = "degraded"
	broken.Failing["chat_module"] = "crashed (SIGSEGV)"
	broken.Regressions["chat_module"] = "r-123"
	broken.Proposals["u-1"] = "pending"
	broken.Audit, broken.AuditDetail = "fail", "line 7: digest mismatch"
	assert.DeepEqual(t, kinds(Diff(healthy(), broken)), []string{
		"health:node", "module-failing:chat_module", "rollback:chat_module", "audit:audit.jsonl", "proposal-new:u-1"})
	assert.DeepEqual(t, kinds(Diff(broken, broken)), []string{})

	healed := healthy()
	healed.Proposals["u-1"] = "applied"
	assert.DeepEqual(t, kinds(Diff(broken, healed)), []string{
		"proposal-applied:u-1", "health:node", "module-recovered:chat_module", "audit:audit.jsonl"})
}

// server records requests and answers with the scripted responses.
type server struct {
	mu       sync.Mutex
	requests []*http.Request
	bodies   [][]byte
	script   []func(w http.ResponseWriter)
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	i := len(s.requests)
	s.requests, s.bodies = append(s.requests, r), append(s.bodies, b)
	s.mu.Unlock()
	if i < len(s.script) {
		s.script[i](w)
		return
	}
	io.WriteString(w, `{"ok":true,"result":{}}`)
}

func secret(t *testing.T, v string) string {
	p := filepath.Join(t.TempDir(), "secret")
	assert.NilError(t, os.WriteFile(p, []byte(v+"\n"), 0o600))
	return p
}

func TestTelegram(t *testing.T) {
	t.Parallel()
	s := &server{script: []func(http.ResponseWriter){
		func(w http.ResponseWriter) {
			w.WriteHeader(429)
			io.WriteString(w, `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 1","parameters":{"retry_after":1}}`)
		},
		func(w http.ResponseWriter) { w.WriteHeader(502) },
	}}
	ts := httptest.NewServer(s)
	defer ts.Close()
	tg := &Telegram{APIBase: ts.URL + "/", TokenFile: secret(t, "123:ABC"), ChatID: "-10042", Client: ts.Client()}
	m := &Message{Node: "node<1>", Health: "degraded", Severity: Critical, Reasons: []string{"verify: 1 of 3 fail"},
		Changes: []Change{{Kind: "module-failing", Subject: "a_b<c>&d", Text: "module a_b<c>&d fails verification: crashed", Severity: Critical}}}
	start := time.Now()
	n, err := tg.Send(context.Background(), m)
	assert.NilError(t, err)
	assert.Equal(t, n, 3)
	assert.Assert(t, time.Since(start) >= time.Second, "retry_after was honoured")
	for _, r := range s.requests {
		assert.Equal(t, r.Method, "POST")
		assert.Equal(t, r.URL.Path, "/bot123:ABC/sendMessage")
		assert.Equal(t, r.Header.Get("Content-Type"), "application/json")
	}
	var body map[string]any
	assert.NilError(t, json.Unmarshal(s.bodies[2], &body))
	assert.Equal(t, body["chat_id"], "-10042")
	assert.Equal(t, body["parse_mode"], "HTML")
	assert.Equal(t, body["text"], "🛑 <b>lambda-check</b> · <code>node&lt;1&gt;</code>\n<b>health: degraded</b>\n"+
		"• module a_b&lt;c&gt;&amp;d fails verification: crashed\n<i>why:</i> verify: 1 of 3 fail")

	// A refused request is an error that never shows the token.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
		io.WriteString(w, `{"ok":false,"error_code":401,"description":"Unauthorized"}`)
	}))
	defer bad.Close()
	tg.APIBase = bad.URL
	n, err = tg.Send(context.Background(), m)
	assert.ErrorContains(t, err, "HTTP 401")
	assert.Equal(t, n, 1)
	assert.Assert(t, !strings.Contains(err.Error(), "ABC"))

	// A server asking to wait past the timeout is given up on at once.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(429)
		io.WriteString(w, `{"ok":false,"parameters":{"retry_after":600}}`)
	}))
	defer slow.Close()
	tg.APIBase = slow.URL
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = tg.Send(ctx, m)
	assert.ErrorContains(t, err, "beyond the channel's timeout")
}

func TestTelegramLongMessage(t *testing.T) {
	t.Parallel()
	m := &Message{Node: "n", Health: "degraded"}
	for i := 0; i < 400; i++ {
		m.Changes = append(m.Changes, Change{Text: strings.Repeat("<x>", 5)})
	}
	s := TelegramHTML(m)
	assert.Assert(t, len([]rune(s)) <= telegramLimit)
	assert.Assert(t, strings.HasSuffix(s, "\n…"))
}

func TestWebhook(t *testing.T) {
	t.Parallel()
	var got []byte
	var sig string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		sig = r.Header.Get(SignatureHeader)
	}))
	defer ts.Close()
	wh := &Webhook{URL: ts.URL + "/hook", SecretFile: secret(t, "s3cret"), Client: ts.Client()}
	m := &Message{Node: "n", Health: "healthy", Severity: Info, Changes: []Change{{Kind: "health", Subject: "node", Text: "health degraded → healthy", Severity: Info}}}
	_, err := wh.Send(context.Background(), m)
	assert.NilError(t, err)
	assert.Equal(t, sig, Sign([]byte("s3cret"), got))
	var body map[string]any
	assert.NilError(t, json.Unmarshal(got, &body))
	assert.Equal(t, body["title"], "health degraded → healthy")
	assert.Equal(t, body["health"], "healthy")
}

// fake counts sends and fails while failing is set.
type fake struct {
	sent    []*Message
	failing bool
}

func (f *fake) Send(_ context.Context, m *Message) (int, error) {
	if f.failing {
		return 1, io.ErrUnexpectedEOF
	}
	f.sent = append(f.sent, m)
	return 1, nil
}

func TestRunOnChangesOnly(t *testing.T) {
	t.Parallel()
	a, b := &fake{}, &fake{failing: true}
	targets := []Target{{Name: "a", Type: "webhook", Channel: a}, {Name: "b", Type: "webhook", Channel: b}}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	var mem *Memory
	round := func(st *State) *Record {
		var rec *Record
		rec, mem = Run(context.Background(), Request{Node: "n", Now: now, State: st, Targets: targets, Memory: mem, DigestEvery: 24 * time.Hour})
		now = now.Add(5 * time.Minute)
		return rec
	}
	rec := round(healthy())
	assert.Equal(t, rec.Deliveries[0].Status, "sent")
	assert.Equal(t, rec.Deliveries[1].Status, "failed")
	assert.Equal(t, rec.Failed(), 1)
	for i := 0; i < 10; i++ {
		rec = round(healthy())
		assert.Equal(t, rec.Deliveries[0].Status, "quiet")
	}
	assert.Equal(t, len(a.sent), 1)
	// The channel that failed is told again once it works.
	b.failing = false
	rec = round(healthy())
	assert.Equal(t, rec.Deliveries[1].Status, "sent")
	assert.Equal(t, b.sent[0].Changes[0].Kind, "watching")
	// A digest once the period has passed, then quiet again.
	now = now.Add(24 * time.Hour)
	rec = round(healthy())
	assert.Equal(t, rec.Deliveries[0].Status, "sent")
	assert.Assert(t, a.sent[1].Digest)
	assert.Equal(t, round(healthy()).Deliveries[0].Status, "quiet")
}

func TestDesktopOnSessionBus(t *testing.T) {
	t.Parallel()
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dbus-daemon is required in CI (.ci/run installs dbus)")
		}
		t.Skip("dbus-daemon is not installed")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "session.conf")
	assert.NilError(t, os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:dir=`+dir+`</listen>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy></busconfig>`), 0o644))
	cmd := exec.Command(daemon, "--config-file="+conf, "--nofork", "--nopidfile", "--print-address=1")
	out, err := cmd.StdoutPipe()
	assert.NilError(t, err)
	assert.NilError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	assert.NilError(t, err)
	addr = strings.TrimSpace(addr)

	// A notification server, as a desktop session has.
	srv, err := dbus.Dial(addr)
	assert.NilError(t, err)
	defer srv.Close()
	assert.NilError(t, srv.Auth(nil))
	assert.NilError(t, srv.Hello())
	got := make(chan []any, 1)
	l := &listener{got: got}
	assert.NilError(t, srv.Export(l, "/org/freedesktop/Notifications", "org.freedesktop.Notifications"))
	reply, err := srv.RequestName("org.freedesktop.Notifications", dbus.NameFlagDoNotQueue)
	assert.NilError(t, err)
	assert.Equal(t, reply, dbus.RequestNameReplyPrimaryOwner)

	d := &Desktop{Bus: addr}
	m := &Message{Node: "n", Health: "degraded", Severity: Critical,
		Changes: []Change{{Kind: "rollback", Subject: "chat", Text: "module chat<x> regressed; rollback proposal r-1", Severity: Critical}}}
	_, err = d.Send(context.Background(), m)
	assert.NilError(t, err)
	select {
	case args := <-got:
		assert.Equal(t, args[0], "lambda-check")
		assert.Equal(t, args[1], "lambda-check: module chat<x> regressed; rollback proposal r-1")
		assert.Equal(t, args[2], "• module chat&lt;x&gt; regressed; rollback proposal r-1")
		assert.Equal(t, args[3], byte(2))
	case <-time.After(10 * time.Second):
		t.Fatal("no notification arrived")
	}

	// No bus: a clear error.
	_, err = (&Desktop{}).Send(context.Background(), m)
	assert.ErrorContains(t, err, "no D-Bus session bus")
}

type listener struct{ got chan []any }

func (l *listener) Notify(app string, replaces uint32, icon, summary, body string, actions []string, hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	u, _ := hints["urgency"].Value().(byte)
	l.got <- []any{app, summary, body, u}
	return 1, nil
}

// A token that is not a Bot API token (a control character in it, say) is
// refused without ever being shown.
func TestTelegramBadTokenNotShown(t *testing.T) {
	for _, tok := range []string{"123:AB\x7fC", "123:AB\tC", "nocolon", "12a:B", "123:AB%C"} {
		tg := &Telegram{APIBase: "http://127.0.0.1:1/", TokenFile: secret(t, tok), ChatID: "1"}
		_, err := tg.Send(context.Background(), &Message{Node: "x"})
		if err == nil || !strings.Contains(err.Error(), "is not a Bot API token") || strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), "AB") {
			t.Errorf("token %q: %v", tok, err)
		}
	}
}
