package recommendation

import (
	"fmt"
	"net/http"

	"github.com/switchboard-dev/switchboard/services/kit"
)

func (s *service) recommend(w http.ResponseWriter, r *http.Request) {
	c, _ := kit.ClaimsFrom(r.Context())
	id := r.URL.Query().Get("accountId")
	if id == "" {
		id = c.Subject
	}
	if !kit.ValidID(id) {
		kit.WriteError(w, r, kit.Invalid("accountId", "accountId must be an account id"))
		return
	}
	if id != c.Subject {
		kit.WriteError(w, r, notYours(id))
		return
	}
	limit, err := ParseLimit(r.URL.Query().Get("limit"))
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	a, err := s.rec.For(r.Context(), id, limit)
	kit.Reply(w, r, http.StatusOK, a, err)
}

func (s *service) related(w http.ResponseWriter, r *http.Request) {
	limit, err := ParseLimit(r.URL.Query().Get("limit"))
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	a, err := s.rec.Related(r.Context(), r.PathValue("contentId"), limit)
	kit.Reply(w, r, http.StatusOK, a, err)
}

func (s *service) click(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[Click](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	caller := kit.Subject(r)
	if req.AccountID == "" {
		req.AccountID = caller
	}
	if req.AccountID != caller {
		kit.WriteError(w, r, notYours(req.AccountID))
		return
	}
	st, err := s.rec.RecordClick(r.Context(), req)
	kit.Reply(w, r, http.StatusOK, st, err)
}

// notYours answers a request naming another account as if that account did
// not exist, so account ids cannot be probed.
func notYours(id string) error {
	return &kit.Error{Status: http.StatusNotFound, Code: kit.CodeNotFound, Field: "accountId",
		Message: fmt.Sprintf("account %q not found", id)}
}

func (s *service) experiments(w http.ResponseWriter, r *http.Request) {
	ex, err := s.rec.Experiments(r.Context())
	kit.Reply(w, r, http.StatusOK, map[string][]VariantStats{"items": ex}, err)
}
