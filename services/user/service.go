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
	users   *Users
	bus     *kit.Bus
	tokens  kit.Verifier
	revoked *kit.Revocations
}

// New builds the user service and ensures the first admin (ADMIN_EMAIL,
// ADMIN_PASSWORD) before it serves. BCRYPT_COST (optional) trades login
// cost for test and benchmark speed; LOGIN_LOCK_AFTER and LOGIN_LOCK_FOR
// tune login throttling.
func New(ctx context.Context, d kit.Deps) (kit.Service, error) {
	if d.Bus == nil || d.Tokens == nil || d.Signer == nil || d.Revocations == nil {
		return nil, errors.New("user: needs NATS, token keys, a signing key and the revocation bucket")
	}
	cost, err := kit.BcryptCost(d.Config)
	if err != nil {
		return nil, err
	}
	throttle, err := kit.ThrottleFromEnv(d.Config)
	if err != nil {
		return nil, err
	}
	adminEmail, adminPassword, err := kit.AdminFromEnv(d.Config)
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
	logins, err := kit.NewStore[kit.LoginFailures](d.Bus.Bucket("user-logins"))
	if err != nil {
		return nil, err
	}
	points, err := kit.NewStore[pointsRecord](d.Bus.Bucket("user-points"))
	if err != nil {
		return nil, err
	}
	passwords, err := kit.NewPasswords(kit.PasswordsOptions{Emails: emails, Logins: logins, Cost: cost, Throttle: throttle})
	if err != nil {
		return nil, err
	}
	users, err := NewUsers(records, points, passwords, d.Bus, d.Signer)
	if err != nil {
		return nil, err
	}
	if adminEmail != "" {
		if err := users.EnsureAdmin(ctx, adminEmail, adminPassword); err != nil {
			return nil, err
		}
	}
	return &service{users: users, bus: d.Bus, tokens: d.Tokens, revoked: d.Revocations}, nil
}

func (s *service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /users", s.register)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", kit.RequireAuth(s.tokens, s.revoked.Logout))
	mux.HandleFunc("GET /users/{id}", kit.RequireAuth(s.tokens, s.get))
	mux.HandleFunc("GET /users/{id}/points", kit.RequireAuth(s.tokens, s.points))
	mux.HandleFunc("POST /admins", kit.RequireAdmin(s.tokens, s.grantAdmin))
}

// Run credits points from order.confirmed until ctx ends.
func (s *service) Run(ctx context.Context) error {
	if err := s.bus.Consume(ctx, kit.ConsumerSpec{Durable: "user-points", Handler: s.users.OnOrderConfirmed}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}
