package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
)

// SignatureHeader carries the HMAC-SHA256 of a webhook's body.
const SignatureHeader = "X-Lambda-Check-Signature"

// Webhook POSTs the message as JSON, signed when a secret is configured.
type Webhook struct {
	URL        string
	SecretFile string
	Client     *http.Client
}

// Send delivers m.
func (w *Webhook) Send(ctx context.Context, m *Message) (int, error) {
	body, err := json.Marshal(struct {
		Title string `json:"title"`
		*Message
	}{m.Title(), m})
	if err != nil {
		return 0, err
	}
	h := http.Header{}
	if w.SecretFile != "" {
		key, err := readSecret(w.SecretFile)
		if err != nil {
			return 0, fmt.Errorf("webhook secret: %w", err)
		}
		h.Set(SignatureHeader, Sign([]byte(key), body))
	}
	client := w.Client
	if client == nil {
		client = http.DefaultClient
	}
	n, _, err := post(ctx, client, w.URL, body, h, nil)
	return n, err
}

// Sign returns the signature header's value for body.
func Sign(key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
