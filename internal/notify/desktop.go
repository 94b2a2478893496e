package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"
)

// Desktop shows a notification through the freedesktop Notifications
// service on a D-Bus session bus.
type Desktop struct {
	// Bus is the session bus address ($DBUS_SESSION_BUS_ADDRESS).
	Bus string
}

// Send delivers m.
func (d *Desktop) Send(ctx context.Context, m *Message) (int, error) {
	if d.Bus == "" {
		return 0, errors.New("no D-Bus session bus: set the channel's bus or DBUS_SESSION_BUS_ADDRESS (a desktop channel needs a user session)")
	}
	conn, err := dbus.Dial(d.Bus, dbus.WithContext(ctx))
	if err != nil {
		return 1, fmt.Errorf("connect to the session bus: %w", err)
	}
	defer conn.Close()
	if err := conn.Auth(nil); err != nil {
		return 1, fmt.Errorf("session bus auth: %w", err)
	}
	if err := conn.Hello(); err != nil {
		return 1, fmt.Errorf("session bus hello: %w", err)
	}
	urgency := map[string]byte{Info: 0, Warning: 1, Critical: 2}[m.Severity]
	obj := conn.Object("org.freedesktop.Notifications", "/org/freedesktop/Notifications")
	var id uint32
	err = obj.CallWithContext(ctx, "org.freedesktop.Notifications.Notify", 0,
		"lambda-check", uint32(0), "", "lambda-check: "+m.Title(), desktopBody(m),
		[]string{}, map[string]dbus.Variant{"urgency": dbus.MakeVariant(urgency)}, int32(-1)).Store(&id)
	if err != nil {
		return 1, fmt.Errorf("Notify: %w", err)
	}
	return 1, nil
}

// desktopBody is plain text: notification servers differ in the markup
// they accept, so none is sent (and "<", "&" are escaped for those that
// parse the body as markup anyway).
func desktopBody(m *Message) string {
	s := strings.Join(Lines(m), "\n")
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
