package content

import (
	"context"
	"errors"
	"net/http"
	"time"

	contentv1 "github.com/switchboard-dev/switchboard/gen/switchboard/content/v1"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Definition registers the service with the binary.
var Definition = kit.Definition{Name: "content", Needs: kit.Needs{Auth: true}, New: New}

type service struct {
	lib    *Library
	bus    *kit.Bus
	tokens kit.Verifier
	// resumeAfter is how long a video may stay encoding before its
	// request is sent again, and how often that is checked.
	resumeAfter time.Duration
}

// New builds the content service. Optional env: ENCODE_TIME (simulated
// transcoding time per video, default 0), SEED_DEMO=false to skip the demo
// library, ENCODE_RESUME_AFTER (default 2m) for stalled encode requests.
func New(ctx context.Context, d kit.Deps) (kit.Service, error) {
	if d.Bus == nil {
		return nil, errors.New("content: needs NATS")
	}
	if d.Tokens == nil {
		return nil, errors.New("content: needs a token verifier")
	}
	accounts, err := d.GRPC("account")
	if err != nil {
		return nil, err
	}
	var encodeTime time.Duration
	if d.Config.String("ENCODE_TIME") != "" {
		if encodeTime, err = d.Config.Duration("ENCODE_TIME", 0); err != nil {
			return nil, err
		}
	}
	videos, err := kit.NewStore[events.Video](d.Bus.Bucket("videos"))
	if err != nil {
		return nil, err
	}
	lib, err := NewLibrary(videos, d.Bus, NewGRPCAccounts(accounts), encodeTime)
	if err != nil {
		return nil, err
	}
	if d.Config.String("SEED_DEMO") != "false" {
		if err := lib.Seed(ctx); err != nil {
			return nil, err
		}
	}
	resumeAfter, err := d.Config.Duration("ENCODE_RESUME_AFTER", 2*time.Minute)
	if err != nil {
		return nil, err
	}
	return &service{lib: lib, bus: d.Bus, tokens: d.Tokens, resumeAfter: resumeAfter}, nil
}

func (s *service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /videos", s.list)
	mux.HandleFunc("GET /videos/{id}", s.get)
	// Staff only, checked here whatever the gateway checked.
	mux.HandleFunc("POST /videos", kit.RequireAdmin(s.tokens, s.create))
}

// RegisterGRPC serves playback's reads: a video, and the access decision.
func (s *service) RegisterGRPC(srv *kit.GRPCServer) {
	contentv1.RegisterLibraryServer(srv, libraryServer{lib: s.lib})
}

// Run is the encoding worker: one shared durable across replicas, so each
// job is done once.
func (s *service) Run(ctx context.Context) error {
	if err := s.bus.Consume(ctx, kit.ConsumerSpec{
		Durable: "content-encoder",
		Handler: s.lib.OnEncodeRequested,
	}); err != nil {
		return err
	}
	// Videos whose encode request was lost get it again.
	tick := time.NewTicker(s.resumeAfter)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if n, err := s.lib.ResumeEncoding(ctx, s.resumeAfter); err != nil {
				kit.Logger(ctx).Warn("resuming stalled encodings", "err", err)
			} else if n > 0 {
				kit.Logger(ctx).Info("re-requested stalled encodings", "videos", n)
			}
		}
	}
}
