package payment

import (
	"net/http"

	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

func (s *service) charge(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[ChargeRequest](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	p, created, err := s.ledger.Charge(r.Context(), req)
	if err == nil && p.Status == Declined {
		err = kit.Errorf(http.StatusPaymentRequired, CodeDeclined, "payment declined: %s", p.Reason)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	kit.Reply(w, r, status, p, err)
}

// mine answers a customer the payment of their own order.
func (s *service) mine(w http.ResponseWriter, r *http.Request) {
	p, err := s.ledger.Of(r.Context(), kit.Subject(r), r.URL.Query().Get("orderId"))
	kit.Reply(w, r, http.StatusOK, p, err)
}

// ofOrder answers order what became of an order's charge: none or one.
func (s *service) ofOrder(w http.ResponseWriter, r *http.Request) {
	ps, err := s.ledger.ByOrder(r.Context(), r.PathValue("orderId"))
	kit.Reply(w, r, http.StatusOK, map[string][]events.Payment{"items": ps}, err)
}

func (s *service) refund(w http.ResponseWriter, r *http.Request) {
	p, err := s.ledger.Refund(r.Context(), r.PathValue("id"))
	kit.Reply(w, r, http.StatusOK, p, err)
}
