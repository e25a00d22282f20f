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

func (s *service) charge(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[ChargeRequest](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	p, created, err := s.ledger.Charge(r.Context(), req)
	switch {
	case err != nil:
		kit.WriteError(w, r, err)
	case p.Status == Declined:
		kit.WriteError(w, r, kit.Errorf(http.StatusPaymentRequired, CodeDeclined, "payment declined: %s", p.Reason))
	case created:
		kit.WriteJSON(w, http.StatusCreated, p)
	default:
		kit.WriteJSON(w, http.StatusOK, p)
	}
}

func (s *service) list(w http.ResponseWriter, r *http.Request) {
	ps, err := s.ledger.ByOrder(r.Context(), r.URL.Query().Get("orderId"))
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	kit.WriteJSON(w, http.StatusOK, map[string][]events.Payment{"items": ps})
}

func (s *service) refund(w http.ResponseWriter, r *http.Request) {
	p, err := s.ledger.Refund(r.Context(), r.PathValue("id"))
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	kit.WriteJSON(w, http.StatusOK, p)
}
