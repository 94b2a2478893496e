package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"os"
	"strings"
	"time"
)

// Telegram sends through the Bot API's sendMessage, in HTML parse mode
// with every dynamic value escaped.
type Telegram struct {
	// APIBase is the Bot API server ("https://api.telegram.org", or a
	// self-hosted one).
	APIBase   string
	TokenFile string
	ChatID    string
	Client    *http.Client
}

// telegramLimit is the Bot API's limit on a message's text.
const telegramLimit = 4096

// Send delivers m.
func (t *Telegram) Send(ctx context.Context, m *Message) (int, error) {
	tok, err := readSecret(t.TokenFile)
	if err != nil {
		return 0, fmt.Errorf("telegram token: %w", err)
	}
	// A token is digits, a colon and [A-Za-z0-9_-]: anything else (a
	// control character, say) would reach error messages escaped, past the
	// redaction below, so it is refused without being shown.
	if !botToken(tok) {
		return 0, fmt.Errorf("telegram token in %s is not a Bot API token (digits, ':', then letters, digits, '_' or '-'); it is not shown", t.TokenFile)
	}
	base := strings.TrimRight(t.APIBase, "/")
	if base == "" {
		base = "https://api.telegram.org"
	}
	body, err := json.Marshal(map[string]any{
		"chat_id": t.ChatID, "text": TelegramHTML(m), "parse_mode": "HTML",
		"disable_web_page_preview": true,
	})
	if err != nil {
		return 0, err
	}
	client := t.Client
	if client == nil {
		client = http.DefaultClient
	}
	n, b, err := post(ctx, client, base+"/bot"+tok+"/sendMessage", body, nil, telegramRetryAfter)
	if err != nil {
		// The token is part of the URL: never let it into a message.
		return n, errors.New(strings.ReplaceAll(err.Error(), tok, "<token>"))
	}
	var r struct {
		OK          bool   `json:"ok"`
		Description string `json:"description"`
	}
	if json.Unmarshal(b, &r) != nil || !r.OK {
		return n, fmt.Errorf("the Bot API did not accept the message: %s", snippet(b))
	}
	return n, nil
}

func telegramRetryAfter(b []byte) time.Duration {
	var r struct {
		Parameters struct {
			RetryAfter int `json:"retry_after"`
		} `json:"parameters"`
	}
	if json.Unmarshal(b, &r) == nil && r.Parameters.RetryAfter > 0 {
		return time.Duration(r.Parameters.RetryAfter) * time.Second
	}
	return 0
}

// TelegramHTML renders m in Telegram's HTML subset; every value from the
// workspace is escaped, so a module named a_b<c> is shown as it is.
func TelegramHTML(m *Message) string {
	var b strings.Builder
	e := html.EscapeString
	icon := map[string]string{Info: "ℹ️", Warning: "⚠️", Critical: "🛑"}[m.Severity]
	fmt.Fprintf(&b, "%s <b>lambda-check</b> · <code>%s</code>\n", icon, e(m.Node))
	fmt.Fprintf(&b, "<b>health: %s</b>\n", e(m.Health))
	for _, c := range m.Changes {
		fmt.Fprintf(&b, "• %s\n", e(c.Text))
	}
	if len(m.Reasons) > 0 && m.Health != "healthy" {
		fmt.Fprintf(&b, "<i>why:</i> %s\n", e(strings.Join(m.Reasons, "; ")))
	}
	if m.Digest {
		b.WriteString("<b>digest</b>\n")
		for _, l := range m.Summary {
			fmt.Fprintf(&b, "%s\n", e(l))
		}
	}
	s := strings.TrimRight(b.String(), "\n")
	if len([]rune(s)) > telegramLimit {
		// Cut at a line boundary so no tag or entity is split.
		r := []rune(s)[:telegramLimit-2]
		s = string(r)
		if i := strings.LastIndexByte(s, '\n'); i > 0 {
			s = s[:i]
		}
		s += "\n…"
	}
	return s
}

// readSecret reads a secret file: trimmed, non-empty, one line.
func readSecret(p string) (string, error) {
	if p == "" {
		return "", errors.New("no file configured")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" || strings.ContainsAny(s, "\n\r") {
		return "", fmt.Errorf("%s: want one non-empty line", p)
	}
	return s, nil
}

// botToken says whether s has the form of a Bot API token.
func botToken(s string) bool {
	id, secret, ok := strings.Cut(s, ":")
	if !ok || id == "" || secret == "" {
		return false
	}
	for _, c := range id {
		if c < '0' || c > '9' {
			return false
		}
	}
	for _, c := range secret {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
