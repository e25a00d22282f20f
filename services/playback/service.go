package playback

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Definition registers the service with the binary.
var Definition = kit.Definition{Name: "playback", Needs: kit.Needs{Auth: true}, New: New}

type service struct {
	p      *Player
	tokens kit.Verifier
	sweep  time.Duration
}

// New builds the playback service. Optional env: SESSION_TTL (default 30s),
// SWEEP_INTERVAL (default a quarter of the TTL), CDN_EDGES (see ParseEdges;
// default DefaultEdges), HEARTBEAT_MIN_INTERVAL (default 1s, or a quarter
// of a shorter TTL; always below the TTL; 0s turns the limit off).
func New(_ context.Context, d kit.Deps) (kit.Service, error) {
	if d.Bus == nil {
		return nil, errors.New("playback: needs NATS")
	}
	ttl, err := d.Config.Duration("SESSION_TTL", DefaultTTL)
	if err != nil {
		return nil, err
	}
	sweep, err := d.Config.Duration("SWEEP_INTERVAL", max(ttl/4, 50*time.Millisecond))
	if err != nil {
		return nil, err
	}
	edgeList := d.Config.String(EnvCDNEdges)
	if edgeList == "" {
		edgeList = DefaultEdges
	}
	edges, err := ParseEdges(edgeList)
	if err != nil {
		return nil, err
	}
	accounts, err := d.GRPC("account")
	if err != nil {
		return nil, err
	}
	videos, err := d.GRPC("content")
	if err != nil {
		return nil, err
	}
	sessions, err := kit.NewStore[slots](d.Bus.Bucket("sessions"))
	if err != nil {
		return nil, err
	}
	loads, err := kit.NewStore[edgeLoad](d.Bus.Bucket("sessions"))
	if err != nil {
		return nil, err
	}
	hist, err := kit.NewStore[history](d.Bus.Bucket("watch-history"))
	if err != nil {
		return nil, err
	}
	p, err := NewPlayer(sessions, loads, hist, d.Bus, NewGRPCAccounts(accounts), NewGRPCLibrary(videos), edges, ttl)
	if err != nil {
		return nil, err
	}
	minBeat, err := d.Config.NonNegativeDuration(catalog.EnvHeartbeatMinInterval, min(catalog.DefaultHeartbeatMinInterval, ttl/4))
	if err != nil {
		return nil, err
	}
	if minBeat >= ttl {
		return nil, fmt.Errorf("%s=%s: must be shorter than SESSION_TTL (%s), or no session could stay alive", catalog.EnvHeartbeatMinInterval, minBeat, ttl)
	}
	p.SetMinHeartbeatInterval(minBeat)
	return &service{p: p, tokens: d.Tokens, sweep: sweep}, nil
}

func (s *service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /sessions", kit.RequireAuth(s.tokens, s.start))
	mux.HandleFunc("POST /sessions/{id}/heartbeat", kit.RequireAuth(s.tokens, s.heartbeat))
	mux.HandleFunc("DELETE /sessions/{id}", kit.RequireAuth(s.tokens, s.stop))
	mux.HandleFunc("GET /history", kit.RequireAuth(s.tokens, s.history))
}

// Run sweeps expired sessions until ctx ends. Every replica sweeps; the
// compare-and-set writes make that safe, and it means expiry does not wait
// for any particular pod.
func (s *service) Run(ctx context.Context) error {
	t := time.NewTicker(s.sweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := s.p.Sweep(ctx); err != nil && ctx.Err() == nil {
				kit.Logger(ctx).Warn("session sweep", "err", err)
			}
		}
	}
}
