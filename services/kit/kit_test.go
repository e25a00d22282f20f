package kit_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/internal/tokenkeys"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// with returns a copy of env with k set to v, or removed when v is "-".
func with(env map[string]string, k, v string) map[string]string {
	m := map[string]string{}
	for a, b := range env {
		m[a] = b
	}
	if v == "-" {
		delete(m, k)
	} else {
		m[k] = v
	}
	return m
}

func TestLoadConfig(t *testing.T) {
	base := map[string]string{"NATS_URL": "nats://n:4222", "NATS_USER": "u", "NATS_PASSWORD": "p", "TOKEN_KEYS": kittest.TokenKeysPEM(),
		"PRODUCT_GRPC": "dns:///p-product.ns.svc.cluster.local:9090", "PAYMENT_GRPC": "dns:///p-payment.ns.svc.cluster.local:9090"}
	issuer := with(base, "TOKEN_SIGNING_KEY", kittest.SigningKeyPEM())
	gateway := map[string]string{"TOKEN_KEYS": kittest.TokenKeysPEM(), "PRODUCT_URL": "https://p-product.ns.svc.cluster.local"}
	tlsDir := t.TempDir()
	kittest.Platform(t).WriteIdentityDir(t, tlsDir, "order")
	other, _ := tokenkeys.EncodePrivate(kittest.OtherSigningKey)
	tests := []struct {
		name    string
		service string
		env     map[string]string
		wantErr string
	}{
		{"the operator's env is accepted", "order", base, ""},
		{"the operator's env for an issuer is accepted", "user", issuer, ""},
		{"a missing NATS_URL is named", "order", with(base, "NATS_URL", "-"), "NATS_URL is required"},
		{"a malformed NATS_URL is named", "order", with(base, "NATS_URL", "localhost:4222"), "NATS_URL="},
		{"a missing upstream gRPC target is named", "order", with(base, "PAYMENT_GRPC", "-"), "PAYMENT_GRPC is required"},
		{"an upstream's REST URL is no gRPC target", "order", with(with(base, "PAYMENT_GRPC", "-"), "PAYMENT_URL", "https://p"), "PAYMENT_GRPC is required"},
		{"the gateway's upstream URLs are accepted", "gateway", gateway, ""},
		{"a plain upstream URL of the gateway is named", "gateway", with(gateway, "PRODUCT_URL", "http://p-product"), "PRODUCT_URL="},
		{"a malformed upstream URL is named", "gateway", with(gateway, "PRODUCT_URL", "product:80"), "PRODUCT_URL="},
		{"an identity in TLS_DIR is loaded", "order", with(base, "TLS_DIR", tlsDir), ""},
		{"a TLS_DIR without an identity is named", "order", with(base, "TLS_DIR", t.TempDir()), "TLS_DIR: "},
		{"a bad GRPC_ADDR is named", "product", with(base, "GRPC_ADDR", "9090"), "GRPC_ADDR="},
		{"missing token keys are named", "order", with(base, "TOKEN_KEYS", "-"), "TOKEN_KEYS is required"},
		{"malformed token keys are named", "order", with(base, "TOKEN_KEYS", "not pem"), "TOKEN_KEYS: key 1: not a PEM block"},
		{"a private key is not a verification key", "order", with(base, "TOKEN_KEYS", kittest.SigningKeyPEM()), "TOKEN_KEYS: key 1"},
		{"an issuer without a signing key is refused", "user", base, "TOKEN_SIGNING_KEY is required"},
		{"a public key is not a signing key", "user", with(base, "TOKEN_SIGNING_KEY", kittest.TokenKeysPEM()), "TOKEN_SIGNING_KEY: "},
		{"a signing key its own services would refuse is named", "user", with(base, "TOKEN_SIGNING_KEY", other), "is not in TOKEN_KEYS"},
		{"a token lifetime past the revocation memory is refused", "user", with(issuer, "TOKEN_TTL", "25h"), "TOKEN_TTL=25h0m0s: at most 24h0m0s"},
		{"a malformed token lifetime is named", "user", with(issuer, "TOKEN_TTL", "soon"), "TOKEN_TTL="},
		{"a bad HTTP_ADDR is named", "order", with(base, "HTTP_ADDR", "8080"), "HTTP_ADDR="},
		{"a user without a password is refused", "order", with(base, "NATS_PASSWORD", "-"), "NATS_USER and NATS_PASSWORD"},
		{"the gateway needs no upstream", "gateway", map[string]string{"TOKEN_KEYS": kittest.TokenKeysPEM()}, ""},
	}
	if cfg, err := kit.LoadConfig("product", kit.Needs{}, kit.MapEnv(base)); err != nil || cfg.GRPCAddr != ":9090" {
		t.Errorf("product's GRPCAddr %q (%v), want :9090", cfg.GRPCAddr, err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := kit.LoadConfig(tt.service, kit.Needs{Auth: true}, kit.MapEnv(tt.env))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.HTTPAddr != ":8080" {
					t.Errorf("HTTPAddr = %q, want :8080", cfg.HTTPAddr)
				}
				if (tt.env["TLS_DIR"] != "") != (cfg.Identity != nil) {
					t.Errorf("TLS_DIR %q gave identity %v", tt.env["TLS_DIR"], cfg.Identity)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	type req struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	tests := []struct {
		name, body, code, field string
	}{
		{"valid JSON decodes", `{"name":"a","count":1}`, "", ""},
		{"broken JSON is malformed", `{"name":`, kit.CodeMalformed, ""},
		{"an empty body is malformed", ``, kit.CodeMalformed, ""},
		{"a wrong type names the field", `{"count":"x"}`, kit.CodeInvalid, "count"},
		{"an unknown field is named", `{"nope":1}`, kit.CodeInvalid, "nope"},
		{"trailing data is malformed", `{} {}`, kit.CodeMalformed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v req
			err := kit.DecodeJSON(strings.NewReader(tt.body), &v)
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			e := kit.AsError(err)
			if e.Code != tt.code || e.Field != tt.field || e.Status != http.StatusBadRequest {
				t.Fatalf("got %+v, want code %s field %q", e, tt.code, tt.field)
			}
		})
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"name":"a","count":1}`, `{`, `[]`, `{"count":1e999}`, `{"name":"\u0000"}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v struct {
			Name  string `json:"name"`
			Count int    `json:"count"`
		}
		if err := kit.DecodeJSON(strings.NewReader(string(b)), &v); err != nil {
			if e := kit.AsError(err); e.Status != http.StatusBadRequest {
				t.Fatalf("decoder error %v is not a 400", err)
			}
		}
	})
}

func TestMiddlewareAnswersJSON(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /things", func(w http.ResponseWriter, r *http.Request) {
		_, err := kit.Decode[map[string]any](r)
		if err != nil {
			kit.WriteError(w, r, err)
			return
		}
		kit.WriteJSON(w, http.StatusCreated, map[string]string{"id": "1", "rid": kit.RequestID(r.Context())})
	})
	mux.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	srv := httptest.NewServer(kit.Middleware(quiet, kit.NewMetrics("t"), mux))
	defer srv.Close()

	big := `{"x":"` + strings.Repeat("a", kit.MaxBodyBytes) + `"}`
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"an unknown path is a JSON 404", "GET", "/nope", "", 404, kit.CodeNotFound},
		{"a wrong method is a JSON 405", "DELETE", "/things", "", 405, kit.CodeMethodNotAllowed},
		{"an oversize body is a JSON 413", "POST", "/things", big, 413, kit.CodeTooLarge},
		{"malformed JSON is a 400", "POST", "/things", "{", 400, kit.CodeMalformed},
		{"a panic is a JSON 500", "GET", "/panic", "", 500, kit.CodeInternal},
		{"a good request passes", "POST", "/things", `{"a":1}`, 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			req.Header.Set(kit.HeaderRequestID, "rid-1")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if resp.Header.Get(kit.HeaderRequestID) != "rid-1" {
				t.Errorf("request id not echoed")
			}
			if tt.code != "" {
				var b kit.ErrorBody
				if err := json.NewDecoder(resp.Body).Decode(&b); err != nil || b.Error.Code != tt.code {
					t.Fatalf("body %+v (%v), want code %s", b, err, tt.code)
				}
			}
		})
	}
}

type counter struct{ N int }

func TestStoreUpdateNeverLosesWrites(t *testing.T) {
	b := kittest.StartNATS(t, "")
	cfg, _ := kit.LoadConfig("product", kit.Needs{}, kit.MapEnv(b.Env()))
	bus, err := kit.ConnectBus(context.Background(), cfg, quiet, kit.NewMetrics("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	s, _ := kit.NewStore[counter](bus.Bucket("stock"))
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if _, err := s.Upsert(ctx, "k", func(c *counter, _ bool) error { c.N++; return nil }); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	got, _, err := s.Get(ctx, "k")
	if err != nil || got.N != 80 {
		t.Fatalf("N = %d (%v), want 80", got.N, err)
	}
	if _, err := s.Update(ctx, "missing", func(*counter) error { return nil }); !errors.Is(err, kit.ErrNotFound) {
		t.Fatalf("update of a missing key: %v", err)
	}
	if _, err := s.Create(ctx, "k", counter{}); !errors.Is(err, kit.ErrExists) {
		t.Fatalf("create of an existing key: %v", err)
	}
	if err := bus.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
}

// UpdateAt writes from the value and revision its caller holds; a stale
// revision falls back to reading, so nothing written in between is lost.
func TestStoreUpdateAtFromAKnownRevision(t *testing.T) {
	s, _ := kit.NewStore[counter](kittest.Bus(t, "product").Bucket("stock"))
	ctx := context.Background()
	rev, err := s.Create(ctx, "k", counter{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	inc := func(c *counter) error { c.N++; return nil }
	v, rev, err := s.UpdateAt(ctx, "k", counter{N: 1}, rev, inc)
	if err != nil || v.N != 2 {
		t.Fatalf("from the current revision: %+v %v", v, err)
	}
	if _, err := s.Update(ctx, "k", inc); err != nil { // another writer: rev is stale now
		t.Fatal(err)
	}
	v, next, err := s.UpdateAt(ctx, "k", v, rev, inc)
	if err != nil || v.N != 4 || next <= rev {
		t.Fatalf("from a stale revision: %+v rev %d→%d %v", v, rev, next, err)
	}
	if got, at, _ := s.Get(ctx, "k"); got.N != 4 || at != next {
		t.Fatalf("stored %+v at %d, want N=4 at %d", got, at, next)
	}
}

var confirmed = events.OrderConfirmed{OrderOutcome: events.OrderOutcome{ID: "1", Total: 1}}

func TestBusRefusesWhatItsCatalogRowDoesNotList(t *testing.T) {
	ctx := context.Background()
	b := kittest.StartNATS(t, "")
	order, notification := b.Bus(t, "order"), b.Bus(t, "notification")
	if err := order.Publish(ctx, "e1", "orders/1", confirmed); err != nil {
		t.Fatalf("order publishing order.confirmed: %v", err)
	}
	if err := notification.Publish(ctx, "e2", "orders/1", confirmed); err == nil {
		t.Fatal("notification published order.confirmed, which its row does not list")
	}
	if err := order.Publish(ctx, "e3", "payments/1", events.PaymentCompleted{}); err == nil {
		t.Fatal("order published payment.completed, which its row does not list")
	}
	handle := func(context.Context, kit.Event) error { return nil }
	if err := notification.Consume(ctx, kit.ConsumerSpec{Durable: "notification-order-confirmed", Handler: handle}); err != nil {
		t.Fatalf("notification running its catalog consumer: %v", err)
	}
	if err := notification.Consume(ctx, kit.ConsumerSpec{Durable: "user-points", Handler: handle}); err == nil {
		t.Fatal("notification ran user's consumer")
	}
	st, _ := order.JS.Stream(ctx, "ORDERS")
	if info, _ := st.Info(ctx); info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want the one allowed", info.State.Msgs)
	}
}

func TestConsumerRetriesThenAcks(t *testing.T) {
	b := kittest.StartNATS(t, "")
	pub, bus := b.Bus(t, "order"), b.Bus(t, "notification")
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[string]int{}
	err := bus.Consume(ctx, kit.ConsumerSpec{Durable: "notification-order-confirmed", AckWait: 5 * time.Second,
		Handler: func(_ context.Context, ev kit.Event) error {
			mu.Lock()
			defer mu.Unlock()
			seen[ev.ID]++
			if seen[ev.ID] == 1 {
				return errors.New("transient")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, "e1", "orders/1", confirmed); err != nil {
		t.Fatal(err)
	}
	// Same Nats-Msg-Id: JetStream drops it within the window.
	if err := pub.Publish(ctx, "e1", "orders/1", confirmed); err != nil {
		t.Fatal(err)
	}
	kittest.Eventually(t, 10*time.Second, "the retried event to be handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["e1"] == 2
	})
	st, _ := bus.JS.Stream(ctx, "ORDERS")
	info, _ := st.Info(ctx)
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1 (deduplicated by Nats-Msg-Id)", info.State.Msgs)
	}
}
