package notification

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Definition registers the service with the binary.
var Definition = kit.Definition{Name: "notification", New: New}

type service struct {
	n        *Notifier
	bus      *kit.Bus
	consumes []string
}

// New builds the notification service. SMTP_ADDR (host:port) switches email
// to SMTP, with SMTP_FROM as the sender address.
func New(_ context.Context, d kit.Deps) (kit.Service, error) {
	if d.Bus == nil {
		return nil, errors.New("notification: needs NATS")
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
		sender = SMTPSender{Addr: addr, From: from, Fallback: sender}
	}
	n, err := NewNotifier(st, r, sender)
	if err != nil {
		return nil, err
	}
	for _, subj := range d.Config.Service.Consumes {
		if _, ok := Routes[subj]; !ok {
			return nil, errors.New("notification: no channel route for " + subj)
		}
	}
	return &service{n: n, bus: d.Bus, consumes: d.Config.Service.Consumes}, nil
}

func (s *service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /notifications", s.list)
}

// Run consumes the subjects the catalog lists until ctx ends: one durable
// consumer per stream, shared by replicas.
func (s *service) Run(ctx context.Context) error {
	byStream := map[string][]string{}
	var order []string
	for _, subj := range s.consumes {
		st, err := catalog.StreamFor(subj)
		if err != nil {
			return err
		}
		if _, ok := byStream[st.Name]; !ok {
			order = append(order, st.Name)
		}
		byStream[st.Name] = append(byStream[st.Name], subj)
	}
	for _, st := range order {
		spec := kit.ConsumerSpec{Durable: "notification-" + strings.ToLower(st), Subjects: byStream[st], Handler: s.n.Handle}
		if err := s.bus.Consume(ctx, spec); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

func (s *service) list(w http.ResponseWriter, r *http.Request) {
	ns, err := s.n.ForUser(r.Context(), r.URL.Query().Get("userId"))
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	kit.WriteJSON(w, http.StatusOK, map[string][]Notification{"items": ns})
}
