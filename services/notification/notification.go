// Package notification turns commerce events into email, SMS and push
// messages rendered from text/template templates, and records each one.
//
// At most one message per event. The record's key derives from the event
// id, and it is written before anything is sent:
//
//	(none) ──► pending ──► sent
//	              │  └───► failed ──► pending …   (certainly not sent: a redelivery tries again)
//	              └──────► unknown                (may have been sent: never tried again)
//
// A redelivered event that finds its record pending meets an attempt that
// stopped between recording and knowing (a crash mid-send): the message
// may have gone out, so it is marked unknown and not sent again. The
// trade-off is deliberate: a customer may miss one e-mail after a crash at
// the wrong instant, but never gets two, and the unknown record says so.
// An attempt that knows it sent nothing gives its claim back instead: a
// claim whose answer was lost (the broker restarting as it wrote it) may
// be stored, and would otherwise read as a send that may have happened.
// A send is bounded by SMTP_TIMEOUT, well inside the consumer's AckWait, so
// no redelivery meets an attempt that is still running.
package notification

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/smtp"
	"net/textproto"
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

// Statuses of a notification record.
const (
	// StatusPending: recorded, and a send may be under way.
	StatusPending = "pending"
	// StatusSent: the channel took it.
	StatusSent = "sent"
	// StatusFailed: the last attempt certainly sent nothing; a redelivery
	// tries again.
	StatusFailed = "failed"
	// StatusUnknown: an attempt may have sent it; it is never tried again.
	StatusUnknown = "unknown"
)

// Notification is the API shape and the stored record.
type Notification struct {
	ID      string `json:"id"`
	UserID  string `json:"userId"`
	Event   string `json:"event"`
	Channel string `json:"channel"`
	Body    string `json:"body"`
	// Status is pending, sent, failed or unknown (records from before it
	// existed were written once sent, and read as sent).
	Status   string `json:"status"`
	Attempts int    `json:"attempts,omitempty"`
	// Claim identifies the attempt that set pending.
	Claim     string    `json:"claim,omitempty"`
	CreatedAt time.Time `json:"createdAt,omitzero"`
	SentAt    time.Time `json:"sentAt,omitzero"`
	EventID   string    `json:"eventId"`
	// To is the address, read from the event each time it is delivered.
	To string `json:"-"`
}

func (n Notification) status() string {
	if n.Status == "" {
		return StatusSent
	}
	return n.Status
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
		Email: "Subject: Order {{.ID}} cancelled\n\nYour order {{.ID}} was cancelled{{with .Error}}: {{.Message}}{{end}}. {{if eq .Money \"returned\"}}{{money .Total}} was charged and has been returned to you.{{else}}Nothing was charged.{{end}}",
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

// ErrMaybeSent is a send that failed after the message may have been
// delivered (the server's answer to its end never came): it is not tried
// again.
var ErrMaybeSent = errors.New("the message may have been delivered")

// DefaultSMTPTimeout bounds one SMTP send, dial to QUIT.
const DefaultSMTPTimeout = 10 * time.Second

// SMTPSender mails email notifications through SMTP_ADDR; other channels
// and events without a recipient address go to Fallback.
type SMTPSender struct {
	Addr, From string
	Fallback   Sender
	// Timeout bounds one send (default DefaultSMTPTimeout), and so does
	// the context. net/smtp has no timeout of its own: a server that
	// stops answering would hold the handler for ever.
	Timeout time.Duration
}

// Send mails n when it is an email with a recipient. An error wrapping
// ErrMaybeSent means the message may have been delivered.
func (s SMTPSender) Send(ctx context.Context, n Notification) error {
	if n.Channel != Email || n.To == "" {
		return s.Fallback.Send(ctx, n)
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultSMTPTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return fmt.Errorf("SMTP_ADDR %q: %w", s.Addr, err)
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	// A cancelled handler ends the conversation at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host}); err != nil {
			return err
		}
	}
	if err := c.Mail(s.From); err != nil {
		return err
	}
	if err := c.Rcpt(n.To); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	msg := "To: " + n.To + "\r\nFrom: " + s.From + "\r\n" + strings.ReplaceAll(n.Body, "\n", "\r\n")
	if _, err := io.WriteString(w, msg); err != nil {
		return err // the end of the data was never sent
	}
	if err := w.Close(); err != nil {
		var refused *textproto.Error
		if errors.As(err, &refused) {
			return err // the server answered: it did not take it
		}
		return fmt.Errorf("%w: %v", ErrMaybeSent, err)
	}
	_ = c.Quit() // it is delivered; a failed goodbye changes nothing
	return nil
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

// Handle records and then sends the notification of one event, at most
// once (see the package doc).
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
	body, err := n.render.Render(ev.Type, channel, data)
	if err != nil {
		return fmt.Errorf("%w: %v", kit.ErrPermanent, err)
	}
	id := idFor(ev.ID)
	key := to.userID + "." + id
	now := n.now().UTC()
	var claimed, interrupted bool
	claim := kit.NewID()
	rec, err := n.store.Upsert(ctx, key, func(cur *Notification, exists bool) error {
		claimed, interrupted = false, false
		switch {
		case !exists:
			*cur = Notification{ID: id, UserID: to.userID, Event: ev.Type, Channel: channel, Body: body, EventID: ev.ID,
				CreatedAt: now}
		case cur.status() == StatusFailed:
		case cur.status() == StatusPending:
			// An attempt recorded its claim and stopped before it
			// knew: the message may be out.
			cur.Status, interrupted = StatusUnknown, true
			return nil
		default:
			return kit.ErrNoChange // sent or unknown: never again
		}
		cur.Status, cur.Claim, claimed = StatusPending, claim, true
		cur.Attempts++
		return nil
	})
	if err != nil {
		// Nothing was sent, yet the claim may be stored.
		return errors.Join(err, n.unclaim(ctx, key, claim))
	}
	if interrupted {
		kit.Logger(ctx).Warn("an earlier attempt stopped mid-send; not sending again (at most once)",
			"notification", id, "event", ev.ID, "channel", channel)
	}
	if !claimed {
		return kit.ErrDuplicate
	}
	rec.To = to.email
	sendErr := n.sender.Send(ctx, rec)
	// The outcome is recorded even when the handler's time ran out.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	status := StatusSent
	switch {
	case errors.Is(sendErr, ErrMaybeSent):
		status = StatusUnknown
	case sendErr != nil:
		status = StatusFailed
	}
	_, err = n.store.Update(wctx, key, func(cur *Notification) error {
		// Unknown when a concurrent delivery of the same event found the
		// claim: this attempt knows better.
		if cur.status() != StatusPending && cur.status() != StatusUnknown {
			return kit.ErrNoChange
		}
		cur.Status = status
		if status == StatusSent {
			cur.SentAt = n.now().UTC()
		}
		return nil
	})
	switch {
	case status == StatusFailed:
		return fmt.Errorf("send %s: %w", channel, sendErr)
	case status == StatusUnknown:
		kit.Logger(ctx).Warn("send interrupted after the message may have been delivered; not sending again (at most once)",
			"notification", id, "event", ev.ID, "channel", channel, "err", sendErr)
	}
	return err
}

// unclaim marks the record failed if it is still pending under claim, so
// that a redelivery sends it. It is retried for a few seconds, as long as
// a broker restart takes.
func (n *Notifier) unclaim(ctx context.Context, key, claim string) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for {
		_, err := n.store.Update(wctx, key, func(cur *Notification) error {
			if cur.status() != StatusPending || cur.Claim != claim {
				return kit.ErrNoChange
			}
			cur.Status = StatusFailed
			return nil
		})
		if err == nil || errors.Is(err, kit.ErrNotFound) {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("claim %s of %s not given back: %w", claim, key, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
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
	slices.SortFunc(out, func(a, b Notification) int { return first(a).Compare(first(b)) })
	return out, nil
}

// first is when a notification began: its record, or for records from
// before CreatedAt, its sending.
func first(n Notification) time.Time {
	if n.CreatedAt.IsZero() {
		return n.SentAt
	}
	return n.CreatedAt
}
