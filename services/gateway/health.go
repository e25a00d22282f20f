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

// UpstreamHealth is one upstream's line in GET /health/detail: ready when
// any of its instances is (what a Service in front of them would route
// to), with the status or error that explains it.
type UpstreamHealth struct {
	Ready  bool   `json:"ready"`
	Status int    `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
	// Instances are the addresses the service's ops host resolves to,
	// ReadyInstances of them ready.
	Instances      int `json:"instances"`
	ReadyInstances int `json:"readyInstances"`
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

// Health asks every instance of every upstream for its /readyz, on its ops
// port, concurrently. The ops host resolves to every pod, not ready ones
// included, so asking one address would report a service down whenever
// DNS listed a starting pod first.
func (g *Gateway) Health(ctx context.Context) HealthDetail {
	h := HealthDetail{Status: StatusOK, Services: map[string]UpstreamHealth{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, up := range g.upstreams {
		wg.Go(func() {
			uh := g.upstreamHealth(ctx, up)
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

// upstreamHealth asks each of up's instances. A ready service answers 200;
// one with no instance ready tells the first refusal's status and the
// first error (which names the address).
func (g *Gateway) upstreamHealth(ctx context.Context, up *upstream) UpstreamHealth {
	targets := g.instances(ctx, up.ops)
	type answer struct {
		status int
		err    error
	}
	answers := make([]answer, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t.JoinPath("readyz").String(), nil)
			resp, err := g.health.Do(req)
			if err != nil {
				answers[i].err = err
				return
			}
			resp.Body.Close()
			answers[i].status = resp.StatusCode
		})
	}
	wg.Wait()
	uh := UpstreamHealth{Instances: len(targets)}
	for _, a := range answers {
		if a.status == http.StatusOK {
			uh.ReadyInstances++
		}
	}
	if uh.Ready = uh.ReadyInstances > 0; uh.Ready {
		uh.Status = http.StatusOK
		return uh
	}
	for _, a := range answers {
		switch {
		case a.err != nil && uh.Error == "":
			uh.Error = a.err.Error()
		case uh.Status == 0:
			uh.Status = a.status
		}
	}
	return uh
}
