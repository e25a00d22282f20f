package user

import (
	"net/http"

	"github.com/switchboard-dev/switchboard/services/kit"
)

func (s *service) register(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[Register](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	u, err := s.users.Register(r.Context(), req)
	kit.Reply(w, r, http.StatusCreated, u, err)
}

func (s *service) login(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[Login](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	t, err := s.users.Login(r.Context(), req)
	kit.Reply(w, r, http.StatusOK, t, err)
}

func (s *service) get(w http.ResponseWriter, r *http.Request) {
	u, err := s.users.Get(r.Context(), caller(r), r.PathValue("id"))
	kit.Reply(w, r, http.StatusOK, u, err)
}

func (s *service) points(w http.ResponseWriter, r *http.Request) {
	p, err := s.users.Points(r.Context(), caller(r), r.PathValue("id"))
	kit.Reply(w, r, http.StatusOK, p, err)
}

func (s *service) grantAdmin(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[GrantAdmin](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	u, err := s.users.GrantAdmin(r.Context(), caller(r), req)
	kit.Reply(w, r, http.StatusOK, u, err)
}

// caller is the token RequireAuth verified.
func caller(r *http.Request) *kit.Claims {
	c, _ := kit.ClaimsFrom(r.Context())
	return c
}
