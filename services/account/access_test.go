package account_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/account"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/streaming/streamtest"
)

const (
	adminEmail    = "staff@example.com"
	adminPassword = "admin-password-1"
)

// replicas starts two replicas of the account service on one broker, with
// a first admin and a lock after two failed logins.
func replicas(t *testing.T) (a, b streamtest.Client) {
	t.Helper()
	br := kittest.StartNATS(t, "")
	env := streamtest.Merge(br.Env(), map[string]string{
		"BCRYPT_COST": "4", catalog.EnvAdminEmail: adminEmail, catalog.EnvAdminPassword: adminPassword,
		catalog.EnvLoginLockAfter: "2",
	})
	return streamtest.Client{T: t, Base: kittest.Serve(t, account.Definition, env).URL},
		streamtest.Client{T: t, Base: kittest.Serve(t, account.Definition, env).URL}
}

func TestSignOutReachesEveryReplica(t *testing.T) {
	a, b := replicas(t)
	acc, tok := signUp(t, a, "ada@example.com", events.PlanBasic)
	b.As(tok).Must(http.StatusOK, "GET", "/accounts/"+acc.ID, nil, nil)

	b.As(tok).Must(http.StatusNoContent, "POST", "/logout", nil, nil)
	b.As(tok).Must(http.StatusUnauthorized, "GET", "/accounts/"+acc.ID, nil, nil)
	// Asked with a read: a change attempted before the revocation reached
	// the other replica would be applied, and is not what is tested here.
	kittest.Eventually(t, 5*time.Second, "the other replica to refuse the signed-out token", func() bool {
		st, _ := a.As(tok).Do("GET", "/accounts/"+acc.ID, nil, nil)
		return st == http.StatusUnauthorized
	})
	var got events.Account
	a.As(tok).Must(http.StatusUnauthorized, "PUT", "/accounts/"+acc.ID+"/subscription", account.Subscription{Plan: events.PlanPremium}, nil)
	a.As(tok).Must(http.StatusUnauthorized, "POST", "/accounts/"+acc.ID+"/profiles", account.NewProfile{Name: "kid"}, nil)
	var fresh account.Token
	a.Must(http.StatusOK, "POST", "/login", account.Login{Email: "ada@example.com", Password: "correct-horse"}, &fresh)
	b.As(fresh.Token).Must(http.StatusOK, "GET", "/accounts/"+acc.ID, nil, &got)
	if got.Plan != events.PlanBasic {
		t.Fatalf("the revoked token changed the plan: %+v", got)
	}
}

func TestAdminReadsButDoesNotChangeOthersAccounts(t *testing.T) {
	a, b := replicas(t)
	acc, _ := signUp(t, a, "ada@example.com", events.PlanBasic)
	var tok account.Token
	b.Must(http.StatusOK, "POST", "/login", account.Login{Email: adminEmail, Password: adminPassword}, &tok)
	c, err := kittest.KeySet(t).Verify(context.Background(), tok.Token)
	if err != nil || !c.IsAdmin() {
		t.Fatalf("the first admin's token: %+v %v", c, err)
	}
	var admin events.Account
	b.As(tok.Token).Must(http.StatusOK, "GET", "/accounts/"+tok.AccountID, nil, &admin)
	if names := events.PlanNames(); admin.Plan != names[len(names)-1] {
		t.Fatalf("the admin is on %s, want the richest plan", admin.Plan)
	}
	a.As(tok.Token).Must(http.StatusOK, "GET", "/accounts/"+acc.ID, nil, nil)
	a.As(tok.Token).Must(http.StatusNotFound, "PUT", "/accounts/"+acc.ID+"/subscription", account.Subscription{Plan: events.PlanPremium}, nil)
	a.As(tok.Token).Must(http.StatusNotFound, "POST", "/accounts/"+acc.ID+"/profiles", account.NewProfile{Name: "x"}, nil)
}

func TestLoginLock(t *testing.T) {
	a, b := replicas(t)
	signUp(t, a, "ada@example.com", events.PlanBasic)
	a.Must(http.StatusUnauthorized, "POST", "/login", account.Login{Email: "ada@example.com", Password: "guess-1"}, nil)
	b.Must(http.StatusUnauthorized, "POST", "/login", account.Login{Email: "ada@example.com", Password: "guess-2"}, nil)

	req, _ := http.NewRequest("POST", a.Base+"/login", strings.NewReader(`{"email":"ada@example.com","password":"correct-horse"}`))
	resp, err := kittest.GatewayHTTP(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("the right password while locked: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	raw := b.Must(http.StatusTooManyRequests, "POST", "/login", account.Login{Email: "ada@example.com", Password: "correct-horse"}, nil)
	if e := streamtest.Err(t, raw); e.Error.Code != kit.CodeLoginThrottled || e.Error.Field != "email" || !strings.Contains(e.Error.Message, "locked") {
		t.Fatalf("locked login answered %s", raw)
	}
}
