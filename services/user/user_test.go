package user

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

func newUsers(t *testing.T) *Users {
	t.Helper()
	bus := kittest.Bus(t, "user")
	users, _ := kit.NewStore[record](bus.Bucket("users"))
	emails, _ := kit.NewStore[kit.EmailClaim](bus.Bucket("user-emails"))
	logins, _ := kit.NewStore[kit.LoginFailures](bus.Bucket("user-logins"))
	points, _ := kit.NewStore[pointsRecord](bus.Bucket("user-points"))
	pw, err := kit.NewPasswords(kit.PasswordsOptions{Emails: emails, Logins: logins, Cost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewUsers(users, points, pw, &kittest.Published{}, kittest.Signer(t))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func customer(id string) *kit.Claims {
	return &kit.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: id}}
}

func TestRegisterAndLogin(t *testing.T) {
	ctx := context.Background()
	a := newUsers(t)
	u, err := a.Register(ctx, Register{Email: "ada@example.com", Name: "Ada", Password: "correct-horse"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  Register
		code string
	}{
		{"a taken email, in any case, is a conflict", Register{"ADA@example.com", "Ada", "correct-horse"}, CodeEmailTaken},
		{"a bad email is invalid", Register{"ada", "Ada", "correct-horse"}, kit.CodeInvalid},
		{"a display name is not an email", Register{"Ada <ada@example.com>", "Ada", "correct-horse"}, kit.CodeInvalid},
		{"a short password is invalid", Register{"bob@example.com", "Bob", "1234567"}, kit.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := a.Register(ctx, tt.req); kit.AsError(err).Code != tt.code {
				t.Fatalf("err %v, want %s", err, tt.code)
			}
		})
	}
	tok, err := a.Login(ctx, Login{"ada@example.com", "correct-horse"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := kittest.KeySet(t).Verify(ctx, tok.Token)
	if err != nil || c.Subject != u.ID || c.IsAdmin() {
		t.Fatalf("token: %+v %v", c, err)
	}
	for _, l := range []Login{{"ada@example.com", "wrong-horse"}, {"nobody@example.com", "correct-horse"}} {
		if _, err := a.Login(ctx, l); kit.AsError(err).Code != CodeInvalidCredentials {
			t.Fatalf("login %v: %v", l, err)
		}
	}
	if _, err := a.Get(ctx, customer("someone-else"), u.ID); kit.AsError(err).Code != kit.CodeNotFound {
		t.Fatalf("reading another account: %v, want the 404 of a missing one", err)
	}
}

func TestPointsCreditedOncePerEvent(t *testing.T) {
	ctx := context.Background()
	a := newUsers(t)
	u, _ := a.Register(ctx, Register{Email: "ada@example.com", Name: "Ada", Password: "correct-horse"})
	data, _ := json.Marshal(map[string]any{"userId": u.ID, "total": 25000})
	ev := kit.Event{ID: kit.EventID(catalog.OrderConfirmed, "o1"), Type: catalog.OrderConfirmed, Data: data}
	if err := a.OnOrderConfirmed(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := a.OnOrderConfirmed(ctx, ev); !errors.Is(err, kit.ErrDuplicate) {
		t.Fatalf("second delivery: %v, want a duplicate", err)
	}
	p, _ := a.Points(ctx, customer(u.ID), u.ID)
	if p.Points != 2 {
		t.Fatalf("points = %d, want 2", p.Points)
	}
	bad := kit.Event{ID: "x", Data: []byte(`{"userId":"a.b"}`)}
	if err := a.OnOrderConfirmed(ctx, bad); !errors.Is(err, kit.ErrPermanent) {
		t.Fatalf("a malformed event must be dropped: %v", err)
	}
}

func FuzzRegister(f *testing.F) {
	for _, s := range []string{`{"email":"a@b.c","name":"A","password":"12345678"}`, `{"email":1}`, `{"email":"<a@b>"}`, `{`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var r Register
		if err := kit.DecodeJSON(strings.NewReader(body), &r); err != nil {
			if kit.AsError(err).Status != 400 {
				t.Fatalf("%v is not a 400", err)
			}
			return
		}
		if r.Validate() == nil && len(r.Password) < 8 {
			t.Fatalf("accepted a short password: %+v", r)
		}
	})
}
