package notification

import (
	"net/http"

	"github.com/switchboard-dev/switchboard/services/kit"
)

func (s *service) list(w http.ResponseWriter, r *http.Request) {
	ns, err := s.n.ForUser(r.Context(), r.URL.Query().Get("userId"))
	kit.Reply(w, r, http.StatusOK, map[string][]Notification{"items": ns}, err)
}
