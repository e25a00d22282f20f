package product

import (
	"context"
	"errors"
	"net/http"

	productv1 "github.com/switchboard-dev/switchboard/gen/switchboard/product/v1"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Definition registers the service with the binary.
var Definition = kit.Definition{Name: "product", Needs: kit.Needs{Auth: true}, New: New}

type service struct {
	cat    *Catalog
	tokens kit.Verifier
}

// New builds the product service and seeds the demo catalog.
func New(ctx context.Context, d kit.Deps) (kit.Service, error) {
	if d.Bus == nil {
		return nil, errMissingBus
	}
	if d.Tokens == nil {
		return nil, errors.New("product: needs a token verifier")
	}
	cat, err := CatalogOn(d.Bus)
	if err != nil {
		return nil, err
	}
	if d.Config.String("SEED_DEMO") != "false" {
		if err := cat.Seed(ctx); err != nil {
			return nil, err
		}
	}
	return &service{cat: cat, tokens: d.Tokens}, nil
}

var errMissingBus = errors.New("product: needs NATS")

// CatalogOn opens the catalog on b's products and stock buckets. Besides
// New, the transport benchmark (test/bench) uses it to serve the same
// reservations over REST and NATS request-reply, to compare with gRPC.
func CatalogOn(b *kit.Bus) (*Catalog, error) {
	items, err := kit.NewStore[item](b.Bucket("products"))
	if err != nil {
		return nil, err
	}
	stocks, err := kit.NewStore[stock](b.Bucket("stock"))
	if err != nil {
		return nil, err
	}
	res, err := kit.NewStore[Reservation](b.Bucket("stock"))
	if err != nil {
		return nil, err
	}
	return NewCatalog(items, stocks, res)
}

func (s *service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /products", s.list)
	mux.HandleFunc("GET /products/{id}", s.get)
	// Staff only. The role is checked here, whatever the gateway checked.
	mux.HandleFunc("POST /products", kit.RequireAdmin(s.tokens, s.create))
	mux.HandleFunc("PATCH /products/{id}", kit.RequireAdmin(s.tokens, s.update))
	mux.HandleFunc("GET /stock/{id}", kit.RequireAdmin(s.tokens, s.stock))
	mux.HandleFunc("PUT /stock/{id}", kit.RequireAdmin(s.tokens, s.setStock))
}

// RegisterGRPC serves the stock API order's saga calls.
func (s *service) RegisterGRPC(srv *kit.GRPCServer) {
	productv1.RegisterStockServer(srv, stockServer{cat: s.cat})
}

func (s *service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
