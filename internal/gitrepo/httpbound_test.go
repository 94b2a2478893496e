package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A remote that streams a ref advertisement without end is cut off after
// MaxAdvertisement with an error, instead of filling memory.
func TestEndlessAdvertisementBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/info/refs") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
		fmt.Fprint(w, "001e# service=git-upload-pack\n0000")
		sha := strings.Repeat("a", 40)
		fmt.Fprintf(w, "%04x%s HEAD\x00multi_ack\n", 4+40+6+10, sha)
		for i := 0; ; i++ {
			line := fmt.Sprintf("%s refs/heads/b%09d\n", sha, i)
			if _, err := fmt.Fprintf(w, "%04x%s", 4+len(line), line); err != nil {
				return
			}
			if r.Context().Err() != nil {
				return
			}
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := LsRemote(ctx, srv.URL+"/repo.git", nil)
	t.Logf("error: %v", err)
	if err == nil || !errors.Is(err, ErrAdvertisementTooLarge) && !strings.Contains(err.Error(), "too large") {
		t.Fatalf("LsRemote of an endless advertisement: %v", err)
	}
	budgetFree(t)
}
