package kit_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// BenchmarkTracedRequest is the cost tracing adds to one request served
// through Middleware, with a step span inside as the saga makes: none
// (a nil Tracing), a sampler that records nothing, and every request
// recorded into the buffer of recent traces.
func BenchmarkTracedRequest(b *testing.B) {
	for _, tc := range []struct {
		name    string
		sampler string // "" : no tracing at all
	}{
		{"untraced", ""},
		{"sampled=off", "always_off"},
		{"sampled=100%", "always_on"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var tr *kit.Tracing
			if tc.sampler != "" {
				c, err := kit.LoadTracingConfig(kit.MapEnv(map[string]string{catalog.EnvTracesSampler: tc.sampler}))
				if err != nil {
					b.Fatal(err)
				}
				if tr, err = kit.NewTracing("order", c); err != nil {
					b.Fatal(err)
				}
			}
			mux := http.NewServeMux()
			mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
				_, done := kit.Step(r.Context(), "saga.reserve")
				done(nil)
				w.WriteHeader(http.StatusNoContent)
			})
			h := tr.HTTPHandler(kit.Middleware(quiet, kit.NewMetrics("order"), mux))
			req := httptest.NewRequest(http.MethodGet, "/orders/o1", nil)
			// A new trace per request, as at the gateway.
			req.Header.Del("traceparent")
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusNoContent {
					b.Fatalf("status %d", rec.Code)
				}
			}
			b.StopTimer()
			if tr != nil && tc.sampler == "always_on" && tr.Buffer().Len() == 0 {
				b.Fatal("nothing recorded")
			}
		})
	}
}
