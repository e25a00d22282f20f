package account

import (
	"context"
	"errors"
	"net/http"

	accountv1 "github.com/switchboard-dev/switchboard/gen/switchboard/account/v1"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Definition registers the service with the binary.
var Definition = kit.Definition{Name: "account", Needs: kit.Needs{Auth: true}, New: New}

type service struct {
	acc     *Accounts
	tokens  kit.Verifier
	revoked *kit.Revocations
}

// New builds the account service and ensures the streaming workload's first
// admin (ADMIN_EMAIL, ADMIN_PASSWORD) before it serves. BCRYPT_COST
// (optional) trades login cost for test and benchmark speed;
// LOGIN_LOCK_AFTER and LOGIN_LOCK_FOR tune login throttling.
func New(ctx context.Context, d kit.Deps) (kit.Service, error) {
	if d.Bus == nil || d.Tokens == nil || d.Signer == nil || d.Revocations == nil {
		return nil, errors.New("account: needs NATS, token keys, a signing key and the revocation bucket")
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
	accounts, err := kit.NewStore[record](d.Bus.Bucket("accounts"))
	if err != nil {
		return nil, err
	}
	emails, err := kit.NewStore[kit.EmailClaim](d.Bus.Bucket("account-emails"))
	if err != nil {
		return nil, err
	}
	logins, err := kit.NewStore[kit.LoginFailures](d.Bus.Bucket("account-logins"))
	if err != nil {
		return nil, err
	}
	passwords, err := kit.NewPasswords(kit.PasswordsOptions{Emails: emails, Logins: logins, Cost: cost, Throttle: throttle})
	if err != nil {
		return nil, err
	}
	acc, err := NewAccounts(accounts, passwords, d.Bus, d.Signer)
	if err != nil {
		return nil, err
	}
	if adminEmail != "" {
		if err := acc.EnsureAdmin(ctx, adminEmail, adminPassword); err != nil {
			return nil, err
		}
	}
	return &service{acc: acc, tokens: d.Tokens, revoked: d.Revocations}, nil
}

func (s *service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /accounts", s.create)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", kit.RequireAuth(s.tokens, s.revoked.Logout))
	mux.HandleFunc("GET /accounts/{id}", kit.RequireAuth(s.tokens, s.get))
	mux.HandleFunc("PUT /accounts/{id}/subscription", kit.RequireAuth(s.tokens, s.subscription))
	mux.HandleFunc("POST /accounts/{id}/profiles", kit.RequireAuth(s.tokens, s.addProfile))
}

// RegisterGRPC serves the account reads of content and playback.
func (s *service) RegisterGRPC(srv *kit.GRPCServer) {
	accountv1.RegisterAccountsServer(srv, accountsServer{acc: s.acc})
}

func (s *service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
