package flake

import "testing"

func TestRefAt(t *testing.T) {
	for _, c := range []struct {
		a    Attrs
		want string
	}{
		{Attrs{"type": "github", "owner": "logos-co", "repo": "logos-cpp-sdk"}, "github:logos-co/logos-cpp-sdk/abc"},
		{Attrs{"type": "gitlab", "owner": "o", "repo": "r"}, "gitlab:o/r/abc"},
		{Attrs{"type": "git", "url": "file:///srv/x.git", "ref": "master"}, "git+file:///srv/x.git?ref=master&rev=abc"},
		{Attrs{"type": "git", "url": "https://h/x", "ref": "feature/a b"}, "git+https://h/x?ref=feature%2Fa+b&rev=abc"},
		{Attrs{"type": "git", "url": "https://h/x"}, "git+https://h/x?rev=abc"},
		{Attrs{"type": "path", "path": "/x"}, ""},
	} {
		if got := RefAt(c.a, "abc"); got != c.want {
			t.Errorf("RefAt(%v) = %q, want %q", c.a, got, c.want)
		}
	}
}
