package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

func newGateway(t *testing.T, ups map[string]*url.URL, o Options) *httptest.Server {
	t.Helper()
	g, err := NewGateway(ups, kittest.KeySet(t), kit.NewMetrics("gateway"), o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	(&service{g: g}).Routes(mux)
	srv := httptest.NewServer(kit.Middleware(slog.New(slog.NewTextHandler(io.Discard, nil)), kit.NewMetrics("gateway"), mux))
	t.Cleanup(srv.Close)
	return srv
}

func TestGateway(t *testing.T) {
	var gotPath string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath = r.URL.RequestURI()
		kit.WriteJSON(w, 200, map[string]string{"ok": "yes"})
	}))
	defer up.Close()
	upURL, _ := url.Parse(up.URL)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL, _ := url.Parse(dead.URL)
	dead.Close()

	gw := newGateway(t, map[string]*url.URL{"user": upURL, "product": upURL, "payment": deadURL},
		Options{RPS: 1, Burst: 3, BreakerFailures: 2, BreakerOpenFor: time.Hour})
	token := kittest.Token(t, "u1")

	do := func(method, path, tok string) (int, string) {
		req, _ := http.NewRequest(method, gw.URL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b kit.ErrorBody
		_ = kit.DecodeJSON(resp.Body, &b)
		return resp.StatusCode, b.Error.Code
	}

	steps := []struct {
		name, method, path, token string
		status                    int
		code                      string
	}{
		{"a public route needs no token", "POST", "/api/user/login", "", 200, ""},
		{"a private route needs one", "GET", "/api/product/products", "", 401, kit.CodeUnauthenticated},
		{"a token opens it", "GET", "/api/product/products/p1?x=1", token, 200, ""},
		{"an unrouted service is a JSON 404", "GET", "/api/order/orders", token, 404, CodeUnknownService},
		{"a down upstream is a 503", "GET", "/api/payment/payments", token, 503, CodeUpstreamDown},
		{"twice opens its breaker", "GET", "/api/payment/payments", token, 503, CodeUpstreamDown},
		{"the client's burst is spent: 429", "GET", "/api/product/products", token, 429, kit.CodeRateLimited},
	}
	for _, s := range steps {
		status, code := do(s.method, s.path, s.token)
		if status != s.status || code != s.code {
			t.Fatalf("%s: %d %q, want %d %q", s.name, status, code, s.status, s.code)
		}
	}
	if gotPath != "/products/p1?x=1" {
		t.Errorf("upstream saw %q, want /products/p1?x=1", gotPath)
	}
}
