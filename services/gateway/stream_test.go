package gateway

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// An answer that streams reaches the client as the upstream sends it: the
// gateway forwards server-sent events and answers of unknown length as
// their bytes arrive, not when the upstream finishes. Each upstream here
// sends one line, then waits until the client has read it before it sends
// the last; a gateway that held the answer back would never let the client
// read that first line.
func TestStreamsPassThroughAsTheyArrive(t *testing.T) {
	for name, tt := range map[string]struct {
		route, path, contentType string
	}{
		"server-sent events":          {"/api/analytics/live/stream", "/live/stream", "text/event-stream"},
		"an answer of unknown length": {"/api/analytics/live", "/live", "application/json"},
	} {
		t.Run(name, func(t *testing.T) {
			read := make(chan struct{})
			mux := http.NewServeMux()
			mux.HandleFunc("GET "+tt.path, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				_, _ = w.Write([]byte("first\n"))
				_ = http.NewResponseController(w).Flush()
				select {
				case <-read:
				case <-r.Context().Done():
					return
				}
				_, _ = w.Write([]byte("last\n"))
			})
			api := serveTLS(t, "analytics", kit.Middleware(quiet, kit.NewMetrics("analytics"), mux))
			ops := httptest.NewServer(http.NotFoundHandler())
			t.Cleanup(ops.Close)
			apiURL, _ := url.Parse(api.URL)
			opsURL, _ := url.Parse(ops.URL)
			g, err := NewGateway(map[string]Upstream{"analytics": {API: apiURL, Ops: opsURL}}, tokens, kit.NewMetrics("gateway"),
				Options{Identity: kittest.Platform(t).Identity(t, catalog.Gateway), RPS: 1e6, Burst: 1e6})
			if err != nil {
				t.Fatal(err)
			}
			gmux := http.NewServeMux()
			g.Register(gmux)
			gw := httptest.NewServer(kit.Middleware(quiet, kit.NewMetrics("gateway"), gmux))
			t.Cleanup(gw.Close)

			// Bounds the test should the gateway hold the answer back.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", gw.URL+tt.route, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != tt.contentType {
				t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			br := bufio.NewReader(resp.Body)
			first, err := br.ReadString('\n')
			if err != nil || first != "first\n" {
				t.Fatalf("first line %q, %v: the gateway held the answer back", first, err)
			}
			close(read)
			if last, err := br.ReadString('\n'); err != nil || last != "last\n" {
				t.Fatalf("last line %q, %v", last, err)
			}
		})
	}
}
