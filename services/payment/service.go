package payment

import (
	"context"
	"errors"
	"net/http"

	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Definition registers the service with the binary.
var Definition = kit.Definition{Name: "payment", New: New}

type service struct{ ledger *Ledger }

// New builds the payment service.
func New(_ context.Context, d kit.Deps) (kit.Service, error) {
	if d.Bus == nil {
		return nil, errors.New("payment: needs NATS")
	}
	st, err := kit.NewStore[events.Payment](d.Bus.Bucket("payments"))
	if err != nil {
		return nil, err
	}
	l, err := NewLedger(st, d.Bus)
	if err != nil {
		return nil, err
	}
	return &service{ledger: l}, nil
}

func (s *service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /payments", s.charge)
	mux.HandleFunc("GET /payments", s.list)
	mux.HandleFunc("POST /payments/{id}/refund", s.refund)
}

func (s *service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
