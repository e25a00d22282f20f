package account

import (
	"context"

	accountv1 "github.com/switchboard-dev/switchboard/gen/switchboard/account/v1"
)

// accountsServer is the internal gRPC API over Accounts.
type accountsServer struct {
	accountv1.UnimplementedAccountsServer
	acc *Accounts
}

func (s accountsServer) GetAccount(ctx context.Context, req *accountv1.GetAccountRequest) (*accountv1.GetAccountResponse, error) {
	a, err := s.acc.Lookup(ctx, req.GetAccountId())
	if err != nil {
		return nil, err
	}
	out := &accountv1.Account{Id: a.ID, Plan: a.Plan}
	for _, p := range a.Profiles {
		out.Profiles = append(out.Profiles, &accountv1.Profile{Id: p.ID, Name: p.Name})
	}
	return &accountv1.GetAccountResponse{Account: out}, nil
}
