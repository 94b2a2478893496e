package report

import (
	"bytes"
	"context"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/stage/cycle"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func entry(at time.Duration, health string) cycle.HistoryEntry {
	f := t0.Add(at).Format(time.RFC3339Nano)
	return cycle.HistoryEntry{Started: f, Finished: f, Health: health}
}

func TestUptimeIsMeasuredInTime(t *testing.T) {
	t.Parallel()
	// Many quick healthy cycles, then one degraded cycle that holds for
	// an hour of five-minute cycles: by count the node is mostly
	// healthy, by time it is mostly degraded.
	var h []cycle.HistoryEntry
	for i := 0; i < 30; i++ {
		h = append(h, entry(time.Duration(i)*10*time.Second, cycle.Healthy))
	}
	for i := 0; i < 12; i++ {
		h = append(h, entry(5*time.Minute+time.Duration(i)*5*time.Minute, cycle.Degraded))
	}
	now := t0.Add(60 * time.Minute)
	spans := Timeline(h, t0, now, 15*time.Minute)
	u := UptimeOf("1h", spans)
	assert.Assert(t, u.Degraded > 0.9, "%+v", u)
	assert.Assert(t, u.Healthy < 0.1, "%+v", u)
	assert.Equal(t, u.NoData, 0.0)

	// A gap beyond the staleness counts as no data, not as the last health.
	h = []cycle.HistoryEntry{entry(0, cycle.Healthy), entry(time.Minute, cycle.Healthy), entry(61*time.Minute, cycle.Degraded)}
	spans = Timeline(h, t0, t0.Add(62*time.Minute), 3*time.Minute)
	assert.DeepEqual(t, healths(spans), []string{"healthy", "none", "degraded"})
	assert.Equal(t, spans[0].To, t0.Add(4*time.Minute))
	u = UptimeOf("x", spans)
	assert.Equal(t, u.Observed, "5m0s")
	assert.Assert(t, u.Healthy > 0.79 && u.Healthy < 0.81, "%+v", u)

	// Before the first cycle: no data.
	spans = Timeline(h[:1], t0.Add(-time.Hour), t0.Add(time.Minute), time.Hour)
	assert.DeepEqual(t, healths(spans), []string{"none", "healthy"})
	assert.DeepEqual(t, healths(Timeline(nil, t0, t0.Add(time.Hour), time.Hour)), []string{"none"})
	assert.Equal(t, StaleAfter(h), 3*time.Hour) // three times the median gap (1m, 60m)
}

func healths(s []Span) []string {
	out := []string{}
	for _, x := range s {
		out = append(out, x.Health)
	}
	return out
}

func sample() *Report {
	h := []cycle.HistoryEntry{entry(0, cycle.Healthy), entry(5*time.Minute, cycle.Healthy), entry(10*time.Minute, cycle.Degraded)}
	now := t0.Add(15 * time.Minute)
	spans := Timeline(h, t0, now, 15*time.Minute)
	return &Report{
		Node: "/srv/logos-workspace", Generated: now.Format(time.RFC3339), Health: cycle.Degraded, Since: h[2].Finished,
		Reasons: []string{"verify: 1 of 3 modules fail", "policy: fail: 1 deny, 0 warn — lock-drift repos/logos-wallet-module: the gitlink is newer: nix flake lock --override-input logos-wallet-module 'git+file:///srv/remotes/logos-wallet-module.git?ref=master&rev=09a6355569f24b52d69f4b4729a0b3ba7460cf23'"}, Cycles: 3,
		LastCycle: &cycle.Summary{Finished: h[2].Finished, DurationMs: 812, Health: cycle.Degraded, Exit: 3,
			Stages: []cycle.StageResult{{Name: "snapshot", Status: "ok", Detail: "5 submodules"}, {Name: "verify", Status: "fail", Detail: "fail: 2 of 3 modules pass"}}},
		Uptime:   []Uptime{UptimeOf("24h", spans)},
		Timeline: spans,
		Modules: []Module{{Name: "chat<sdk>_module", Verdict: "fail", Reason: "crashed-in-constructor: SIGSEGV while the plugin was loaded (its constructor or a static initializer)", Runs: 3, Passed: 2,
			History: []string{"pass", "pass", "fail"}, Submodule: "repos/logos-chat-module", Gitlink: strings.Repeat("c", 40),
			URL: CommitURL(WebURL("git@github.com:logos-co/logos-chat-module.git"), strings.Repeat("c", 40))},
			{Name: "waku_module", Verdict: "pass", Runs: 3, Passed: 3, History: []string{"pass", "pass", "pass"}}},
		Proposals: []Proposal{{ID: "rb-logos-chat-module-066c81dc2b55-188c1573a2", Kind: "rollback", Submodule: "repos/logos-chat-module", From: strings.Repeat("a", 40), To: strings.Repeat("b", 40), State: "pending",
			Command: "lambda-check governance approve rb-logos-chat-module-066c81dc2b55-188c1573a2",
			URL:     CompareURL(WebURL("git@github.com:logos-co/logos-chat-module.git"), strings.Repeat("a", 40), strings.Repeat("b", 40))}},
		Upgrades: []Upgrade{{Submodule: "repos/logos-waku-module", Branch: "master", Pin: strings.Repeat("d", 40), Head: strings.Repeat("e", 40), Behind: 7,
			URL: CompareURL(WebURL("https://github.com/logos-co/logos-waku-module.git"), strings.Repeat("d", 40), strings.Repeat("e", 40))}},
		Stale:    true,
		Events:   []Event{{Seq: 9, Time: h[2].Finished, Stage: "cycle", Result: "fail", Detail: "degraded in 812ms"}},
		Failures: []Failure{{Time: h[2].Finished, Module: "chat<sdk>_module", Reason: "crashed"}},
		Audit:    "ok",
	}
}

func TestHTMLIsSelfContained(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	assert.NilError(t, HTML(&b, sample()))
	s := b.String()
	assert.Assert(t, strings.Contains(s, `<svg id="timeline"`))
	assert.Assert(t, strings.Contains(s, "chat&lt;sdk&gt;_module"), "values are escaped")
	for _, bad := range []string{"<script", "src=", "@import", "url("} {
		assert.Assert(t, !strings.Contains(s, bad), "external or active content: %s", bad)
	}
	// Links go upstream only: a commit, a compare view.
	for _, m := range regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(s, -1) {
		assert.Assert(t, strings.HasPrefix(m[1], "https://github.com/logos-co/"), "link %s", m[1])
	}
	assert.Assert(t, strings.Contains(s, `href="https://github.com/logos-co/logos-chat-module/compare/`+strings.Repeat("a", 40)+"..."+strings.Repeat("b", 40)+`"`))
	assert.Assert(t, strings.Contains(s, "lambda-check governance approve rb-logos-chat-module-"))
	assert.Assert(t, strings.Contains(s, `id="stale"`) && strings.Contains(s, `id="upgrades"`))
	var text bytes.Buffer
	Text(&text, sample())
	assert.Assert(t, strings.Contains(text.String(), "node /srv/logos-workspace: DEGRADED since "))
}

// TestHTMLInChromium renders the page in a real headless browser: it must
// load without console errors, have its content in the DOM, and give a
// screenshot (kept in $LAMBDA_CHECK_ARTIFACTS when set, for review).
func TestHTMLInChromium(t *testing.T) {
	t.Parallel()
	browser := ""
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is required in CI (.ci/run installs it)")
		}
		t.Skip("chromium is not installed")
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	var b bytes.Buffer
	assert.NilError(t, HTML(&b, sample()))
	assert.NilError(t, os.WriteFile(page, b.Bytes(), 0o644))
	out := dir
	if a := os.Getenv("LAMBDA_CHECK_ARTIFACTS"); a != "" {
		out = a
		assert.NilError(t, os.MkdirAll(out, 0o755))
	}
	shot := filepath.Join(out, "report.png")
	run := func(args ...string) (string, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, browser, append([]string{"--headless", "--no-sandbox", "--disable-gpu",
			"--no-first-run", "--user-data-dir=" + filepath.Join(dir, "profile"), "--enable-logging=stderr", "--v=0"}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+dir)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		assert.NilError(t, err, stderr.String())
		return stdout.String(), stderr.String()
	}
	dom, logs := run("--dump-dom", "file://"+page)
	assert.Assert(t, strings.Contains(dom, `id="health"`), dom)
	assert.Assert(t, strings.Contains(dom, "DEGRADED"))
	assert.Assert(t, strings.Contains(dom, "<rect"))
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "CONSOLE") || strings.Contains(l, "Uncaught") || strings.Contains(l, "net::ERR") {
			t.Errorf("browser console: %s", l)
		}
	}
	// On a 400 px phone the page fits its width and no text is smaller
	// than 11 px: measured in a 400 px wide frame (a headless window is
	// never narrower than 500 px) by a probe page of the same origin.
	probe := `<!DOCTYPE html><html><body><iframe id="f" src="/report.html" width="400" height="3000" style="border:0"></iframe>
<script>
document.getElementById("f").onload = function () {
  var d = this.contentDocument, w = this.contentWindow, min = 100;
  d.querySelectorAll("body *").forEach(function (e) {
    if ([].some.call(e.childNodes, function (n) { return n.nodeType === 3 && n.textContent.trim(); }) && e.getClientRects().length) {
      min = Math.min(min, parseFloat(w.getComputedStyle(e).fontSize));
    }
  });
  document.body.setAttribute("data-sw", d.documentElement.scrollWidth);
  document.body.setAttribute("data-vw", w.innerWidth);
  document.body.setAttribute("data-minfont", min);
};
</script></body></html>`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Path == "/report.html" {
			_, _ = w.Write(b.Bytes())
			return
		}
		_, _ = io.WriteString(w, probe)
	}))
	defer srv.Close()
	pdom, _ := run("--virtual-time-budget=5000", "--dump-dom", srv.URL+"/probe.html")
	attr := func(name string) float64 {
		m := regexp.MustCompile(name + `="([0-9.]+)"`).FindStringSubmatch(pdom)
		assert.Assert(t, m != nil, "no %s in the probe's DOM: %s", name, pdom)
		v, err := strconv.ParseFloat(m[1], 64)
		assert.NilError(t, err)
		return v
	}
	sw, vw, minFont := attr("data-sw"), attr("data-vw"), attr("data-minfont")
	t.Logf("in a %v px wide frame: page %v px wide, smallest text %v px", vw, sw, minFont)
	assert.Assert(t, vw == 400 && sw <= vw, "the page is %v px wide in a %v px frame", sw, vw)
	assert.Assert(t, minFont >= 11, "text of %v px", minFont)

	run("--hide-scrollbars", "--window-size=1280,1400", "--screenshot="+shot, "file://"+page)
	f, err := os.Open(shot)
	assert.NilError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	assert.NilError(t, err)
	assert.Equal(t, img.Bounds().Dx(), 1280)
	// The page is not blank: the degraded badge's red is in the picture.
	red := false
	for y := 0; y < 120 && !red; y++ {
		for x := 0; x < 600 && !red; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			red = r>>8 > 180 && g>>8 < 80 && bl>>8 < 80
		}
	}
	assert.Assert(t, red, "no degraded badge in the screenshot")
	t.Logf("screenshot: %s", shot)
}
