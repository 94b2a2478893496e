package workflow

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/stage/cycle"
	"github.com/lambda-os/lambda-check/internal/stage/heal"
	"github.com/lambda-os/lambda-check/internal/stage/propose"
	"github.com/lambda-os/lambda-check/internal/stage/verify"
)

// Node is what a node's state directory says about it: the one read model
// the report and the notifications are made from. Parts that are absent or
// unreadable are nil (a missing cycle.json means no cycle has run).
type Node struct {
	// Cycle is the last cycle's summary; Cycles the health history.
	Cycle  *cycle.Summary
	Cycles []cycle.HistoryEntry
	// Verify and Heal are the last verify.json and heal.json.
	Verify *verify.Report
	Heal   *heal.Report
	// VerifyHistory is every module's verdict in every verify run.
	VerifyHistory []HistoryEntry
	// Proposals with their status against the workspace, and their
	// governance state where there is a key registry.
	Proposals  []propose.Listed
	Governance map[string]string
}

// ProposalState is a proposal's state as people should see it: its
// governance state where there is one, else its status.
func (n *Node) ProposalState(l propose.Listed) string {
	if l.Proposal != nil {
		if g := n.Governance[l.Proposal.ID]; g != "" {
			return g
		}
	}
	return l.Status
}

// ReadNode reads the node's state directory, with the workspace as snap
// shows it (nil: as it is now). Only an unreadable history or cycle.json
// is an error: the report must not pass over a damaged record.
func ReadNode(ctx context.Context, e *Env, snap *Snap) (*Node, error) {
	if err := e.Open(); err != nil {
		return nil, err
	}
	n := &Node{}
	hist, _, err := cycle.ReadHistory(e.File(CyclesFile))
	if err != nil {
		return nil, exitcode.Input(fmt.Errorf("read %s: %w", CyclesFile, err), "")
	}
	n.Cycles = hist
	cenv, _, err := artifact.Read[cycle.Summary](e.File("cycle.json"), cycle.Spec)
	switch {
	case err == nil:
		n.Cycle = &cenv.Payload
	case !errors.Is(err, fs.ErrNotExist):
		return nil, exitcode.Input(fmt.Errorf("read cycle.json: %w", err), "")
	}
	if env, _, err := artifact.Read[verify.Report](e.File("verify.json"), verify.Spec); err == nil {
		n.Verify = &env.Payload
	}
	if env, _, err := artifact.Read[heal.Report](e.File("heal.json"), heal.Spec); err == nil {
		n.Heal = &env.Payload
	}
	n.VerifyHistory, _, _ = ReadHistory(e.File(HistoryFile))
	if snap == nil {
		if s, err := CurrentSnapshot(ctx, e); err == nil {
			snap = s
		}
	}
	if snap != nil {
		if ls, err := Proposals(ctx, e, snap); err == nil {
			n.Proposals = ls
			n.Governance = GovernanceStates(ctx, e, snap)
		}
	}
	return n, nil
}
