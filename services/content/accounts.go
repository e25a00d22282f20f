package content

import (
	"context"
	"errors"

	accountv1 "github.com/switchboard-dev/switchboard/gen/switchboard/account/v1"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Accounts is what content asks of account: a viewer's plan.
type Accounts interface {
	// Plan returns the plan of an account, or an error matching
	// ErrUnknownAccount when there is none. A failure to reach account is
	// a 503 dependency_unavailable *kit.Error.
	Plan(ctx context.Context, accountID string) (string, error)
}

// ErrUnknownAccount: account has no such account.
var ErrUnknownAccount = errors.New("unknown account")

// accountReasons maps account's domain codes to content's errors.
var accountReasons = kit.Reasons{"unknown_account": ErrUnknownAccount}

// GRPCAccounts reaches account's internal gRPC API (switchboard.account.v1,
// which admits content) with a kit.GRPCClient.
type GRPCAccounts struct{ c accountv1.AccountsClient }

// NewGRPCAccounts wraps the client of account.
func NewGRPCAccounts(cc *kit.GRPCClient) GRPCAccounts {
	return GRPCAccounts{c: accountv1.NewAccountsClient(cc)}
}

func (a GRPCAccounts) Plan(ctx context.Context, accountID string) (string, error) {
	resp, err := a.c.GetAccount(ctx, &accountv1.GetAccountRequest{AccountId: accountID})
	if err != nil {
		return "", accountReasons.Wrap(err)
	}
	if resp.GetAccount().GetPlan() == "" {
		return "", kit.Unavailable("account answered without a plan")
	}
	return resp.GetAccount().GetPlan(), nil
}
