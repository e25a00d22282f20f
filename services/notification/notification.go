// Package notification turns commerce events into email, SMS and push
// messages rendered from text/template templates, and records each one. One
// notification per event: its key derives from the event id, so a
// redelivered event finds the record and sends nothing.
package notification

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/smtp"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Channels.
const (
	Email = "email"
	SMS   = "sms"
	Push  = "push"
)

// Notification is the API shape and the stored record.
type Notification struct {
	ID      string    `json:"id"`
	UserID  string    `json:"userId"`
	Event   string    `json:"event"`
	Channel string    `json:"channel"`
	Body    string    `json:"body"`
	SentAt  time.Time `json:"sentAt"`
	EventID string    `json:"eventId"`
	To      string    `json:"-"`
}

// Routes says which channel each event goes to: data, not code.
var Routes = map[string]string{
	catalog.OrderConfirmed:   Email,
	catalog.OrderCancelled:   Email,
	catalog.OrderRefunded:    Email,
	catalog.PaymentCompleted: Push,
	catalog.PaymentFailed:    SMS,
}

// recipient is whom a notification is for.
type recipient struct{ userID, email string }

// reader decodes an event's data into its struct from services/events,
// which the templates then render, and says whom it is for.
type reader func(raw []byte) (data any, to recipient, err error)

func readAs[T any](to func(T) recipient) reader {
	return func(raw []byte) (any, recipient, error) {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, recipient{}, err
		}
		return v, to(v), nil
	}
}

// readers hold a reader per event type in Routes.
var readers = map[string]reader{
	catalog.OrderConfirmed:   readAs(func(e events.OrderConfirmed) recipient { return recipient{e.UserID, e.Email} }),
	catalog.OrderCancelled:   readAs(func(e events.OrderCancelled) recipient { return recipient{e.UserID, e.Email} }),
	catalog.OrderRefunded:    readAs(func(e events.OrderRefunded) recipient { return recipient{e.UserID, e.Email} }),
	catalog.PaymentCompleted: readAs(func(e events.PaymentCompleted) recipient { return recipient{userID: e.UserID} }),
	catalog.PaymentFailed:    readAs(func(e events.PaymentFailed) recipient { return recipient{userID: e.UserID} }),
}

// templates per event type and channel, executed on the event's struct;
// money formats minor units as 12.34.
var templates = map[string]map[string]string{
	catalog.OrderConfirmed: {
		Email: "Subject: Order {{.ID}} confirmed\n\nThank you! Your order {{.ID}} of {{len .Items}} item(s) is confirmed. Total: {{money .Total}}.",
		SMS:   "Order {{.ID}} confirmed, total {{money .Total}}.",
		Push:  "Order confirmed: {{money .Total}}",
	},
	catalog.OrderCancelled: {
		Email: "Subject: Order {{.ID}} cancelled\n\nYour order {{.ID}} was cancelled{{with .Error}}: {{.Message}}{{end}}. Nothing was charged.",
		SMS:   "Order {{.ID}} cancelled{{with .Error}} ({{.Code}}){{end}}.",
		Push:  "Order cancelled",
	},
	catalog.OrderRefunded: {
		Email: "Subject: Order {{.ID}} refunded\n\nYour order {{.ID}} was refunded: {{money .Total}} is on its way back to you.{{with .Refund.Reason}} Reason: {{.}}{{end}}",
		SMS:   "Order {{.ID}} refunded: {{money .Total}}.",
		Push:  "Order refunded: {{money .Total}}",
	},
	catalog.PaymentCompleted: {
		Email: "Subject: Payment received\n\nWe received {{money .Amount}} for order {{.OrderID}}.",
		SMS:   "Payment of {{money .Amount}} received for order {{.OrderID}}.",
		Push:  "Paid {{money .Amount}} for order {{.OrderID}}",
	},
	catalog.PaymentFailed: {
		Email: "Subject: Payment declined\n\nYour payment of {{money .Amount}} for order {{.OrderID}} was declined: {{.Reason}}.",
		SMS:   "Payment of {{money .Amount}} for order {{.OrderID}} declined: {{.Reason}}.",
		Push:  "Payment declined",
	},
}

func money(n int64) string { return fmt.Sprintf("%d.%02d", n/100, n%100) }

// Renderer holds the parsed templates.
type Renderer struct {
	t map[string]map[string]*template.Template
}

// NewRenderer parses every template; a broken one fails start-up.
func NewRenderer() (*Renderer, error) {
	r := &Renderer{t: map[string]map[string]*template.Template{}}
	for typ, byChannel := range templates {
		r.t[typ] = map[string]*template.Template{}
		for ch, src := range byChannel {
			t, err := template.New(typ + "/" + ch).Funcs(template.FuncMap{"money": money}).Parse(src)
			if err != nil {
				return nil, err
			}
			r.t[typ][ch] = t
		}
	}
	return r, nil
}

// Render renders the template of an event type for a channel, on the
// event's struct from services/events.
func (r *Renderer) Render(typ, channel string, data any) (string, error) {
	t, ok := r.t[typ][channel]
	if !ok {
		return "", fmt.Errorf("no template for %s on %s", typ, channel)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Sender delivers a rendered notification.
type Sender interface {
	Send(ctx context.Context, n Notification) error
}

// LogSender writes notifications to the log: the default.
type LogSender struct{ Log *slog.Logger }

// Send logs n.
func (s LogSender) Send(_ context.Context, n Notification) error {
	s.Log.Info("notification sent", "channel", n.Channel, "user", n.UserID, "event", n.Event, "body", n.Body)
	return nil
}

// SMTPSender mails email notifications through SMTP_ADDR; other channels
// and events without a recipient address go to Fallback.
type SMTPSender struct {
	Addr, From string
	Fallback   Sender
}

// Send mails n when it is an email with a recipient.
func (s SMTPSender) Send(ctx context.Context, n Notification) error {
	if n.Channel != Email || n.To == "" {
		return s.Fallback.Send(ctx, n)
	}
	msg := "To: " + n.To + "\r\nFrom: " + s.From + "\r\n" + strings.ReplaceAll(n.Body, "\n", "\r\n")
	return smtp.SendMail(s.Addr, nil, s.From, []string{n.To}, []byte(msg))
}

// Notifier holds the logic.
type Notifier struct {
	store  *kit.Store[Notification]
	render *Renderer
	sender Sender
	now    func() time.Time
}

// NewNotifier refuses nil dependencies.
func NewNotifier(store *kit.Store[Notification], r *Renderer, s Sender) (*Notifier, error) {
	if store == nil || r == nil || s == nil {
		return nil, errors.New("notification: NewNotifier needs a store, a renderer and a sender")
	}
	return &Notifier{store: store, render: r, sender: s, now: time.Now}, nil
}

// idFor derives the notification id from the event id.
func idFor(eventID string) string {
	h := sha256.Sum256([]byte(eventID))
	return hex.EncodeToString(h[:12])
}

// Handle sends and records the notification of one event, once.
func (n *Notifier) Handle(ctx context.Context, ev kit.Event) error {
	channel, ok := Routes[ev.Type]
	read, readable := readers[ev.Type]
	if !ok || !readable {
		return fmt.Errorf("%w: no route for %s", kit.ErrPermanent, ev.Type)
	}
	data, to, err := read(ev.Data)
	if err != nil {
		return fmt.Errorf("%w: %v", kit.ErrPermanent, err)
	}
	if !kit.ValidID(to.userID) {
		return fmt.Errorf("%w: event %s has no valid userId", kit.ErrPermanent, ev.ID)
	}
	id := idFor(ev.ID)
	key := to.userID + "." + id
	if _, _, err := n.store.Get(ctx, key); err == nil {
		return kit.ErrDuplicate
	} else if !errors.Is(err, kit.ErrNotFound) {
		return err
	}
	body, err := n.render.Render(ev.Type, channel, data)
	if err != nil {
		return fmt.Errorf("%w: %v", kit.ErrPermanent, err)
	}
	rec := Notification{ID: id, UserID: to.userID, Event: ev.Type, Channel: channel, Body: body, EventID: ev.ID, To: to.email}
	if err := n.sender.Send(ctx, rec); err != nil {
		return fmt.Errorf("send %s: %w", channel, err)
	}
	rec.SentAt = n.now().UTC()
	if _, err := n.store.Create(ctx, key, rec); errors.Is(err, kit.ErrExists) {
		return kit.ErrDuplicate
	} else if err != nil {
		return err
	}
	return nil
}

// ForUser lists a user's notifications, oldest first. The HTTP API calls
// it with the caller's own id only.
func (n *Notifier) ForUser(ctx context.Context, userID string) ([]Notification, error) {
	if !kit.ValidID(userID) {
		return []Notification{}, nil // no user has that id, so none are theirs
	}
	out, err := n.store.List(ctx, userID+".*")
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Notification) int { return a.SentAt.Compare(b.SentAt) })
	return out, nil
}
