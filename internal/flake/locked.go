package flake

import (
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/lambda-os/lambda-check/internal/gitrepo"
)

// ArchiveOptionsFor returns how Nix exports a tree for an input type. Nix
// 2.8 fetches "git" inputs with "git archive" and "github" inputs as
// GitHub's tarball (itself "git archive"): both honour export-ignore and
// turn a submodule into an empty directory.
func ArchiveOptionsFor(inputType string) (gitrepo.ArchiveOptions, error) {
	switch inputType {
	case "git", "github":
		return gitrepo.ArchiveOptions{ExportIgnore: true}, nil
	default:
		return gitrepo.ArchiveOptions{}, fmt.Errorf("input type %q is not computed from a git tree", inputType)
	}
}

// LockGit returns the locked attributes Nix writes for a git input at rev:
// lastModified (committer time), narHash, ref, rev, revCount, type, url.
func LockGit(r *gitrepo.Repo, rev plumbing.Hash, url, ref string) (Attrs, error) {
	ci, nh, err := treeOf(r, rev, "git")
	if err != nil {
		return nil, err
	}
	a := Attrs{
		"lastModified": ci.LastModified,
		"narHash":      nh,
		"rev":          rev.String(),
		"revCount":     int64(ci.RevCount),
		"type":         "git",
		"url":          url,
	}
	if ref != "" {
		a["ref"] = ref
	}
	return a, nil
}

// LockGitHub returns the locked attributes Nix writes for a github input at
// rev: lastModified, narHash, owner, repo, rev, type.
func LockGitHub(r *gitrepo.Repo, rev plumbing.Hash, owner, repo string) (Attrs, error) {
	ci, nh, err := treeOf(r, rev, "github")
	if err != nil {
		return nil, err
	}
	return Attrs{
		"lastModified": ci.LastModified,
		"narHash":      nh,
		"owner":        owner,
		"repo":         repo,
		"rev":          rev.String(),
		"type":         "github",
	}, nil
}

// treeOf reads rev's commit data and the narHash of its tree as exported for
// inputType.
func treeOf(r *gitrepo.Repo, rev plumbing.Hash, inputType string) (gitrepo.CommitInfo, string, error) {
	opts, err := ArchiveOptionsFor(inputType)
	if err != nil {
		return gitrepo.CommitInfo{}, "", err
	}
	// Only git inputs record revCount: a github input's history is not
	// walked.
	ci, err := r.CommitTime(rev)
	if inputType == "git" && err == nil {
		ci, err = r.Commit(rev)
	}
	if err != nil {
		return gitrepo.CommitInfo{}, "", err
	}
	nh, err := r.NarHash(rev, opts)
	return ci, nh, err
}
