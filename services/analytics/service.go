package analytics

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// Definition registers the service with the binary.
var Definition = kit.Definition{Name: "analytics", Needs: kit.Needs{Auth: true}, New: New}

type service struct {
	a      *Analytics
	tokens kit.Verifier
}

// New builds the analytics service and loads the read model before it
// reports ready. Optional env: INGEST_BATCH (default 4096),
// INGEST_BATCH_WAIT (default 2ms), LIVE_STALE_AFTER (default 45s).
func New(ctx context.Context, d kit.Deps) (kit.Service, error) {
	if d.Bus == nil {
		return nil, errors.New("analytics: needs NATS")
	}
	if d.Tokens == nil {
		return nil, errors.New("analytics: needs a token verifier")
	}
	var o Options
	var err error
	if o.Batch, err = d.Config.Int("INGEST_BATCH", 4096); err != nil {
		return nil, err
	}
	if o.BatchWait, err = d.Config.Duration("INGEST_BATCH_WAIT", 2*time.Millisecond); err != nil {
		return nil, err
	}
	if o.StaleAfter, err = d.Config.Duration("LIVE_STALE_AFTER", 45*time.Second); err != nil {
		return nil, err
	}
	a, err := NewAnalytics(d.Bus, d.Metrics, o)
	if err != nil {
		return nil, err
	}
	if err := a.Follow(ctx); err != nil {
		return nil, err
	}
	return &service{a: a, tokens: d.Tokens}, nil
}

func (s *service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /live", s.live)
	mux.HandleFunc("GET /live/stream", s.stream)
	mux.HandleFunc("GET /top", s.top)
	// Staff only, checked here whatever the gateway checked.
	mux.HandleFunc("GET /stats", kit.RequireAdmin(s.tokens, s.stats))
	mux.HandleFunc("GET /accounts/{id}/watchtime", kit.RequireAuth(s.tokens, s.watchTime))
}

// Run ingests events until ctx ends.
func (s *service) Run(ctx context.Context) error { return s.a.Ingest(ctx) }
