package plan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/flake"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// ErrNoLock: the workspace has no flake.lock to build a graph from.
var ErrNoLock = errors.New("the workspace has no flake.lock")

// GraphRequest says which workspace's graph to build.
type GraphRequest struct {
	Workspace string
	// Exclude are infrastructure patterns (see flake.GraphOptions).
	Exclude []string
	// Evaluator reads flake.nix's declared inputs; nil skips that, with
	// Why saying why.
	Evaluator flake.Evaluator
	Why       string
}

// GraphView is a workspace's dependency graph with what flake.nix declares
// where it could be evaluated.
type GraphView struct {
	FlakeLock workspace.FileDigest `json:"flakeLock"`
	flake.Graph
	FlakeNix flake.Evaluation `json:"flakeNix"`
	// Stale lists where flake.lock does not record what flake.nix declares.
	Stale []flake.Staleness `json:"stale"`
}

// LoadGraph reads a workspace's flake.lock (and flake.nix's inputs, when it
// can) and builds the graph.
func LoadGraph(ctx context.Context, req GraphRequest) (*GraphView, error) {
	p := filepath.Join(req.Workspace, "flake.lock")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (%q)", ErrNoLock, req.Workspace)
	}
	if err != nil {
		return nil, fmt.Errorf("read flake.lock: %w", err)
	}
	l, err := flake.ParseLock(b)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", p, err)
	}
	g, err := flake.NewGraph(l, flake.GraphOptions{Exclude: req.Exclude})
	if err != nil {
		return nil, fmt.Errorf("%q: %w", p, err)
	}
	v := &GraphView{FlakeLock: workspace.FileDigest{Path: "flake.lock", Digest: artifact.Digest(b)}, Graph: *g, Stale: []flake.Staleness{}}
	nix := filepath.Join(req.Workspace, "flake.nix")
	if _, err := os.Stat(nix); err != nil {
		v.FlakeNix = flake.Evaluation{Note: "the workspace has no flake.nix"}
		return v, nil
	}
	decl, e := flake.EvaluateInputs(ctx, req.Evaluator, nix, req.Why)
	v.FlakeNix = e
	if decl != nil {
		if s := l.CompareDeclared(decl); s != nil {
			v.Stale = s
		}
	}
	return v, nil
}

// RootInputs returns every root input name in the graph, sorted.
func (v *GraphView) RootInputs() []string {
	var out []string
	for _, n := range v.Nodes {
		out = append(out, n.Inputs...)
	}
	return uniqueSorted(out)
}
