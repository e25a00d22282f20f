package gateway

import (
	"net/http"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// health aggregates the upstreams' readiness: 503 when any is down.
func (s *service) health(w http.ResponseWriter, r *http.Request) {
	h := s.g.Health(r.Context())
	status := http.StatusOK
	if h.Status != "ok" {
		status = http.StatusServiceUnavailable
	}
	kit.WriteJSON(w, status, h)
}
