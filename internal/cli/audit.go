package cli

import (
	"github.com/lambda-os/lambda-check/internal/audit"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/workflow"
)

// AuditCmd is "lambda-check audit".
type AuditCmd struct {
	Verify     AuditVerifyCmd     `cmd:"" help:"Check the whole log: every line, the chain, the checkpoints."`
	Tail       AuditTailCmd       `cmd:"" help:"Print the last events."`
	Show       AuditShowCmd       `cmd:"" help:"Print one event."`
	Export     AuditExportCmd     `cmd:"" help:"Write a sidecar index linking every event to its digest and offset."`
	Checkpoint AuditCheckpointCmd `cmd:"" help:"Sign the log's head with a checkpoint key."`
	Publish    AuditPublishCmd    `cmd:"" help:"Publish the log since the last publication, with a signed checkpoint, to Codex."`
}

// AuditVerifyCmd is "lambda-check audit verify".
type AuditVerifyCmd struct {
	FromCodex string `name:"from-codex" placeholder:"CID" help:"Verify the log published under this CID instead of the local one."`
	Codex     string `placeholder:"URL" help:"The Codex node's API URL (with --from-codex)."`
}

// Help is shown by "lambda-check audit verify --help".
func (c *AuditVerifyCmd) Help() string {
	return `Reads the whole audit log and checks every line's digest, that each line's
prev is the digest of the line before and its seq the next number, and every
signed checkpoint (in the log, in <state-dir>/checkpoints/, or in the
publications): an edited, inserted, deleted, reordered or truncated line is
found and the first bad one named (exit 3). Checkpoint signatures are checked
against the key registry ("keys" in the config) when there is one.`
}

// Run verifies.
func (c *AuditVerifyCmd) Run(rt *Runtime) error {
	e, err := rt.ReadWorkflow()
	if err != nil {
		return err
	}
	res, err := workflow.AuditVerify(rt.Ctx, e, c.FromCodex, c.Codex)
	if err != nil {
		return err
	}
	rep := res.Report
	if rt.Globals.JSON {
		if err := rt.PrintJSON(rep); err != nil {
			return err
		}
	} else {
		if rep.Problem == nil {
			rt.Printf("audit: %s verifies: %d events, head %s\n", res.Source, rep.Events, rep.Head)
		} else {
			rt.Printf("audit: %s does NOT verify: %s\n", res.Source, rep.Problem)
		}
		for _, cp := range rep.Checkpoints {
			rt.Printf("  checkpoint seq %d by %s (%s): %s\n", cp.Seq, cp.Signer, cp.Where, cp.Signature)
		}
		for _, n := range rep.Notes {
			rt.Logf("note: %s", n)
		}
	}
	return workflow.AuditVerdict(rep)
}

// AuditTailCmd is "lambda-check audit tail".
type AuditTailCmd struct {
	N int `short:"n" default:"10" help:"How many events."`
}

// Run prints the last events.
func (c *AuditTailCmd) Run(rt *Runtime) error {
	e, err := rt.ReadWorkflow()
	if err != nil {
		return err
	}
	lines, err := workflow.AuditLines(e, c.N)
	if err != nil {
		return err
	}
	for _, l := range lines {
		if rt.Globals.JSON {
			rt.Printf("%s\n", l)
			continue
		}
		e, err := audit.Decode(l)
		if err != nil {
			rt.Printf("(bad line: %v)\n", err)
			continue
		}
		renderEvent(rt, e)
	}
	return nil
}

func renderEvent(rt *Runtime, e *audit.Event) {
	out := ""
	if e.Output != nil {
		out = " → " + e.Output.Kind + " " + short(e.Output.Digest[7:])
	}
	detail := ""
	if e.Detail != "" {
		detail = ": " + e.Detail
	}
	rt.Printf("%6d  %s  %-10s %-5s %s%s%s\n", e.Seq, e.Time, e.Stage, e.Result, e.Actor, out, detail)
}

// AuditShowCmd is "lambda-check audit show".
type AuditShowCmd struct {
	Seq int64 `arg:"" help:"The event's sequence number."`
}

// Run prints one event.
func (c *AuditShowCmd) Run(rt *Runtime) error {
	e, err := rt.ReadWorkflow()
	if err != nil {
		return err
	}
	ev, err := workflow.AuditEvent(e, c.Seq)
	if err != nil {
		return err
	}
	return rt.PrintData(ev)
}

// AuditExportCmd is "lambda-check audit export".
type AuditExportCmd struct {
	Out string `placeholder:"FILE" help:"Where to write the index (default: <state-dir>/audit.index.json)."`
}

// Run writes the sidecar index, under the lock: no event is appended
// between the log's digest and its lines.
func (c *AuditExportCmd) Run(rt *Runtime) error {
	e, release, err := rt.Lock()
	if err != nil {
		return err
	}
	defer release()
	outp, err := outFile(rt, c.Out)
	if err != nil {
		return err
	}
	out, index, err := workflow.AuditExport(e, outp)
	if err != nil {
		return err
	}
	rt.Logf("wrote %s: %d events", out, len(index.Entries))
	return nil
}

// AuditCheckpointCmd is "lambda-check audit checkpoint".
type AuditCheckpointCmd struct {
	Key string `required:"" placeholder:"FILE" help:"A private key file whose registry entry has the checkpoint role."`
}

// Run signs the head.
func (c *AuditCheckpointCmd) Run(rt *Runtime) error {
	k, err := sign.ReadPrivateKey(rt.Abs(c.Key))
	if err != nil {
		return exitcode.Input(err, "")
	}
	e, release, err := rt.Lock()
	if err != nil {
		return err
	}
	defer release()
	cp, err := workflow.Checkpoint(e, k)
	if err != nil {
		return err
	}
	rt.Printf("checkpoint: seq %d, head %s, signed by %s\n", cp.Seq, cp.Head, cp.Signer)
	return nil
}

// AuditPublishCmd is "lambda-check audit publish".
type AuditPublishCmd struct {
	Codex string `required:"" placeholder:"URL" help:"The Codex node's API URL, e.g. http://127.0.0.1:8080."`
	Key   string `required:"" placeholder:"FILE" help:"The checkpoint key that signs what is published."`
}

// Help is shown by "lambda-check audit publish --help".
func (c *AuditPublishCmd) Help() string {
	return `Signs a checkpoint of the log's head, uploads the lines since the last
publication (the segment) and a manifest naming the segment, its digest, the
checkpoint and the previous manifest's CID to a Codex node
(POST /api/codex/v1/data), and records the manifest's CID in the log. The
last CID reaches the whole log: 'audit verify --from-codex CID --codex URL'
downloads and verifies it.`
}

// Run publishes.
func (c *AuditPublishCmd) Run(rt *Runtime) error {
	k, err := sign.ReadPrivateKey(rt.Abs(c.Key))
	if err != nil {
		return exitcode.Input(err, "")
	}
	e, release, err := rt.Lock()
	if err != nil {
		return err
	}
	defer release()
	p, err := workflow.Publish(rt.Ctx, e, c.Codex, k)
	if err != nil {
		return err
	}
	if rt.Globals.JSON {
		return rt.PrintJSON(p)
	}
	rt.Printf("published seq %d..%d to %s: %s\n", p.FromSeq, p.ToSeq, c.Codex, p.CID)
	rt.Printf("verify with: lambda-check audit verify --from-codex %s --codex %s\n", p.CID, c.Codex)
	return nil
}
