package playback

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// Definition registers the service with the binary.
var Definition = kit.Definition{Name: "playback", Needs: kit.Needs{Auth: true}, New: New}

type service struct {
	p     *Player
	key   []byte
	sweep time.Duration
}

// New builds the playback service. Optional env: SESSION_TTL (default 30s),
// SWEEP_INTERVAL (default a quarter of the TTL), CDN_EDGES (see ParseEdges;
// default DefaultEdges).
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
	accounts, err := d.Client("account")
	if err != nil {
		return nil, err
	}
	videos, err := d.Client("content")
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
	p, err := NewPlayer(sessions, loads, hist, d.Bus, accounts, videos, edges, ttl)
	if err != nil {
		return nil, err
	}
	return &service{p: p, key: d.Config.AuthKey, sweep: sweep}, nil
}

func (s *service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /sessions", kit.RequireAuth(s.key, s.start))
	mux.HandleFunc("POST /sessions/{id}/heartbeat", kit.RequireAuth(s.key, s.heartbeat))
	mux.HandleFunc("DELETE /sessions/{id}", kit.RequireAuth(s.key, s.stop))
	mux.HandleFunc("GET /history", kit.RequireAuth(s.key, s.history))
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

func (s *service) start(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[StartRequest](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	st, err := s.p.Start(r.Context(), kit.Subject(r), r.Header.Get("Authorization"), req)
	kit.Reply(w, r, http.StatusCreated, st, err)
}

func (s *service) heartbeat(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[Heartbeat](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	q, err := s.p.Heartbeat(r.Context(), kit.Subject(r), r.PathValue("id"), req)
	kit.Reply(w, r, http.StatusOK, q, err)
}

func (s *service) stop(w http.ResponseWriter, r *http.Request) {
	if err := s.p.Stop(r.Context(), kit.Subject(r), r.PathValue("id")); err != nil {
		kit.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *service) history(w http.ResponseWriter, r *http.Request) {
	items, err := s.p.History(r.Context(), kit.Subject(r))
	kit.Reply(w, r, http.StatusOK, map[string][]HistoryItem{"items": items}, err)
}
