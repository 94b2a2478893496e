package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// maxAttempts bounds the tries of one delivery; the channel's timeout
// bounds their total time.
const maxAttempts = 5

// retryAfterFunc reads how long the server asked to wait from a 429
// response's body (Telegram's parameters.retry_after), or returns 0.
type retryAfterFunc func(body []byte) time.Duration

// post sends body to url, retrying network errors, 429 (after the time
// the server asks, from Retry-After or the body) and 5xx with backoff.
// It returns the attempts made and the last response's body.
func post(ctx context.Context, client *http.Client, url string, body []byte, header http.Header, after retryAfterFunc) (int, []byte, error) {
	backoff := 250 * time.Millisecond
	var last error
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return attempt, nil, err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "lambda-check")
		wait := backoff
		resp, err := client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			switch {
			case resp.StatusCode/100 == 2:
				return attempt, b, nil
			case resp.StatusCode == http.StatusTooManyRequests:
				last = fmt.Errorf("HTTP 429 (rate limited): %s", snippet(b))
				if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
					wait = time.Duration(s) * time.Second
				}
				if after != nil {
					if d := after(b); d > 0 {
						wait = d
					}
				}
			case resp.StatusCode >= 500:
				last = fmt.Errorf("HTTP %d: %s", resp.StatusCode, snippet(b))
			default:
				// 4xx other than 429: the request is wrong; retrying will not help.
				return attempt, b, fmt.Errorf("HTTP %d: %s", resp.StatusCode, snippet(b))
			}
		} else {
			if ctx.Err() != nil {
				return attempt, nil, fmt.Errorf("%w (after %d attempts; last: %v)", ctx.Err(), attempt, last)
			}
			last = err
		}
		if attempt == maxAttempts {
			return attempt, nil, fmt.Errorf("gave up after %d attempts: %w", attempt, last)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return attempt, nil, fmt.Errorf("gave up: the server asks to wait %s, beyond the channel's timeout: %w", wait, last)
		}
		select {
		case <-ctx.Done():
			return attempt, nil, errors.Join(ctx.Err(), last)
		case <-time.After(wait):
		}
		backoff *= 2
	}
}

func snippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 200 {
		b = append(b[:200:200], "…"...)
	}
	return string(b)
}
