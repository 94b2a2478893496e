// Package workspace is the model of a Logos workspace: a git superproject
// whose submodules under repos/ are pinned by gitlinks and, again, by the
// flake.lock. It holds the snapshot artifact's payload, which every later
// stage reads.
package workspace

import (
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lambda-os/lambda-check/internal/artifact"
)

// SnapshotSpec identifies the snapshot artifact.
var SnapshotSpec = artifact.Spec{Kind: artifact.KindPrefix + "snapshot", Version: 1}

// Submodule states, in order of precedence: a submodule is in the first state
// that applies.
const (
	// StateMissing: declared or recorded, but its directory does not exist,
	// or declared in .gitmodules without a gitlink in the index.
	StateMissing = "missing"
	// StateUninitialized: the directory exists but holds no checkout.
	StateUninitialized = "uninitialized"
	// StateCheckoutDiffers: the checked-out commit is not the gitlink.
	StateCheckoutDiffers = "checkout-differs"
	// StateDirty: staged, modified or untracked files in the checkout.
	StateDirty = "dirty"
	// StateClean: checked out at the gitlink with nothing changed.
	StateClean = "clean"
)

// States lists every state in precedence order.
var States = []string{StateMissing, StateUninitialized, StateCheckoutDiffers, StateDirty, StateClean}

// FileChange is a changed tracked path.
type FileChange struct {
	Path   string `json:"path"`
	Change string `json:"change"`
}

// Untracked is a file git neither tracks nor ignores.
type Untracked struct {
	Path   string `json:"path"`
	Type   string `json:"type"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
}

// Changes is the dirty state of one checkout.
type Changes struct {
	Staged    []FileChange `json:"staged"`
	Unstaged  []FileChange `json:"unstaged"`
	Untracked []Untracked  `json:"untracked"`
}

// Empty reports whether nothing is changed.
func (c Changes) Empty() bool {
	return len(c.Staged) == 0 && len(c.Unstaged) == 0 && len(c.Untracked) == 0
}

// Superproject is the workspace repository itself.
type Superproject struct {
	Head   string `json:"head"`
	Branch string `json:"branch"` // empty when detached
	Changes
}

// Submodule is one submodule's pins and checkout.
type Submodule struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	URL    string `json:"url"`
	Branch string `json:"branch"`
	// Parent is the path of the submodule this one is nested in; empty for
	// a submodule of the superproject.
	Parent string `json:"parent,omitempty"`
	// Declared: named in .gitmodules. A gitlink without a declaration is
	// still recorded, with Declared false.
	Declared bool `json:"declared"`
	// Gitlink is the commit the parent's index records; empty if none.
	Gitlink string `json:"gitlink"`
	// Head is the checked-out commit; empty if not checked out.
	Head string `json:"head"`
	// HeadBranch is the checked-out branch; empty when detached.
	HeadBranch string `json:"headBranch"`
	State      string `json:"state"`
	Reason     string `json:"reason,omitempty"`
	Changes
}

// FileDigest is a file's presence and sha256 digest.
type FileDigest struct {
	Path   string `json:"path"`
	Digest string `json:"digest"` // empty when the file is absent
}

// Summary counts submodules per state.
type Summary struct {
	Submodules      int `json:"submodules"`
	Clean           int `json:"clean"`
	Dirty           int `json:"dirty"`
	CheckoutDiffers int `json:"checkoutDiffers"`
	Uninitialized   int `json:"uninitialized"`
	Missing         int `json:"missing"`
}

// Snapshot is the payload of the snapshot artifact.
type Snapshot struct {
	// Root is the workspace's absolute path.
	Root         string       `json:"root"`
	Superproject Superproject `json:"superproject"`
	FlakeNix     FileDigest   `json:"flakeNix"`
	FlakeLock    FileDigest   `json:"flakeLock"`
	Submodules   []Submodule  `json:"submodules"`
	Summary      Summary      `json:"summary"`
}

// Count fills in the summary from the submodules.
func (s *Snapshot) Count() {
	var sum Summary
	for _, m := range s.Submodules {
		sum.Submodules++
		switch m.State {
		case StateClean:
			sum.Clean++
		case StateDirty:
			sum.Dirty++
		case StateCheckoutDiffers:
			sum.CheckoutDiffers++
		case StateUninitialized:
			sum.Uninitialized++
		case StateMissing:
			sum.Missing++
		}
	}
	s.Summary = sum
}

// Submodule returns the submodule at path, or nil.
func (s *Snapshot) Submodule(path string) *Submodule {
	// Submodules are sorted by path; a hand-built snapshot may not be.
	i := sort.Search(len(s.Submodules), func(i int) bool { return s.Submodules[i].Path >= path })
	if i < len(s.Submodules) && s.Submodules[i].Path == path {
		return &s.Submodules[i]
	}
	for i := range s.Submodules {
		if s.Submodules[i].Path == path {
			return &s.Submodules[i]
		}
	}
	return nil
}

// RecordedPath is how a file name is written in a snapshot: as it is when
// it is valid UTF-8 and does not start with a double quote; otherwise
// quoted as a Go string (invalid bytes as \xNN), as git's core.quotePath
// does. JSON would turn every invalid byte into U+FFFD, and two different
// names into one.
func RecordedPath(name string) string {
	if utf8.ValidString(name) && !strings.HasPrefix(name, `"`) {
		return name
	}
	return strconv.Quote(name)
}
