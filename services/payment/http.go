package payment

import (
	"net/http"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// mine answers a customer the payment of their own order.
func (s *service) mine(w http.ResponseWriter, r *http.Request) {
	p, err := s.ledger.Of(r.Context(), kit.Subject(r), r.URL.Query().Get("orderId"))
	kit.Reply(w, r, http.StatusOK, p, err)
}
