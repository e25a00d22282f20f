package account_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/switchboard-dev/switchboard/services/account"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/streaming/streamtest"
)

func start(t *testing.T) streamtest.Client {
	t.Helper()
	b := kittest.StartNATS(t, "")
	env := b.Env()
	env["BCRYPT_COST"] = "4"
	r := kittest.Serve(t, account.Definition, env)
	return streamtest.Client{T: t, Base: r.URL}
}

func signUp(t *testing.T, c streamtest.Client, email, plan string) (events.Account, string) {
	t.Helper()
	var a events.Account
	c.Must(http.StatusCreated, "POST", "/accounts", account.SignUp{Email: email, Password: "correct-horse", Plan: plan}, &a)
	var tok account.Token
	c.Must(http.StatusOK, "POST", "/login", account.Login{Email: email, Password: "correct-horse"}, &tok)
	if tok.AccountID != a.ID || tok.Token == "" {
		t.Fatalf("login answered %+v for %+v", tok, a)
	}
	return a, tok.Token
}

func TestAccountLifecycle(t *testing.T) {
	c := start(t)
	a, tok := signUp(t, c, "ada@example.com", events.PlanBasic)
	if a.Plan != events.PlanBasic || len(a.Profiles) != 0 {
		t.Fatalf("created %+v", a)
	}
	me := c.As(tok)

	var got events.Account
	me.Must(http.StatusOK, "GET", "/accounts/"+a.ID, nil, &got)
	if got.Email != "ada@example.com" {
		t.Fatalf("got %+v", got)
	}
	me.Must(http.StatusOK, "PUT", "/accounts/"+a.ID+"/subscription", account.Subscription{Plan: events.PlanPremium}, &got)
	if got.Plan != events.PlanPremium {
		t.Fatalf("plan not changed: %+v", got)
	}
	for i := range account.MaxProfiles {
		me.Must(http.StatusCreated, "POST", "/accounts/"+a.ID+"/profiles", account.NewProfile{Name: "kid" + string(rune('a'+i))}, nil)
	}
	raw := me.Must(http.StatusConflict, "POST", "/accounts/"+a.ID+"/profiles", account.NewProfile{Name: "one too many"}, nil)
	if e := streamtest.Err(t, raw); e.Error.Code != account.CodeProfileLimit {
		t.Fatalf("sixth profile: %s", raw)
	}
	me.Must(http.StatusOK, "GET", "/accounts/"+a.ID, nil, &got)
	if len(got.Profiles) != account.MaxProfiles {
		t.Fatalf("profiles: %+v", got.Profiles)
	}
}

func TestAccountErrors(t *testing.T) {
	c := start(t)
	a, tok := signUp(t, c, "bob@example.com", events.PlanStandard)
	_, other := signUp(t, c, "eve@example.com", events.PlanBasic)

	tests := []struct {
		name       string
		client     streamtest.Client
		method     string
		path       string
		body       any
		status     int
		code, fild string
	}{
		{"an unknown plan is a 400 naming the plan", c, "POST", "/accounts", account.SignUp{Email: "x@example.com", Password: "correct-horse", Plan: "gold"}, 400, kit.CodeInvalid, "plan"},
		{"a bad email is a 400 naming the email", c, "POST", "/accounts", account.SignUp{Email: "nope", Password: "correct-horse", Plan: "basic"}, 400, kit.CodeInvalid, "email"},
		{"a taken email is a 409", c, "POST", "/accounts", account.SignUp{Email: "bob@example.com", Password: "correct-horse", Plan: "basic"}, 409, account.CodeEmailTaken, "email"},
		{"a wrong password is a 401", c, "POST", "/login", account.Login{Email: "bob@example.com", Password: "wrong-horse"}, 401, account.CodeInvalidCredentials, ""},
		{"reading without a token is a 401", c, "GET", "/accounts/" + a.ID, nil, 401, kit.CodeUnauthenticated, ""},
		{"reading someone else's account is the 404 of a missing one", c.As(other), "GET", "/accounts/" + a.ID, nil, 404, kit.CodeNotFound, ""},
		{"changing someone else's plan is a 404", c.As(other), "PUT", "/accounts/" + a.ID + "/subscription", account.Subscription{Plan: events.PlanPremium}, 404, kit.CodeNotFound, ""},
		{"adding a profile to someone else's account is a 404", c.As(other), "POST", "/accounts/" + a.ID + "/profiles", account.NewProfile{Name: "eve"}, 404, kit.CodeNotFound, ""},
		{"an unknown plan change is a 400", c.As(tok), "PUT", "/accounts/" + a.ID + "/subscription", account.Subscription{Plan: "gold"}, 400, kit.CodeInvalid, "plan"},
		{"an empty profile name is a 400", c.As(tok), "POST", "/accounts/" + a.ID + "/profiles", account.NewProfile{Name: " "}, 400, kit.CodeInvalid, "name"},
		{"an unknown field is a 400 naming it", c, "POST", "/accounts", map[string]string{"email": "z@example.com", "colour": "red"}, 400, kit.CodeInvalid, "colour"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.client.T = t
			raw := tt.client.Must(tt.status, tt.method, tt.path, tt.body, nil)
			e := streamtest.Err(t, raw)
			if e.Error.Code != tt.code || e.Error.Field != tt.fild {
				t.Fatalf("error %+v, want code %s field %q", e.Error, tt.code, tt.fild)
			}
		})
	}
}

func FuzzSignUpDecode(f *testing.F) {
	f.Add([]byte(`{"email":"a@b.co","password":"12345678","plan":"basic"}`))
	f.Add([]byte(`{"email":1}`))
	f.Add([]byte(`{"plan":"premium","extra":true}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var s account.SignUp
		if err := kit.DecodeJSON(bytes.NewReader(body), &s); err != nil {
			if e := kit.AsError(err); e.Status != 400 && e.Status != 413 {
				t.Fatalf("decode error %v is a %d", err, e.Status)
			}
			return
		}
		if err := s.Validate(); err != nil {
			if e := kit.AsError(err); e.Status != 400 || e.Field == "" {
				t.Fatalf("validation error %v has no field or status %d", err, e.Status)
			}
		}
	})
}
