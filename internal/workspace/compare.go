package workspace

import (
	"fmt"
	"sort"
	"strings"
)

// Difference is one thing that changed between two snapshots.
type Difference struct {
	// Subject is "superproject", "flake.nix", "flake.lock" or a submodule path.
	Subject string `json:"subject"`
	// Field names what changed: head, branch, gitlink, state, added, removed,
	// url, staged, unstaged, untracked, digest.
	Field string `json:"field"`
	Old   string `json:"old"`
	New   string `json:"new"`
}

func (d Difference) String() string {
	switch d.Field {
	case "added", "removed":
		return fmt.Sprintf("%s: %s", d.Subject, d.Field)
	}
	return fmt.Sprintf("%s: %s %s -> %s", d.Subject, d.Field, orNone(d.Old), orNone(d.New))
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// Compare lists what changed from old to new, sorted by subject and field.
func Compare(old, new *Snapshot) []Difference {
	var out []Difference
	add := func(subject, field, o, n string) {
		if o != n {
			out = append(out, Difference{subject, field, o, n})
		}
	}
	add("superproject", "head", old.Superproject.Head, new.Superproject.Head)
	add("superproject", "branch", old.Superproject.Branch, new.Superproject.Branch)
	compareChanges("superproject", old.Superproject.Changes, new.Superproject.Changes, add)
	add("flake.nix", "digest", old.FlakeNix.Digest, new.FlakeNix.Digest)
	add("flake.lock", "digest", old.FlakeLock.Digest, new.FlakeLock.Digest)
	olds := map[string]*Submodule{}
	for i := range old.Submodules {
		olds[old.Submodules[i].Path] = &old.Submodules[i]
	}
	for i := range new.Submodules {
		n := &new.Submodules[i]
		o, ok := olds[n.Path]
		if !ok {
			out = append(out, Difference{n.Path, "added", "", n.Gitlink})
			continue
		}
		delete(olds, n.Path)
		add(n.Path, "url", o.URL, n.URL)
		add(n.Path, "branch", o.Branch, n.Branch)
		add(n.Path, "gitlink", o.Gitlink, n.Gitlink)
		add(n.Path, "head", o.Head, n.Head)
		add(n.Path, "state", o.State, n.State)
		compareChanges(n.Path, o.Changes, n.Changes, add)
	}
	for p, o := range olds {
		out = append(out, Difference{p, "removed", o.Gitlink, ""})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Subject != out[j].Subject {
			return out[i].Subject < out[j].Subject
		}
		return out[i].Field < out[j].Field
	})
	return out
}

func compareChanges(subject string, o, n Changes, add func(subject, field, o, n string)) {
	add(subject, "staged", fileList(o.Staged), fileList(n.Staged))
	add(subject, "unstaged", fileList(o.Unstaged), fileList(n.Unstaged))
	add(subject, "untracked", untrackedList(o.Untracked), untrackedList(n.Untracked))
}

func fileList(fs []FileChange) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = fmt.Sprintf("%s %q", f.Change, f.Path)
	}
	return strings.Join(parts, ", ")
}

func untrackedList(us []Untracked) string {
	parts := make([]string, len(us))
	for i, u := range us {
		s := u.SHA256
		if len(s) > 12 {
			s = s[:12]
		}
		parts[i] = fmt.Sprintf("%q %s", u.Path, s)
	}
	return strings.Join(parts, ", ")
}
