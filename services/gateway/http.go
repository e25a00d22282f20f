package gateway

import (
	"net/http"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// serveHealth is the public GET /health: ok, or degraded with the names of
// the services that are not ready, as a 503.
func (g *Gateway) serveHealth(w http.ResponseWriter, r *http.Request) {
	h := g.Health(r.Context()).Public()
	kit.WriteJSON(w, healthStatus(h.Status), h)
}

// serveHealthDetail is GET /health/detail on the ops port: every
// upstream's readiness with its status or error.
func (g *Gateway) serveHealthDetail(w http.ResponseWriter, r *http.Request) {
	h := g.Health(r.Context())
	kit.WriteJSON(w, healthStatus(h.Status), h)
}

func healthStatus(s string) int {
	if s != StatusOK {
		return http.StatusServiceUnavailable
	}
	return http.StatusOK
}

// serveOpenAPI is GET /api/openapi.json: the routes this gateway serves.
func (g *Gateway) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(g.openAPI)
}
