package recommendation

import (
	"context"
	"errors"
	"net/http"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// Definition registers the service with the binary.
var Definition = kit.Definition{Name: "recommendation", Needs: kit.Needs{Auth: true}, New: New}

type service struct {
	rec    *Recommender
	bus    *kit.Bus
	tokens kit.Verifier
}

// New builds the recommendation service.
func New(_ context.Context, d kit.Deps) (kit.Service, error) {
	if d.Bus == nil {
		return nil, errors.New("recommendation: needs NATS")
	}
	if d.Tokens == nil {
		return nil, errors.New("recommendation: needs a token verifier")
	}
	kv := d.Bus.Bucket("recommendations")
	videos, err := kit.NewStore[videoRec](kv)
	if err != nil {
		return nil, err
	}
	viewers, _ := kit.NewStore[viewerRec](kv)
	co, _ := kit.NewStore[coRec](kv)
	ab, _ := kit.NewStore[abRec](kv)
	rec, err := NewRecommender(videos, viewers, co, ab, d.Metrics.Registry)
	if err != nil {
		return nil, err
	}
	return &service{rec: rec, bus: d.Bus, tokens: d.Tokens}, nil
}

func (s *service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /recommendations", kit.RequireAuth(s.tokens, s.recommend))
	mux.HandleFunc("GET /related/{contentId}", s.related)
	mux.HandleFunc("POST /clicks", kit.RequireAuth(s.tokens, s.click))
	// Staff only, checked here whatever the gateway checked.
	mux.HandleFunc("GET /experiments", kit.RequireAdmin(s.tokens, s.experiments))
}

// Run learns from events until ctx ends. The durables are shared by the
// replicas, so each event is learnt once.
func (s *service) Run(ctx context.Context) error {
	for _, spec := range []kit.ConsumerSpec{
		{Durable: "recommendation-playback", Handler: s.rec.OnPlayback},
		{Durable: "recommendation-content", Handler: s.rec.OnEncoded},
	} {
		if err := s.bus.Consume(ctx, spec); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}
