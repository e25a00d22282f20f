package payment

import (
	"context"
	"errors"
	"net/http"

	paymentv1 "github.com/switchboard-dev/switchboard/gen/switchboard/payment/v1"
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
}

// RegisterGRPC serves the payments API order's saga calls.
func (s *service) RegisterGRPC(srv *kit.GRPCServer) {
	paymentv1.RegisterPaymentsServer(srv, paymentsServer{ledger: s.ledger})
}

func (s *service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
