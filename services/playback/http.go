package playback

import (
	"net/http"

	"github.com/switchboard-dev/switchboard/services/kit"
)

func (s *service) start(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[StartRequest](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	st, err := s.p.Start(r.Context(), kit.Subject(r), req)
	kit.Reply(w, r, http.StatusCreated, st, err)
}

func (s *service) heartbeat(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[Heartbeat](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	q, err := s.p.Heartbeat(r.Context(), kit.Subject(r), r.PathValue("id"), req)
	kit.Reply(w, r, http.StatusOK, q, err)
}

func (s *service) stop(w http.ResponseWriter, r *http.Request) {
	if err := s.p.Stop(r.Context(), kit.Subject(r), r.PathValue("id")); err != nil {
		kit.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *service) history(w http.ResponseWriter, r *http.Request) {
	items, err := s.p.History(r.Context(), kit.Subject(r))
	kit.Reply(w, r, http.StatusOK, map[string][]HistoryItem{"items": items}, err)
}
