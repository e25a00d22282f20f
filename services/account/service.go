package account

import (
	"context"
	"errors"
	"net/http"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// Definition registers the service with the binary.
var Definition = kit.Definition{Name: "account", Needs: kit.Needs{Auth: true}, New: New}

type service struct {
	acc    *Accounts
	tokens kit.Verifier
}

// New builds the account service. BCRYPT_COST (optional) trades login cost
// for test and benchmark speed.
func New(_ context.Context, d kit.Deps) (kit.Service, error) {
	if d.Bus == nil {
		return nil, errors.New("account: needs NATS")
	}
	cost, err := kit.BcryptCost(d.Config)
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
	acc, err := NewAccounts(accounts, emails, d.Bus, d.Config.AuthKey, cost)
	if err != nil {
		return nil, err
	}
	return &service{acc: acc, tokens: d.Tokens}, nil
}

func (s *service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /accounts", s.create)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("GET /accounts/{id}", kit.RequireAuth(s.tokens, s.get))
	mux.HandleFunc("PUT /accounts/{id}/subscription", kit.RequireAuth(s.tokens, s.subscription))
	mux.HandleFunc("POST /accounts/{id}/profiles", kit.RequireAuth(s.tokens, s.addProfile))
}

func (s *service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
