package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// Definition registers the gateway with the binary.
var Definition = kit.Definition{Name: "gateway", Needs: kit.Needs{Auth: true}, New: New}

type service struct{ g *Gateway }

// New builds the gateway from its config: the upstreams whose URL is set,
// and the optional GATEWAY_TIMEOUT, BREAKER_FAILURES, BREAKER_OPEN_FOR,
// RATE_LIMIT_RPS and RATE_LIMIT_BURST.
func New(_ context.Context, d kit.Deps) (kit.Service, error) {
	c := d.Config
	var o Options
	var err error
	if o.Timeout, err = c.Duration("GATEWAY_TIMEOUT", 15*time.Second); err != nil {
		return nil, err
	}
	n, err := c.Int("BREAKER_FAILURES", 5)
	if err != nil {
		return nil, err
	}
	o.BreakerFailures = uint32(n)
	if o.BreakerOpenFor, err = c.Duration("BREAKER_OPEN_FOR", 10*time.Second); err != nil {
		return nil, err
	}
	rps, err := c.Int("RATE_LIMIT_RPS", 100)
	if err != nil {
		return nil, err
	}
	o.RPS = float64(rps)
	if o.Burst, err = c.Int("RATE_LIMIT_BURST", 2*rps); err != nil {
		return nil, err
	}
	g, err := NewGateway(c.Upstreams, d.Tokens, d.Metrics, o)
	if err != nil {
		return nil, err
	}
	return &service{g: g}, nil
}

func (s *service) Routes(mux *http.ServeMux) {
	mux.Handle("/api/{service}/{path...}", s.g)
	mux.HandleFunc("GET /health", s.health)
}

// Run forgets idle rate-limit buckets until ctx ends.
func (s *service) Run(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.g.limiter.Forget(10 * time.Minute)
		}
	}
}
