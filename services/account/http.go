package account

import (
	"net/http"

	"github.com/switchboard-dev/switchboard/services/kit"
)

func (s *service) create(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[SignUp](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	a, err := s.acc.Create(r.Context(), req)
	kit.Reply(w, r, http.StatusCreated, a, err)
}

func (s *service) login(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[Login](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	t, err := s.acc.Login(r.Context(), req)
	kit.Reply(w, r, http.StatusOK, t, err)
}

func (s *service) get(w http.ResponseWriter, r *http.Request) {
	a, err := s.acc.Get(r.Context(), caller(r), r.PathValue("id"))
	kit.Reply(w, r, http.StatusOK, a, err)
}

func (s *service) subscription(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[Subscription](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	a, err := s.acc.ChangePlan(r.Context(), caller(r), r.PathValue("id"), req)
	kit.Reply(w, r, http.StatusOK, a, err)
}

func (s *service) addProfile(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[NewProfile](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	p, err := s.acc.AddProfile(r.Context(), caller(r), r.PathValue("id"), req)
	kit.Reply(w, r, http.StatusCreated, p, err)
}

// caller is the token RequireAuth verified.
func caller(r *http.Request) *kit.Claims {
	c, _ := kit.ClaimsFrom(r.Context())
	return c
}
