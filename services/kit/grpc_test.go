package kit_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	productv1 "github.com/switchboard-dev/switchboard/gen/switchboard/product/v1"
	"github.com/switchboard-dev/switchboard/internal/loopback"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// stock is a product Stock server whose Reserve does what the test says.
type stock struct {
	productv1.UnimplementedStockServer
	calls   atomic.Int32
	reserve func(ctx context.Context, n int32, req *productv1.ReserveRequest) (*productv1.ReserveResponse, error)
}

func (s *stock) Reserve(ctx context.Context, req *productv1.ReserveRequest) (*productv1.ReserveResponse, error) {
	return s.reserve(ctx, s.calls.Add(1), req)
}

func (s *stock) GetStock(context.Context, *productv1.GetStockRequest) (*productv1.GetStockResponse, error) {
	return &productv1.GetStockResponse{Stock: &productv1.StockLevel{Available: 7}}, nil
}

// stockPolicy lets order call every Stock method.
var stockPolicy = kit.GRPCPolicy{
	productv1.Stock_Reserve_FullMethodName:  {"order"},
	productv1.Stock_Commit_FullMethodName:   {"order"},
	productv1.Stock_Release_FullMethodName:  {"order"},
	productv1.Stock_Restock_FullMethodName:  {"order", "gateway"},
	productv1.Stock_GetStock_FullMethodName: {"order"},
}

type running struct {
	addr    string
	srv     *kit.GRPCServer
	metrics *kit.Metrics
}

// serveStock starts product's gRPC server on loopback with s behind it.
func serveStock(t *testing.T, p *kittest.PKI, s productv1.StockServer, opts ...grpc.ServerOption) running {
	t.Helper()
	m := kit.NewMetrics("product")
	srv, err := kit.NewGRPCServer(p.Identity(t, "product"), m, stockPolicy, quiet, opts...)
	if err != nil {
		t.Fatal(err)
	}
	productv1.RegisterStockServer(srv, s)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("Serve: %v", err)
		}
	})
	return running{addr: ln.Addr().String(), srv: srv, metrics: m}
}

// testOptions retry fast and never let the breaker open by accident.
func testOptions() kit.GRPCClientOptions {
	return kit.GRPCClientOptions{ClientOptions: kit.ClientOptions{
		Timeout: 5 * time.Second, Attempts: 3, Backoff: time.Millisecond, BreakerFailures: 100, BreakerOpenFor: time.Minute,
	}}
}

func dialStock(t *testing.T, p *kittest.PKI, caller, addr string, o kit.GRPCClientOptions) (productv1.StockClient, *kit.GRPCClient, *kit.Metrics) {
	t.Helper()
	m := kit.NewMetrics(caller)
	c, err := kit.NewGRPCClient("product", addr, p.Identity(t, caller), m, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return productv1.NewStockClient(c), c, m
}

var reserveReq = &productv1.ReserveRequest{ProductId: "keyboard", OrderId: "o1", Quantity: 1}

func TestGRPCCallerIdentityAndPolicy(t *testing.T) {
	shop := kittest.NewPKI(t)
	var seen sync.Map // request id → caller
	s := &stock{reserve: func(ctx context.Context, _ int32, _ *productv1.ReserveRequest) (*productv1.ReserveResponse, error) {
		peer, _ := kit.GRPCPeer(ctx)
		seen.Store(kit.RequestID(ctx), peer)
		return &productv1.ReserveResponse{Reservation: &productv1.Reservation{UnitPrice: 12900, State: productv1.ReservationState_RESERVATION_STATE_RESERVED}}, nil
	}}
	srv := serveStock(t, shop, s)
	intruder := kittest.NewPKI(t)
	blog := &kittest.PKI{CA: shop.CA, Base: shop.Base}
	blog.Base.Platform = "blog"

	t.Run("a listed caller is served, and the handler knows who called and the request id", func(t *testing.T) {
		stock, _, _ := dialStock(t, shop, "order", srv.addr, testOptions())
		resp, err := stock.Reserve(kit.WithRequestID(context.Background(), "req-42"), reserveReq)
		if err != nil || resp.GetReservation().GetUnitPrice() != 12900 {
			t.Fatalf("Reserve = %v, %v", resp, err)
		}
		if peer, ok := seen.Load("req-42"); !ok || peer != shop.ID("order") {
			t.Fatalf("the handler saw caller %v for request req-42", peer)
		}
	})
	for name, tc := range map[string]struct {
		caller *kittest.PKI
		as     string
		code   codes.Code
		sentry error
	}{
		"a caller the policy does not list is refused with PermissionDenied": {caller: shop, as: "notification", code: codes.PermissionDenied},
		"a caller listed for another method only is refused":                 {caller: shop, as: "gateway", code: codes.PermissionDenied},
		"a caller of another CA never completes the handshake":               {caller: intruder, as: "order", code: codes.Unavailable, sentry: kit.ErrNotSent},
		"a listed name of another platform never completes the handshake":    {caller: blog, as: "order", code: codes.Unavailable, sentry: kit.ErrNotSent},
	} {
		t.Run(name, func(t *testing.T) {
			o := testOptions()
			if tc.caller != shop {
				// Trust the server, so that it is the server that refuses.
				l := tc.caller.Leaf(t, tc.as)
				ident, err := kit.NewIdentity(l.CertPEM, l.KeyPEM, append(append([]byte{}, tc.caller.CA.CertPEM...), shop.CA.CertPEM...))
				if err != nil {
					t.Fatal(err)
				}
				o.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(
					kit.ClientTLSConfig(ident, kit.AuthorizeID(shop.ID("product")))))}
			}
			stock, _, _ := dialStock(t, tc.caller, tc.as, srv.addr, o)
			before := s.calls.Load()
			_, err := stock.Reserve(context.Background(), reserveReq)
			if status.Code(err) != tc.code {
				t.Fatalf("Reserve = %v; want %v", err, tc.code)
			}
			if tc.sentry != nil && !errors.Is(err, tc.sentry) {
				t.Fatalf("Reserve = %v; want it to match %v", err, tc.sentry)
			}
			if tc.code == codes.PermissionDenied && kit.AsError(err).Code != kit.CodeForbidden {
				t.Fatalf("code %q; want %q", kit.AsError(err).Code, kit.CodeForbidden)
			}
			if s.calls.Load() != before {
				t.Fatal("the handler ran for a refused caller")
			}
		})
	}
	t.Run("a caller without a certificate never completes the handshake", func(t *testing.T) {
		cfg := kit.ClientTLSConfig(shop.Identity(t, "order"), kit.AuthorizeID(shop.ID("product")))
		cfg.GetClientCertificate = nil
		conn, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		before := s.calls.Load()
		_, err = productv1.NewStockClient(conn).Reserve(context.Background(), reserveReq)
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("Reserve = %v; want the handshake refused", err)
		}
		if s.calls.Load() != before {
			t.Fatal("the handler ran")
		}
	})
	t.Run("any service of the platform may ask for health", func(t *testing.T) {
		_, c, _ := dialStock(t, shop, "notification", srv.addr, testOptions())
		resp, err := healthpb.NewHealthClient(c).Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check = %v, %v", resp, err)
		}
		srv.srv.Health().SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		defer srv.srv.Health().SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		if resp, err := healthpb.NewHealthClient(c).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("Check while draining = %v, %v", resp, err)
		}
	})
}

func TestGRPCRefusesAPeerWithoutIdentityEvenWithoutTLS(t *testing.T) {
	// The policy does not rely on the transport alone: a server built with
	// other credentials by mistake still refuses callers it cannot name.
	shop := kittest.NewPKI(t)
	s := &stock{reserve: func(context.Context, int32, *productv1.ReserveRequest) (*productv1.ReserveResponse, error) {
		return &productv1.ReserveResponse{}, nil
	}}
	srv := serveStock(t, shop, s, grpc.Creds(insecure.NewCredentials()))
	conn, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = productv1.NewStockClient(conn).Reserve(context.Background(), reserveReq)
	if status.Code(err) != codes.Unauthenticated || s.calls.Load() != 0 {
		t.Fatalf("Reserve = %v after %d handler runs; want Unauthenticated and none", err, s.calls.Load())
	}
	_, err = healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Check = %v; want Unauthenticated", err)
	}
}

var errOutOfStock = errors.New("out of stock")

func TestGRPCAnswers(t *testing.T) {
	shop := kittest.NewPKI(t)
	for name, tc := range map[string]struct {
		handler  func() (*productv1.ReserveResponse, error)
		code     codes.Code
		kitCode  string
		field    string
		sentinel error // matched through kit.Reasons
		outcome  error // ErrAmbiguous / ErrNotSent; nil for a definite answer
		leak     string
	}{
		"a reservation comes back": {
			handler: func() (*productv1.ReserveResponse, error) {
				return &productv1.ReserveResponse{Reservation: &productv1.Reservation{Quantity: 1}}, nil
			},
			code: codes.OK,
		},
		"out of stock travels as FailedPrecondition with its reason and field": {
			handler: func() (*productv1.ReserveResponse, error) {
				return nil, &kit.Error{Status: http.StatusConflict, Code: "out_of_stock", Message: "only 0 left", Field: "quantity"}
			},
			code: codes.FailedPrecondition, kitCode: "out_of_stock", field: "quantity", sentinel: errOutOfStock,
		},
		"an unknown product travels as NotFound": {
			handler: func() (*productv1.ReserveResponse, error) {
				return nil, &kit.Error{Status: http.StatusNotFound, Code: "unknown_product", Message: "no such product", Field: "product_id"}
			},
			code: codes.NotFound, kitCode: "unknown_product", field: "product_id",
		},
		"a status built with StatusError travels as it is": {
			handler: func() (*productv1.ReserveResponse, error) {
				return nil, kit.StatusError(codes.FailedPrecondition, "reservation_released", "", "released")
			},
			code: codes.FailedPrecondition, kitCode: "reservation_released",
		},
		"contention travels as Aborted": {
			handler: func() (*productv1.ReserveResponse, error) {
				return nil, kit.Errorf(http.StatusConflict, kit.CodeConflict, "busy")
			},
			code: codes.Aborted, kitCode: kit.CodeConflict,
		},
		"an unexpected error is Internal, ambiguous, and keeps its detail at home": {
			handler: func() (*productv1.ReserveResponse, error) { return nil, errors.New("kv bucket exploded") },
			code:    codes.Internal, kitCode: kit.CodeUnavailable, outcome: kit.ErrAmbiguous, leak: "exploded",
		},
		"a panic is Internal and ambiguous, and the server goes on": {
			handler: func() (*productv1.ReserveResponse, error) { panic("boom") },
			code:    codes.Internal, kitCode: kit.CodeUnavailable, outcome: kit.ErrAmbiguous, leak: "boom",
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := &stock{reserve: func(context.Context, int32, *productv1.ReserveRequest) (*productv1.ReserveResponse, error) {
				return tc.handler()
			}}
			srv := serveStock(t, shop, s)
			stock, _, _ := dialStock(t, shop, "order", srv.addr, testOptions())
			resp, err := stock.Reserve(context.Background(), reserveReq)
			if status.Code(err) != tc.code {
				t.Fatalf("Reserve = %v, %v; want code %v", resp, err, tc.code)
			}
			if s.calls.Load() != 1 {
				t.Fatalf("the handler ran %d times; a definite answer or a failure inside the server is never retried", s.calls.Load())
			}
			if err == nil {
				return
			}
			e := kit.AsError(err)
			if e.Code != tc.kitCode || e.Field != tc.field {
				t.Fatalf("*kit.Error %+v; want code %q field %q", e, tc.kitCode, tc.field)
			}
			mapped := kit.Reasons{"out_of_stock": errOutOfStock}.Wrap(err)
			if tc.sentinel != nil && !errors.Is(mapped, tc.sentinel) {
				t.Fatalf("Reasons.Wrap(%v) does not match %v", err, tc.sentinel)
			}
			if tc.sentinel == nil && errors.Is(mapped, errOutOfStock) {
				t.Fatalf("Reasons.Wrap(%v) matched a sentinel of another reason", err)
			}
			if status.Code(mapped) != tc.code {
				t.Fatalf("the status did not survive Reasons.Wrap: %v", status.Code(mapped))
			}
			for _, o := range []error{kit.ErrAmbiguous, kit.ErrNotSent} {
				if want := o == tc.outcome; errors.Is(err, o) != want {
					t.Fatalf("errors.Is(%v, %v) = %v, want %v", err, o, !want, want)
				}
			}
			if tc.leak != "" && strings.Contains(err.Error(), tc.leak) {
				t.Fatalf("the client saw the server's detail: %v", err)
			}
		})
	}
}

func TestGRPCRetriesIdempotentMethodsOnly(t *testing.T) {
	shop := kittest.NewPKI(t)
	unavailableTwice := func(_ context.Context, n int32, _ *productv1.ReserveRequest) (*productv1.ReserveResponse, error) {
		if n <= 2 {
			return nil, kit.Unavailable("stock store unreachable")
		}
		return &productv1.ReserveResponse{Replayed: true}, nil
	}
	t.Run("an idempotent method is sent again until it is answered", func(t *testing.T) {
		s := &stock{reserve: unavailableTwice}
		srv := serveStock(t, shop, s)
		stock, _, m := dialStock(t, shop, "order", srv.addr, testOptions())
		resp, err := stock.Reserve(context.Background(), reserveReq)
		if err != nil || !resp.GetReplayed() || s.calls.Load() != 3 {
			t.Fatalf("Reserve = %v, %v after %d calls; want the third answer", resp, err, s.calls.Load())
		}
		if got := metricSum(t, m, "switchboard_grpc_client_retries_total", map[string]string{"method": "Stock/Reserve"}); got != 2 {
			t.Errorf("retries counted %v, want 2", got)
		}
		if got := metricSum(t, m, "switchboard_grpc_client_calls_total", map[string]string{"method": "Stock/Reserve", "outcome": "OK"}); got != 1 {
			t.Errorf("calls with outcome OK counted %v, want 1", got)
		}
		if got := metricSum(t, m, "grpc_client_handled_total", map[string]string{"grpc_method": "Reserve", "grpc_code": "Unavailable"}); got != 2 {
			t.Errorf("attempts answered Unavailable counted %v, want 2", got)
		}
		if got := metricSum(t, srv.metrics, "grpc_server_handled_total", map[string]string{"grpc_method": "Reserve", "grpc_code": "OK"}); got != 1 {
			t.Errorf("the server counted %v OK answers, want 1", got)
		}
	})
	t.Run("a method not declared idempotent is sent once, and its failure is ambiguous", func(t *testing.T) {
		s := &stock{reserve: unavailableTwice}
		srv := serveStock(t, shop, s)
		o := testOptions()
		o.Idempotent = func(string) bool { return false }
		stock, _, _ := dialStock(t, shop, "order", srv.addr, o)
		_, err := stock.Reserve(context.Background(), reserveReq)
		if !errors.Is(err, kit.ErrAmbiguous) || s.calls.Load() != 1 {
			t.Fatalf("Reserve = %v after %d calls; want one ambiguous call", err, s.calls.Load())
		}
	})
	for method, want := range map[string]bool{
		productv1.Stock_Reserve_FullMethodName:  true,  // IDEMPOTENT
		productv1.Stock_GetStock_FullMethodName: true,  // NO_SIDE_EFFECTS
		healthpb.Health_Check_FullMethodName:    false, // not declared
		"/switchboard.product.v1.Stock/Nothing": false,
		"/no.such.Service/Reserve":              false,
		"garbage":                               false,
	} {
		if got := kit.ProtoIdempotent(method); got != want {
			t.Errorf("ProtoIdempotent(%q) = %v, want %v", method, got, want)
		}
	}
}

// A store's contention (503 contention) is the server's answer, not its
// failure: the call is sent again, the breaker does not count it, and when
// every attempt meets it the caller gets the 503 contention itself, neither
// ambiguous nor "not sent".
func TestGRPCContentionIsRetriedAndNeverOpensTheBreaker(t *testing.T) {
	shop := kittest.NewPKI(t)
	contended := func(_ context.Context, _ int32, _ *productv1.ReserveRequest) (*productv1.ReserveResponse, error) {
		return nil, kit.AsError(kit.ErrContention)
	}
	s := &stock{reserve: contended}
	srv := serveStock(t, shop, s)
	o := testOptions()
	o.BreakerFailures = 2
	stock, cc, _ := dialStock(t, shop, "order", srv.addr, o)
	for range 2 {
		_, err := stock.Reserve(context.Background(), reserveReq)
		if e := kit.AsError(err); e.Code != kit.CodeContention || errors.Is(err, kit.ErrAmbiguous) || errors.Is(err, kit.ErrNotSent) {
			t.Fatalf("Reserve = %v; want the 503 contention answer", err)
		}
	}
	if s.calls.Load() != 6 {
		t.Errorf("the handler ran %d times, want 3 attempts of 2 calls", s.calls.Load())
	}
	if cc.Open() {
		t.Fatal("contention opened the breaker")
	}
}

func TestGRPCWorstOutcomeAcrossAttempts(t *testing.T) {
	shop := kittest.NewPKI(t)
	t.Run("a first attempt that reached the server keeps the call ambiguous when later ones are refused", func(t *testing.T) {
		reached := make(chan struct{})
		s := &stock{reserve: func(ctx context.Context, n int32, _ *productv1.ReserveRequest) (*productv1.ReserveResponse, error) {
			if n == 1 {
				close(reached)
			}
			<-ctx.Done() // the server went away mid-call
			return nil, ctx.Err()
		}}
		srv := serveStock(t, shop, s)
		go func() {
			<-reached
			srv.srv.Stop() // connections close; the port refuses from now on
		}()
		stock, _, m := dialStock(t, shop, "order", srv.addr, testOptions())
		_, err := stock.Reserve(context.Background(), reserveReq)
		if !errors.Is(err, kit.ErrAmbiguous) || errors.Is(err, kit.ErrNotSent) {
			t.Fatalf("Reserve = %v; want ambiguous, not 'not sent'", err)
		}
		if s.calls.Load() != 1 {
			t.Fatalf("the handler ran %d times, want 1", s.calls.Load())
		}
		if got := metricSum(t, m, "switchboard_grpc_client_retries_total", nil); got != 2 {
			t.Fatalf("retries %v; want the later attempts made (and refused)", got)
		}
		if e := kit.AsError(err); e.Status != http.StatusServiceUnavailable || e.Code != kit.CodeUnavailable {
			t.Fatalf("*kit.Error %+v; want 503 %s", e, kit.CodeUnavailable)
		}
	})
	t.Run("attempts that time out after sending are ambiguous", func(t *testing.T) {
		s := &stock{reserve: func(ctx context.Context, _ int32, _ *productv1.ReserveRequest) (*productv1.ReserveResponse, error) {
			<-ctx.Done() // slower than the client's deadline
			return nil, ctx.Err()
		}}
		srv := serveStock(t, shop, s)
		o := testOptions()
		o.Timeout = 300 * time.Millisecond
		stock, _, m := dialStock(t, shop, "order", srv.addr, o)
		// Connect first, so that the deadline runs against the handler, not
		// against the handshake of a slow, busy machine.
		if _, err := stock.GetStock(context.Background(), &productv1.GetStockRequest{ProductId: "keyboard"}); err != nil {
			t.Fatal(err)
		}
		_, err := stock.Reserve(context.Background(), reserveReq)
		if !errors.Is(err, kit.ErrAmbiguous) || status.Code(err) != codes.DeadlineExceeded || s.calls.Load() == 0 {
			t.Fatalf("Reserve = %v after %d handler runs; want ambiguous, DeadlineExceeded", err, s.calls.Load())
		}
		if got := metricSum(t, m, "switchboard_grpc_client_retries_total", nil); got != 2 {
			t.Fatalf("retries %v; want every attempt made", got)
		}
	})
	t.Run("attempts that are all refused were not sent", func(t *testing.T) {
		port, err := loopback.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		stock, _, m := dialStock(t, shop, "order", fmt.Sprintf("127.0.0.1:%d", port), testOptions())
		_, err = stock.Reserve(context.Background(), reserveReq)
		if !errors.Is(err, kit.ErrNotSent) || errors.Is(err, kit.ErrAmbiguous) {
			t.Fatalf("Reserve = %v; want not sent", err)
		}
		if got := metricSum(t, m, "switchboard_grpc_client_calls_total", map[string]string{"outcome": "not_sent"}); got != 1 {
			t.Fatalf("not_sent outcomes %v, want 1", got)
		}
	})
	t.Run("a caller that gives up before sending has not sent", func(t *testing.T) {
		port, err := loopback.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		stock, _, _ := dialStock(t, shop, "order", fmt.Sprintf("127.0.0.1:%d", port), testOptions())
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err = stock.Reserve(ctx, reserveReq)
		if !errors.Is(err, kit.ErrNotSent) || errors.Is(err, kit.ErrAmbiguous) {
			t.Fatalf("Reserve = %v; want not sent", err)
		}
	})
}

func TestGRPCBreaker(t *testing.T) {
	shop := kittest.NewPKI(t)
	o := testOptions()
	o.Attempts, o.BreakerFailures = 1, 2
	t.Run("transport failures open it, and it then fails fast without sending", func(t *testing.T) {
		port, err := loopback.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		stock, c, _ := dialStock(t, shop, "order", fmt.Sprintf("127.0.0.1:%d", port), o)
		for i := 0; i < 2; i++ {
			if _, err := stock.Reserve(context.Background(), reserveReq); !errors.Is(err, kit.ErrNotSent) || errors.Is(err, kit.ErrBreakerOpen) {
				t.Fatalf("call %d = %v; want refused by the upstream", i, err)
			}
		}
		if !c.Open() {
			t.Fatal("the breaker is closed after two transport failures")
		}
		_, err = stock.Reserve(context.Background(), reserveReq)
		if !errors.Is(err, kit.ErrBreakerOpen) || !errors.Is(err, kit.ErrNotSent) {
			t.Fatalf("Reserve = %v; want breaker open, not sent", err)
		}
	})
	t.Run("domain answers never open it", func(t *testing.T) {
		s := &stock{reserve: func(context.Context, int32, *productv1.ReserveRequest) (*productv1.ReserveResponse, error) {
			return nil, kit.Errorf(http.StatusConflict, "out_of_stock", "none left")
		}}
		srv := serveStock(t, shop, s)
		stock, c, _ := dialStock(t, shop, "order", srv.addr, o)
		for i := 0; i < 5; i++ {
			if _, err := stock.Reserve(context.Background(), reserveReq); kit.AsError(err).Code != "out_of_stock" {
				t.Fatalf("call %d = %v; want out_of_stock", i, err)
			}
		}
		if c.Open() || s.calls.Load() != 5 {
			t.Fatalf("open=%v after %d handled calls; want closed after 5", c.Open(), s.calls.Load())
		}
	})
}

func TestGRPCShutdownEndsOpenStreams(t *testing.T) {
	shop := kittest.NewPKI(t)
	srv := serveStock(t, shop, &stock{})
	_, c, _ := dialStock(t, shop, "notification", srv.addr, testOptions())
	watch, err := healthpb.NewHealthClient(c).Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := watch.Recv(); err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch = %v, %v", first, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	srv.srv.Shutdown(ctx) // returns although the watcher never hangs up
	for {
		resp, err := watch.Recv()
		if err != nil {
			break // the stream was closed
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("Watch during shutdown = %v", resp)
		}
	}
}

func TestGRPCPolicyMustMatchTheServedMethods(t *testing.T) {
	shop := kittest.NewPKI(t)
	for name, tc := range map[string]struct {
		policy kit.GRPCPolicy
		want   string
	}{
		"a served method without a policy is an error": {
			policy: kit.GRPCPolicy{productv1.Stock_Reserve_FullMethodName: {"order"}},
			want:   "no policy for " + productv1.Stock_Commit_FullMethodName,
		},
		"a policy for a method nobody serves is an error": {
			policy: func() kit.GRPCPolicy {
				p := kit.GRPCPolicy{"/switchboard.product.v1.Stock/Reserv": {"order"}}
				for k, v := range stockPolicy {
					p[k] = v
				}
				return p
			}(),
			want: "names /switchboard.product.v1.Stock/Reserv, which is not served",
		},
		"a policy that covers every method is accepted": {policy: stockPolicy},
	} {
		t.Run(name, func(t *testing.T) {
			srv, err := kit.NewGRPCServer(shop.Identity(t, "product"), kit.NewMetrics("product"), tc.policy, quiet)
			if err != nil {
				t.Fatal(err)
			}
			productv1.RegisterStockServer(srv, &stock{})
			err = srv.CheckPolicy()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckPolicy = %v; want %q", err, tc.want)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if err := srv.Serve(ln); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Serve = %v; want it to refuse to start", err)
			}
		})
	}
}

func TestServerAndClientsShareOneRegistry(t *testing.T) {
	// order serves gRPC and calls two upstreams: one registry, no
	// duplicate-registration panic.
	shop := kittest.NewPKI(t)
	m := kit.NewMetrics("order")
	ident := shop.Identity(t, "order")
	if _, err := kit.NewGRPCServer(ident, m, kit.GRPCPolicy{}, quiet); err != nil {
		t.Fatal(err)
	}
	for _, up := range []string{"product", "payment"} {
		c, err := kit.NewGRPCClient(up, "127.0.0.1:1", ident, m, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
	}
}

// metricSum sums the samples of a counter family whose labels include want.
func metricSum(t *testing.T, m *kit.Metrics, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, metric := range mf.GetMetric() {
			if hasLabels(metric, want) {
				sum += metric.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func TestGRPCClientOptionsFromEnv(t *testing.T) {
	cfg := kit.Config{Env: kit.MapEnv(map[string]string{"UPSTREAM_TIMEOUT": "250ms", "UPSTREAM_ATTEMPTS": "4", "BREAKER_FAILURES": "7"})}
	o, err := kit.GRPCClientOptionsFromEnv(cfg)
	if err != nil || o.Timeout != 250*time.Millisecond || o.Attempts != 4 || o.BreakerFailures != 7 || o.BreakerOpenFor != 10*time.Second {
		t.Fatalf("GRPCClientOptionsFromEnv = %+v, %v", o, err)
	}
	if _, err := kit.GRPCClientOptionsFromEnv(kit.Config{Env: kit.MapEnv(map[string]string{"UPSTREAM_TIMEOUT": "soon"})}); err == nil || !strings.Contains(err.Error(), "UPSTREAM_TIMEOUT") {
		t.Fatalf("a bad UPSTREAM_TIMEOUT: %v", err)
	}
}
