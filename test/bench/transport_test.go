package bench

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/local"
	"github.com/switchboard-dev/switchboard/services/order"
	"github.com/switchboard-dev/switchboard/services/product"
)

// The same internal operation, reserve one unit and release it, over the
// three ways a service can call another here:
//
//   - gRPC with mutual TLS: product's real Stock server (its policy admits
//     order), called with order's real typed client (order.GRPCStock over
//     kit.GRPCClient: deadline, retries, breaker, metrics);
//   - REST/JSON over HTTP/1.1 with mutual TLS: the reservation handlers
//     product served before issue 11, behind the same kit.Middleware
//     every API port has, on a listener of the benchmark's own;
//   - NATS request-reply on the platform's broker (plain TCP, as the
//     operator renders it), a goroutine per request on the server side.
//
// The REST and NATS servers exist for this measurement only. All three run
// product's Catalog on the same buckets, so they do the same JetStream
// work; only the transport differs.

// reserver is the operation under test, whatever carries it.
type reserver interface {
	Reserve(ctx context.Context, productID, orderID string, quantity int64) error
	Release(ctx context.Context, productID, orderID string) error
}

// The caller and the callee.
const svcOrder, svcProduct = "order", "product"

// callTimeout is each call's deadline, as order's gRPC client sets one.
const callTimeout = 3 * time.Second

var (
	transportsOnce sync.Once
	transports     []namedReserver
	stockProducts  []string
	transportsErr  error
)

type namedReserver struct {
	name string
	r    reserver
}

func startTransports(b *testing.B) ([]namedReserver, []string) {
	p := start(b)
	transportsOnce.Do(func() {
		stockProducts = createProducts(b, p, 16)
		transports, transportsErr = newTransports(p)
	})
	if transportsErr != nil {
		b.Fatal(transportsErr)
	}
	return transports, stockProducts
}

func newTransports(p *local.Platform) ([]namedReserver, error) {
	ctx := context.Background()
	orderIdent, err := p.Identity(svcOrder)
	if err != nil {
		return nil, err
	}
	productIdent, err := p.Identity(svcProduct)
	if err != nil {
		return nil, err
	}

	// gRPC: the product service the platform runs, and order's client.
	cc, err := kit.NewGRPCClient(svcProduct, p.GRPCAddrs[svcProduct], orderIdent, kit.NewMetrics(svcOrder), kit.GRPCClientOptions{ClientOptions: kit.ClientOptions{Timeout: callTimeout}})
	if err != nil {
		return nil, err
	}
	grpcStock := grpcReserver{order.NewGRPCStock(cc)}

	// The same Catalog, on a bus of its own as product's broker user.
	cfg, err := kit.LoadConfig(svcProduct, product.Definition.Needs, kit.MapEnv(p.Env(svcProduct)))
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bus, err := kit.ConnectBus(ctx, cfg, log, kit.NewMetrics(svcProduct))
	if err != nil {
		return nil, err
	}
	cat, err := product.CatalogOn(bus)
	if err != nil {
		return nil, err
	}

	rest, err := serveREST(cat, productIdent, p.Base.Sibling(svcOrder), log)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute,
		TLSClientConfig: kit.ClientTLSConfig(orderIdent, kit.AuthorizeID(p.Base.Sibling(svcProduct)))}
	restStock := &restReserver{base: rest, c: &http.Client{Transport: tr}}

	natsStock, err := serveNATS(p, cat)
	if err != nil {
		return nil, err
	}
	return []namedReserver{{"grpc", grpcStock}, {"rest", restStock}, {"nats", natsStock}}, nil
}

// grpcReserver is order's own port.
type grpcReserver struct{ s *order.GRPCStock }

func (g grpcReserver) Reserve(ctx context.Context, productID, orderID string, quantity int64) error {
	_, err := g.s.Reserve(ctx, productID, orderID, quantity)
	return err
}

func (g grpcReserver) Release(ctx context.Context, productID, orderID string) error {
	return g.s.Release(ctx, productID, orderID)
}

// reserveRequest is the body of POST /stock/{id}/reservations, and of a
// NATS reserve request with the product id in it.
type reserveRequest struct {
	ProductID string `json:"productId,omitempty"`
	OrderID   string `json:"orderId"`
	Quantity  int64  `json:"quantity"`
}

// serveREST serves reserve and release as product's API port served them
// before they moved to gRPC, over HTTP/1.1 with mutual TLS admitting
// caller alone, and returns its base URL.
func serveREST(cat *product.Catalog, ident *kit.Identity, caller kit.SPIFFEID, log *slog.Logger) (string, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /stock/{id}/reservations", func(w http.ResponseWriter, r *http.Request) {
		req, err := kit.Decode[reserveRequest](r)
		if err != nil {
			kit.WriteError(w, r, err)
			return
		}
		res, created, err := cat.Reserve(r.Context(), r.PathValue("id"), req.OrderID, req.Quantity)
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		kit.Reply(w, r, status, res, err)
	})
	mux.HandleFunc("DELETE /stock/{id}/reservations/{orderId}", func(w http.ResponseWriter, r *http.Request) {
		res, err := cat.Release(r.Context(), r.PathValue("id"), r.PathValue("orderId"))
		kit.Reply(w, r, http.StatusOK, res, err)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{
		Handler:   kit.Middleware(log, kit.NewMetrics(svcProduct), mux),
		TLSConfig: kit.ServerTLSConfig(ident, kit.AuthorizeID(caller)),
		// HTTP/1.1, as the services' API ports speak to the gateway.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	return "https://" + ln.Addr().String(), nil
}

type restReserver struct {
	base string
	c    *http.Client
}

func (r *restReserver) Reserve(ctx context.Context, productID, orderID string, quantity int64) error {
	body, _ := json.Marshal(reserveRequest{OrderID: orderID, Quantity: quantity})
	return r.do(ctx, http.MethodPost, "/stock/"+url.PathEscape(productID)+"/reservations", body, http.StatusCreated)
}

func (r *restReserver) Release(ctx context.Context, productID, orderID string) error {
	return r.do(ctx, http.MethodDelete, "/stock/"+url.PathEscape(productID)+"/reservations/"+url.PathEscape(orderID), nil, http.StatusOK)
}

func (r *restReserver) do(ctx context.Context, method, path string, body []byte, want int) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var res product.Reservation
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d", method, path, resp.StatusCode)
	}
	return nil
}

// The NATS subjects of the benchmark's reserve and release.
const (
	natsReserve = "bench.stock.reserve"
	natsRelease = "bench.stock.release"
)

// natsReply is a NATS answer: the reservation, or the error product
// would have answered.
type natsReply struct {
	Reservation *product.Reservation `json:"reservation,omitempty"`
	Error       *kit.Error           `json:"error,omitempty"`
}

// serveNATS answers reserve and release requests on the platform's broker,
// each in a goroutine of its own (a subscription's handler runs one message
// at a time), and returns a client on a connection of its own.
func serveNATS(p *local.Platform, cat *product.Catalog) (*natsReserver, error) {
	srv, err := nats.Connect(p.NATSURL, nats.UserInfo(p.BrokerUser, p.BrokerPassword), nats.Name("bench-product"))
	if err != nil {
		return nil, err
	}
	answer := func(m *nats.Msg, res product.Reservation, err error) {
		var rep natsReply
		if err != nil {
			rep.Error = kit.AsError(err)
		} else {
			rep.Reservation = &res
		}
		data, _ := json.Marshal(rep)
		_ = m.Respond(data)
	}
	handle := func(fn func(context.Context, reserveRequest) (product.Reservation, error)) nats.MsgHandler {
		return func(m *nats.Msg) {
			go func() {
				var req reserveRequest
				if err := json.Unmarshal(m.Data, &req); err != nil {
					answer(m, product.Reservation{}, kit.Invalid("body", "malformed JSON"))
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
				defer cancel()
				res, err := fn(ctx, req)
				answer(m, res, err)
			}()
		}
	}
	if _, err := srv.QueueSubscribe(natsReserve, svcProduct, handle(func(ctx context.Context, r reserveRequest) (product.Reservation, error) {
		res, _, err := cat.Reserve(ctx, r.ProductID, r.OrderID, r.Quantity)
		return res, err
	})); err != nil {
		return nil, err
	}
	if _, err := srv.QueueSubscribe(natsRelease, svcProduct, handle(func(ctx context.Context, r reserveRequest) (product.Reservation, error) {
		return cat.Release(ctx, r.ProductID, r.OrderID)
	})); err != nil {
		return nil, err
	}
	if err := srv.Flush(); err != nil {
		return nil, err
	}
	nc, err := nats.Connect(p.NATSURL, nats.UserInfo(p.BrokerUser, p.BrokerPassword), nats.Name("bench-order"))
	if err != nil {
		return nil, err
	}
	return &natsReserver{nc: nc}, nil
}

type natsReserver struct{ nc *nats.Conn }

func (n *natsReserver) Reserve(ctx context.Context, productID, orderID string, quantity int64) error {
	return n.request(ctx, natsReserve, reserveRequest{ProductID: productID, OrderID: orderID, Quantity: quantity})
}

func (n *natsReserver) Release(ctx context.Context, productID, orderID string) error {
	return n.request(ctx, natsRelease, reserveRequest{ProductID: productID, OrderID: orderID})
}

func (n *natsReserver) request(ctx context.Context, subject string, req reserveRequest) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	data, _ := json.Marshal(req)
	m, err := n.nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return err
	}
	var rep natsReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return err
	}
	if rep.Error != nil {
		return rep.Error
	}
	if rep.Reservation == nil {
		return errors.New("empty reply")
	}
	return nil
}

// BenchmarkReserveRelease measures one operation, reserve one unit of a
// product for a new order and release it (two round trips), over gRPC,
// REST and NATS, at 1 and at 16 concurrent callers. Each caller has a
// product of its own, so callers never contend for one stock record and
// the figures compare the transports, not compare-and-set retries.
func BenchmarkReserveRelease(b *testing.B) {
	ways, products := startTransports(b)
	for _, callers := range []int{1, 16} {
		for _, w := range ways {
			b.Run(fmt.Sprintf("%s/callers=%d", w.name, callers), func(b *testing.B) {
				run := kit.NewID()
				lat, rate := runConcurrent(b, callers, func(worker int, i int64) error {
					ctx := context.Background()
					pid, oid := products[worker%len(products)], fmt.Sprintf("%s-%d", run, i)
					if err := w.r.Reserve(ctx, pid, oid, 1); err != nil {
						return fmt.Errorf("%s reserve: %w", w.name, err)
					}
					if err := w.r.Release(ctx, pid, oid); err != nil {
						return fmt.Errorf("%s release: %w", w.name, err)
					}
					return nil
				})
				report(b, lat, rate, "ops/s")
			})
		}
	}
}
