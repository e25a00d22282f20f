package notification

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Definition registers the service with the binary.
var Definition = kit.Definition{Name: "notification", Needs: kit.Needs{Auth: true}, New: New}

type service struct {
	n         *Notifier
	tokens    kit.Verifier
	bus       *kit.Bus
	consumers []catalog.Consumer
}

// consumerAckWait is how long a handler may take before its message is
// redelivered: a send must end well before it (see SMTP_TIMEOUT).
const consumerAckWait = 30 * time.Second

// New builds the notification service. SMTP_ADDR (host:port) switches email
// to SMTP, with SMTP_FROM as the sender address and SMTP_TIMEOUT bounding
// one send (default 10s, under the consumer's 30s AckWait).
func New(_ context.Context, d kit.Deps) (kit.Service, error) {
	if d.Bus == nil {
		return nil, errors.New("notification: needs NATS")
	}
	if d.Tokens == nil {
		return nil, errors.New("notification: needs a token verifier")
	}
	st, err := kit.NewStore[Notification](d.Bus.Bucket("notifications"))
	if err != nil {
		return nil, err
	}
	r, err := NewRenderer()
	if err != nil {
		return nil, err
	}
	var sender Sender = LogSender{Log: d.Log}
	if addr := d.Config.String("SMTP_ADDR"); addr != "" {
		from := d.Config.String("SMTP_FROM")
		if from == "" {
			from = "switchboard@localhost"
		}
		timeout, err := d.Config.Duration("SMTP_TIMEOUT", DefaultSMTPTimeout)
		if err != nil {
			return nil, err
		}
		if timeout > consumerAckWait/2 {
			return nil, fmt.Errorf("SMTP_TIMEOUT=%s: at most %s, half the consumer's AckWait, so a redelivery never meets a send still running", timeout, consumerAckWait/2)
		}
		sender = SMTPSender{Addr: addr, From: from, Fallback: sender, Timeout: timeout}
	}
	n, err := NewNotifier(st, r, sender)
	if err != nil {
		return nil, err
	}
	for _, subj := range d.Config.Service.Consumes() {
		if _, ok := Routes[subj]; !ok {
			return nil, errors.New("notification: no channel route for " + subj)
		}
		if _, ok := readers[subj]; !ok {
			return nil, errors.New("notification: no reader for " + subj)
		}
	}
	return &service{n: n, tokens: d.Tokens, bus: d.Bus, consumers: d.Config.Service.Consumers}, nil
}

func (s *service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /notifications", kit.RequireAuth(s.tokens, s.list))
}

// Run runs every consumer of the catalog row until ctx ends: one handler
// serves them all, routing by event type.
func (s *service) Run(ctx context.Context) error {
	for _, c := range s.consumers {
		if err := s.bus.Consume(ctx, kit.ConsumerSpec{Durable: c.Durable, Handler: s.n.Handle, AckWait: consumerAckWait}); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}
