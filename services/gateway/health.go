package gateway

import (
	"context"
	"net/http"
	"sort"
	"sync"
)

// Health states.
const (
	StatusOK       = "ok"
	StatusDegraded = "degraded"
)

// Health is the public answer of GET /health: the names of the degraded
// services, and nothing about why or where they run.
type Health struct {
	Status   string   `json:"status"`
	Degraded []string `json:"degraded,omitempty"`
}

// UpstreamHealth is one upstream's line in GET /health/detail.
type UpstreamHealth struct {
	Ready  bool   `json:"ready"`
	Status int    `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

// HealthDetail is the answer of GET /health/detail, served on the ops port
// only: each upstream's readiness, with the status or error that explains it.
type HealthDetail struct {
	Status   string                    `json:"status"`
	Services map[string]UpstreamHealth `json:"services"`
}

// Public is what the public may know of d.
func (d HealthDetail) Public() Health {
	h := Health{Status: d.Status}
	for name, s := range d.Services {
		if !s.Ready {
			h.Degraded = append(h.Degraded, name)
		}
	}
	sort.Strings(h.Degraded)
	return h
}

// Health asks every upstream's /readyz, on its ops port, concurrently.
func (g *Gateway) Health(ctx context.Context) HealthDetail {
	h := HealthDetail{Status: StatusOK, Services: map[string]UpstreamHealth{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, up := range g.upstreams {
		wg.Go(func() {
			uh := UpstreamHealth{}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, up.ops.JoinPath("readyz").String(), nil)
			resp, err := g.health.Do(req)
			if err != nil {
				uh.Error = err.Error()
			} else {
				resp.Body.Close()
				uh.Status, uh.Ready = resp.StatusCode, resp.StatusCode == http.StatusOK
			}
			mu.Lock()
			h.Services[name] = uh
			if !uh.Ready {
				h.Status = StatusDegraded
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return h
}
