package order

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// Definition registers the service with the binary.
var Definition = kit.Definition{Name: "order", Needs: kit.Needs{Auth: true}, New: New}

type service struct {
	orders *Orders
	recent *Recent
	tokens kit.Verifier
	life   context.Context
	sweep  time.Duration
}

// New builds the order service. SAGA_LEASE (default 30s) is how long a saga
// may run before another instance resumes it; SAGA_SWEEP (default 30s) how
// often unfinished sagas are looked for.
func New(ctx context.Context, d kit.Deps) (kit.Service, error) {
	if d.Bus == nil {
		return nil, errors.New("order: needs NATS")
	}
	lease, err := d.Config.Duration("SAGA_LEASE", 30*time.Second)
	if err != nil {
		return nil, err
	}
	sweep, err := d.Config.Duration("SAGA_SWEEP", 30*time.Second)
	if err != nil {
		return nil, err
	}
	products, err := d.GRPC("product")
	if err != nil {
		return nil, err
	}
	payments, err := d.GRPC("payment")
	if err != nil {
		return nil, err
	}
	st, err := kit.NewStore[record](d.Bus.Bucket("orders"))
	if err != nil {
		return nil, err
	}
	orders, err := NewOrders(st, TraceStock(NewGRPCStock(products)), TracePayments(NewGRPCPayments(payments)), d.Bus, "order-"+kit.NewID(), lease)
	if err != nil {
		return nil, err
	}
	return &service{orders: orders, recent: NewRecent(st.Bucket(), time.Minute), tokens: d.Tokens, life: ctx, sweep: sweep}, nil
}

func (s *service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /orders", kit.RequireAuth(s.tokens, s.place))
	mux.HandleFunc("GET /orders", kit.RequireAuth(s.tokens, s.list))
	mux.HandleFunc("GET /orders/{id}", kit.RequireAuth(s.tokens, s.get))
	// Staff only, checked here whatever the gateway checked.
	mux.HandleFunc("POST /orders/{id}/refund", kit.RequireAdmin(s.tokens, s.refund))
	mux.HandleFunc("GET /admin/orders", kit.RequireAdmin(s.tokens, s.adminOrders))
}

// Run resumes unfinished sagas at start and then every SAGA_SWEEP.
func (s *service) Run(ctx context.Context) error {
	t := time.NewTicker(s.sweep)
	defer t.Stop()
	for {
		if n, err := s.orders.Sweep(ctx); err != nil && ctx.Err() == nil {
			kit.Logger(ctx).Warn("saga sweep", "err", err)
		} else if n > 0 {
			kit.Logger(ctx).Info("saga sweep resumed orders", "count", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
