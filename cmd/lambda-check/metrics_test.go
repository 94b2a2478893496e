package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/lambda-os/lambda-check/internal/requires"
)

// A cycle with cycle.metricsFile writes its metrics where node_exporter's
// textfile collector reads them: the real promtool accepts them and a
// real node_exporter serves them; status says the same in a line.
func TestMetricsScrapedByNodeExporter(t *testing.T) {
	t.Parallel()
	promtool := requires.Tool(t, "promtool")
	exporter := requires.Tool(t, "prometheus-node-exporter")
	f := newCycleFixture(t, 2)
	textfiles := t.TempDir()
	prom := filepath.Join(textfiles, "lambda_check.prom")
	b, err := os.ReadFile(f.config)
	assert.NilError(t, err)
	cfg := strings.Replace(string(b), `"schemaVersion": 1,`, fmt.Sprintf(`"schemaVersion": 1, "cycle": {"metricsFile": %q},`, prom), 1)
	assert.NilError(t, os.WriteFile(f.config, []byte(cfg), 0o644))
	code, out, errs := f.run("cycle")
	assert.Assert(t, code == 0 || code == 3, out+errs)

	m, err := os.ReadFile(prom)
	assert.NilError(t, err)
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = strings.NewReader(string(m))
	res, err := check.CombinedOutput()
	assert.NilError(t, err, "promtool check metrics: %s\n%s", res, m)

	code, line, errs := f.run("status")
	assert.Equal(t, code, 0, errs)
	assert.Assert(t, strings.Contains(line, "last cycle"), line)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	addr := l.Addr().String()
	l.Close()
	ne := exec.Command(exporter, "--web.listen-address="+addr, "--collector.disable-defaults",
		"--collector.textfile", "--collector.textfile.directory="+textfiles)
	assert.NilError(t, ne.Start())
	t.Cleanup(func() { _ = ne.Process.Kill(); _ = ne.Wait() })
	var body string
	for i := 0; i < 200; i++ {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			bb, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(bb)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{"lambda_check_health ", "lambda_check_stage_ok{stage=\"verify\"", "lambda_check_modules_failing 0",
		"lambda_check_proposals_pending ", "lambda_check_audit_verified 1", "lambda_check_last_cycle_timestamp_seconds "} {
		assert.Assert(t, strings.Contains(body, want), "node_exporter does not serve %q:\n%s", want, body)
	}
	assert.Assert(t, strings.Contains(body, "\nnode_textfile_scrape_error 0\n"), "node_exporter could not read the file:\n%s", body)
}
