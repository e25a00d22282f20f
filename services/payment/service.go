package payment

import (
	"context"
	"errors"
	"net/http"

	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Definition registers the service with the binary.
var Definition = kit.Definition{Name: "payment", Needs: kit.Needs{Auth: true}, New: New}

type service struct {
	ledger *Ledger
	tokens kit.Verifier
}

// New builds the payment service.
func New(_ context.Context, d kit.Deps) (kit.Service, error) {
	if d.Bus == nil {
		return nil, errors.New("payment: needs NATS")
	}
	if d.Tokens == nil {
		return nil, errors.New("payment: needs a token verifier")
	}
	st, err := kit.NewStore[events.Payment](d.Bus.Bucket("payments"))
	if err != nil {
		return nil, err
	}
	l, err := NewLedger(st, d.Bus)
	if err != nil {
		return nil, err
	}
	return &service{ledger: l, tokens: d.Tokens}, nil
}

func (s *service) Routes(mux *http.ServeMux) {
	// The one customer route: read, own payments only.
	mux.HandleFunc("GET /payments", kit.RequireAuth(s.tokens, s.mine))
	// Internal: order's saga and refunds. The gateway never routes these,
	// and they refuse any request carrying a user's token.
	mux.HandleFunc("POST /payments", kit.InternalOnly(s.charge))
	mux.HandleFunc("GET /orders/{orderId}/payments", kit.InternalOnly(s.ofOrder))
	mux.HandleFunc("POST /payments/{id}/refund", kit.InternalOnly(s.refund))
}

func (s *service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
