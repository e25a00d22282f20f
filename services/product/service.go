package product

import (
	"context"
	"errors"
	"net/http"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// Definition registers the service with the binary.
var Definition = kit.Definition{Name: "product", New: New}

type service struct{ cat *Catalog }

// New builds the product service and seeds the demo catalog.
func New(ctx context.Context, d kit.Deps) (kit.Service, error) {
	if d.Bus == nil {
		return nil, errMissingBus
	}
	items, err := kit.NewStore[item](d.Bus.Bucket("products"))
	if err != nil {
		return nil, err
	}
	stocks, err := kit.NewStore[stock](d.Bus.Bucket("stock"))
	if err != nil {
		return nil, err
	}
	res, err := kit.NewStore[Reservation](d.Bus.Bucket("stock"))
	if err != nil {
		return nil, err
	}
	cat, err := NewCatalog(items, stocks, res)
	if err != nil {
		return nil, err
	}
	if d.Config.String("SEED_DEMO") != "false" {
		if err := cat.Seed(ctx); err != nil {
			return nil, err
		}
	}
	return &service{cat: cat}, nil
}

var errMissingBus = errors.New("product: needs NATS")

func (s *service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /products", s.list)
	mux.HandleFunc("POST /products", s.create)
	mux.HandleFunc("GET /products/{id}", s.get)
	mux.HandleFunc("GET /stock/{id}", s.stock)
	mux.HandleFunc("PUT /stock/{id}", s.restock)
	mux.HandleFunc("POST /stock/{id}/reservations", s.reserve)
	mux.HandleFunc("DELETE /stock/{id}/reservations/{orderId}", s.release)
	mux.HandleFunc("POST /stock/{id}/reservations/{orderId}/commit", s.commit)
}

func (s *service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
