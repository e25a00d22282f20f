package notification

import (
	"net/http"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// list answers the caller's own notifications. Whose they are comes from
// the token alone: a userId parameter is refused, not ignored, so a client
// that still names a user learns at once that it cannot.
func (s *service) list(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has("userId") {
		kit.WriteError(w, r, kit.Invalid("userId", "notifications are always the caller's own; drop userId"))
		return
	}
	ns, err := s.n.ForUser(r.Context(), kit.Subject(r))
	kit.Reply(w, r, http.StatusOK, map[string][]Notification{"items": ns}, err)
}
