package content

import (
	"net/http"

	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

func (s *service) create(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[Upload](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	v, err := s.lib.Create(r.Context(), req)
	kit.Reply(w, r, http.StatusCreated, v, err)
}

func (s *service) list(w http.ResponseWriter, r *http.Request) {
	vs, err := s.lib.List(r.Context(), r.URL.Query().Get("genre"))
	kit.Reply(w, r, http.StatusOK, map[string][]events.Video{"items": vs}, err)
}

func (s *service) get(w http.ResponseWriter, r *http.Request) {
	v, err := s.lib.Get(r.Context(), r.PathValue("id"))
	kit.Reply(w, r, http.StatusOK, v, err)
}
