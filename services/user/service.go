package user

import (
	"context"
	"errors"
	"net/http"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// Definition registers the service with the binary.
var Definition = kit.Definition{Name: "user", Needs: kit.Needs{Auth: true}, New: New}

type service struct {
	users  *Users
	bus    *kit.Bus
	tokens kit.Verifier
}

// New builds the user service. BCRYPT_COST (optional) trades login cost for
// test and benchmark speed.
func New(_ context.Context, d kit.Deps) (kit.Service, error) {
	if d.Bus == nil {
		return nil, errors.New("user: needs NATS")
	}
	cost, err := kit.BcryptCost(d.Config)
	if err != nil {
		return nil, err
	}
	records, err := kit.NewStore[record](d.Bus.Bucket("users"))
	if err != nil {
		return nil, err
	}
	emails, err := kit.NewStore[kit.EmailClaim](d.Bus.Bucket("user-emails"))
	if err != nil {
		return nil, err
	}
	points, err := kit.NewStore[pointsRecord](d.Bus.Bucket("user-points"))
	if err != nil {
		return nil, err
	}
	users, err := NewUsers(records, emails, points, d.Bus, d.Config.AuthKey, cost)
	if err != nil {
		return nil, err
	}
	return &service{users: users, bus: d.Bus, tokens: d.Tokens}, nil
}

func (s *service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /users", s.register)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("GET /users/{id}", kit.RequireAuth(s.tokens, s.get))
	mux.HandleFunc("GET /users/{id}/points", kit.RequireAuth(s.tokens, s.points))
}

// Run credits points from order.confirmed until ctx ends.
func (s *service) Run(ctx context.Context) error {
	if err := s.bus.Consume(ctx, kit.ConsumerSpec{Durable: "user-points", Handler: s.users.OnOrderConfirmed}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}
