package user_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/streaming/streamtest"
	"github.com/switchboard-dev/switchboard/services/user"
)

const (
	adminEmail    = "root@example.com"
	adminPassword = "admin-password-1"
)

// replicas starts two replicas of the user service on one broker, with a
// first admin and a lock after three failed logins.
func replicas(t *testing.T) (a, b streamtest.Client) {
	t.Helper()
	br := kittest.StartNATS(t, "")
	env := streamtest.Merge(br.Env(), map[string]string{
		"BCRYPT_COST": "4", catalog.EnvAdminEmail: adminEmail, catalog.EnvAdminPassword: adminPassword,
		catalog.EnvLoginLockAfter: "3",
	})
	ra := kittest.Serve(t, user.Definition, env)
	rb := kittest.Serve(t, user.Definition, env)
	return streamtest.Client{T: t, Base: ra.URL}, streamtest.Client{T: t, Base: rb.URL}
}

func login(t *testing.T, c streamtest.Client, email, password string) string {
	t.Helper()
	var tok user.Token
	c.Must(http.StatusOK, "POST", "/login", user.Login{Email: email, Password: password}, &tok)
	return tok.Token
}

func TestSignOutReachesEveryReplica(t *testing.T) {
	a, b := replicas(t)
	var u user.User
	a.Must(http.StatusCreated, "POST", "/users", user.Register{Email: "ada@example.com", Name: "Ada", Password: "correct-horse"}, &u)
	tok := login(t, a, "ada@example.com", "correct-horse")
	b.As(tok).Must(http.StatusOK, "GET", "/users/"+u.ID, nil, nil)

	a.As(tok).Must(http.StatusNoContent, "POST", "/logout", nil, nil)
	a.As(tok).Must(http.StatusUnauthorized, "GET", "/users/"+u.ID, nil, nil)
	kittest.Eventually(t, 5*time.Second, "the other replica to refuse the signed-out token", func() bool {
		st, _ := b.As(tok).Do("GET", "/users/"+u.ID, nil, nil)
		return st == http.StatusUnauthorized
	})
	b.As(tok).Must(http.StatusUnauthorized, "POST", "/logout", nil, nil)

	again := login(t, b, "ada@example.com", "correct-horse")
	a.As(again).Must(http.StatusOK, "GET", "/users/"+u.ID, nil, nil)
}

func TestAdmins(t *testing.T) {
	a, b := replicas(t)
	var ada, bob user.User
	a.Must(http.StatusCreated, "POST", "/users", user.Register{Email: "ada@example.com", Name: "Ada", Password: "correct-horse"}, &ada)
	b.Must(http.StatusCreated, "POST", "/users", user.Register{Email: "bob@example.com", Name: "Bob", Password: "correct-horse"}, &bob)
	adaTok := login(t, a, "ada@example.com", "correct-horse")
	bobTok := login(t, b, "bob@example.com", "correct-horse")
	rootTok := login(t, b, adminEmail, adminPassword)

	tests := []struct {
		name         string
		client       streamtest.Client
		method, path string
		body         any
		status       int
		code, field  string
	}{
		{"a customer reads their own profile", a.As(adaTok), "GET", "/users/" + ada.ID, nil, 200, "", ""},
		{"a customer reads their own points", a.As(adaTok), "GET", "/users/" + ada.ID + "/points", nil, 200, "", ""},
		{"another customer's profile is a 404", a.As(bobTok), "GET", "/users/" + ada.ID, nil, 404, kit.CodeNotFound, ""},
		{"another customer's points are a 404", a.As(bobTok), "GET", "/users/" + ada.ID + "/points", nil, 404, kit.CodeNotFound, ""},
		{"a missing user is the same 404", a.As(bobTok), "GET", "/users/nobody", nil, 404, kit.CodeNotFound, ""},
		{"an admin reads any profile", b.As(rootTok), "GET", "/users/" + ada.ID, nil, 200, "", ""},
		{"a customer cannot grant the admin role", a.As(adaTok), "POST", "/admins", user.GrantAdmin{UserID: ada.ID}, 403, kit.CodeForbidden, ""},
		{"nobody grants it without a token", a, "POST", "/admins", user.GrantAdmin{UserID: ada.ID}, 401, kit.CodeUnauthenticated, ""},
		{"granting it to nobody is a 404 on userId", a.As(rootTok), "POST", "/admins", user.GrantAdmin{UserID: "nobody"}, 404, kit.CodeNotFound, "userId"},
		{"a malformed id is the same 404", a.As(rootTok), "POST", "/admins", user.GrantAdmin{UserID: "../x"}, 404, kit.CodeNotFound, "userId"},
		{"an admin grants it to a customer", a.As(rootTok), "POST", "/admins", user.GrantAdmin{UserID: ada.ID}, 200, "", ""},
		{"the customer's token from before still has no role", b.As(adaTok), "POST", "/admins", user.GrantAdmin{UserID: bob.ID}, 403, kit.CodeForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.client.T = t
			raw := tt.client.Must(tt.status, tt.method, tt.path, tt.body, nil)
			if tt.code != "" {
				if e := streamtest.Err(t, raw); e.Error.Code != tt.code || e.Error.Field != tt.field {
					t.Fatalf("error %+v, want %s on %q", e.Error, tt.code, tt.field)
				}
			}
		})
	}

	t.Run("the new admin's next token carries the role", func(t *testing.T) {
		fresh := login(t, a, "ada@example.com", "correct-horse")
		var got user.User
		b.As(fresh).Must(http.StatusOK, "POST", "/admins", user.GrantAdmin{UserID: bob.ID}, &got)
		if got.ID != bob.ID || len(got.Roles) != 1 || got.Roles[0] != kit.RoleAdmin {
			t.Fatalf("granted %+v", got)
		}
	})
}

func TestLoginLockIsSharedByReplicas(t *testing.T) {
	a, b := replicas(t)
	a.Must(http.StatusCreated, "POST", "/users", user.Register{Email: "ada@example.com", Name: "Ada", Password: "correct-horse"}, nil)
	for i, c := range []streamtest.Client{a, b, a} {
		raw := c.Must(http.StatusUnauthorized, "POST", "/login", user.Login{Email: "ada@example.com", Password: fmt.Sprint("guess-", i)}, nil)
		if e := streamtest.Err(t, raw); e.Error.Code != kit.CodeInvalidCredentials {
			t.Fatalf("guess %d: %s", i, raw)
		}
	}
	// The right password, at the replica that saw one of the failures and
	// at the one that saw two: both refuse, saying when to retry.
	for _, c := range []streamtest.Client{b, a} {
		req, _ := http.NewRequest("POST", c.Base+"/login", strings.NewReader(`{"email":"ADA@example.com","password":"correct-horse"}`))
		resp, err := kittest.GatewayHTTP(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("status %d, Retry-After %q; want a 429 with a Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	raw := b.Must(http.StatusTooManyRequests, "POST", "/login", user.Login{Email: "ada@example.com", Password: "correct-horse"}, nil)
	e := streamtest.Err(t, raw)
	if e.Error.Code != kit.CodeLoginThrottled || e.Error.Field != "email" || !strings.Contains(e.Error.Message, "retry after") {
		t.Fatalf("locked login answered %s", raw)
	}
	// Another email is not affected.
	login(t, a, adminEmail, adminPassword)
}

func TestConcurrentRegistrationsOneWinner(t *testing.T) {
	a, b := replicas(t)
	const n = 24
	var won, taken atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c := []streamtest.Client{a, b}[i%2]
			email := []string{"race@example.com", "RACE@example.com"}[i%2]
			st, raw := c.Do("POST", "/users", user.Register{Email: email, Name: fmt.Sprint("racer ", i), Password: "correct-horse"}, nil)
			switch {
			case st == http.StatusCreated:
				won.Add(1)
			case st == http.StatusConflict && strings.Contains(string(raw), kit.CodeEmailTaken):
				taken.Add(1)
			default:
				t.Errorf("sign-up %d: %d %s", i, st, raw)
			}
		}()
	}
	close(start)
	wg.Wait()
	if won.Load() != 1 || taken.Load() != n-1 {
		t.Fatalf("%d sign-ups won and %d were refused, want 1 and %d", won.Load(), taken.Load(), n-1)
	}
	login(t, a, "race@example.com", "correct-horse")
}

func TestFirstAdminSurvivesRestartsAndFollowsItsPassword(t *testing.T) {
	br := kittest.StartNATS(t, "")
	env := streamtest.Merge(br.Env(), map[string]string{"BCRYPT_COST": "4", catalog.EnvAdminEmail: adminEmail, catalog.EnvAdminPassword: adminPassword})
	// Replicas starting together ensure one admin between them.
	var wg sync.WaitGroup
	runs := make([]*kittest.Running, 3)
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i] = kittest.Serve(t, user.Definition, env)
		}()
	}
	wg.Wait()
	c := streamtest.Client{T: t, Base: runs[0].URL}
	tok := login(t, c, adminEmail, adminPassword)
	claims, err := kittest.KeySet(t).Verify(context.Background(), tok)
	if err != nil || !claims.IsAdmin() {
		t.Fatalf("the first admin's token: %+v, %v", claims, err)
	}
	for _, r := range runs {
		if err := r.Stop(); err != nil {
			t.Fatal(err)
		}
	}

	// A new ADMIN_PASSWORD replaces the old one; the admin is the same.
	env[catalog.EnvAdminPassword] = "rotated-password"
	c = streamtest.Client{T: t, Base: kittest.Serve(t, user.Definition, env).URL}
	c.Must(http.StatusUnauthorized, "POST", "/login", user.Login{Email: adminEmail, Password: adminPassword}, nil)
	again := login(t, c, adminEmail, "rotated-password")
	if c2, _ := kittest.KeySet(t).Verify(context.Background(), again); c2 == nil || c2.Subject != claims.Subject || !c2.IsAdmin() {
		t.Fatalf("after the rotation the admin is %+v, want %s", c2, claims.Subject)
	}

	// An email someone signed up with is not made admin by naming it.
	c.Must(http.StatusCreated, "POST", "/users", user.Register{Email: "eve@example.com", Name: "Eve", Password: "eve-password"}, nil)
	env[catalog.EnvAdminEmail], env[catalog.EnvAdminPassword] = "eve@example.com", "eve-password"
	c = streamtest.Client{T: t, Base: kittest.Serve(t, user.Definition, env).URL}
	eve, _ := kittest.KeySet(t).Verify(context.Background(), login(t, c, "eve@example.com", "eve-password"))
	if eve == nil || eve.IsAdmin() {
		t.Fatalf("a signed-up user became admin through ADMIN_EMAIL: %+v", eve)
	}
}
