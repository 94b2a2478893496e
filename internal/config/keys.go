package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// knownKeys refuses a key the configuration does not have, with its line,
// column, full path and the key meant when one is close: encoding/json
// matches keys without regard to case ("reportHTML" for "reportHtml"),
// and says neither where nor what was meant.
func knownKeys(b []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	err := walkValue(dec, b, t, "")
	if errors.Is(err, io.EOF) || errors.Is(err, errSyntax) {
		return nil // a syntax error: the decoder proper says it, with its place
	}
	return err
}

var errSyntax = errors.New("syntax")

// walkValue reads one value of type t (nil: any) and checks its keys.
func walkValue(dec *json.Decoder, b []byte, t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return err
		}
		return errSyntax
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkValue(dec, b, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case '{':
		for dec.More() {
			off := dec.InputOffset()
			kt, err := dec.Token()
			if err != nil {
				return errSyntax
			}
			key, _ := kt.(string)
			var next reflect.Type
			switch {
			case t != nil && t.Kind() == reflect.Struct:
				f, names := fieldByTag(t, key)
				if f == nil {
					for off < int64(len(b)) && bytes.IndexByte([]byte(" \t\r\n,{"), b[off]) >= 0 {
						off++
					}
					line := 1 + bytes.Count(b[:off], []byte("\n"))
					col := off - int64(bytes.LastIndexByte(b[:off], '\n'))
					msg := fmt.Sprintf("line %d, column %d: unknown key %q", line, col, strings.TrimPrefix(path+"."+key, "."))
					if s := suggest(key, names); s != "" {
						msg += fmt.Sprintf("; did you mean %q?", s)
						if strings.EqualFold(s, key) {
							msg += " (keys are case-sensitive)"
						}
					}
					return errors.New(msg)
				}
				next = f.Type
			case t != nil && t.Kind() == reflect.Map:
				next = t.Elem()
			}
			if err := walkValue(dec, b, next, path+"."+key); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return errSyntax
	}
	return nil
}

// fieldByTag is the field whose JSON name is exactly key, and every JSON
// name of t.
func fieldByTag(t reflect.Type, key string) (*reflect.StructField, []string) {
	var names []string
	var found *reflect.StructField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
		if name == key {
			found = &f
		}
	}
	return found, names
}

// suggest is the name closest to key: the same but for case, else one
// within a third of its length in edits.
func suggest(key string, names []string) string {
	best, bestD := "", len(key)/3+1
	for _, n := range names {
		if strings.EqualFold(n, key) {
			return n
		}
		if d := editDistance(strings.ToLower(key), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
