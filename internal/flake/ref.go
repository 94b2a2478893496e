package flake

import (
	"fmt"
	"net/url"
)

// RefAt is the flake reference of a's repository at rev: what
// --override-input takes and a flake.nix url declares. It is "" for an
// input type that names no repository (path, tarball, indirect).
func RefAt(a Attrs, rev string) string {
	switch a.Type() {
	case "github", "gitlab", "sourcehut":
		return fmt.Sprintf("%s:%s/%s/%s", a.Type(), a.String("owner"), a.String("repo"), rev)
	case "git":
		return GitRef(a.String("url"), a.String("ref"), rev)
	}
	return ""
}

// GitRef is the git flake reference "git+URL?ref=REF&rev=REV" (no ref
// when ref is empty), its query escaped as Nix reads it.
func GitRef(u, ref, rev string) string {
	v := url.Values{}
	if ref != "" {
		v.Set("ref", ref)
	}
	v.Set("rev", rev)
	return "git+" + u + "?" + v.Encode()
}
