package policy

import (
	"fmt"
	"path"
	"strings"
)

// checkPattern validates a subject pattern: a path.Match pattern, or a
// directory followed by "/**" for everything below it.
func checkPattern(p string) error {
	if p == "" {
		return fmt.Errorf("empty pattern")
	}
	if _, err := path.Match(strings.TrimSuffix(p, "/**"), ""); err != nil {
		return fmt.Errorf("bad pattern %q", p)
	}
	return nil
}

// matchAny reports whether name matches one of the patterns.
func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if match(p, name) {
			return true
		}
	}
	return false
}

func match(p, name string) bool {
	if dir, ok := strings.CutSuffix(p, "/**"); ok {
		if dir == "" {
			return true
		}
		if ok, _ := path.Match(dir, name); ok {
			return true
		}
		// Any ancestor of name matching dir.
		for i := len(name) - 1; i > 0; i-- {
			if name[i] == '/' {
				if ok, _ := path.Match(dir, name[:i]); ok {
					return true
				}
			}
		}
		return false
	}
	ok, _ := path.Match(p, name)
	return ok
}
