package order

import (
	"context"
	"net/http"

	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

func (s *service) place(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[PlaceRequest](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	claims, _ := kit.ClaimsFrom(r.Context())
	// The saga outlives a client that hangs up, but not the instance.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	stop := context.AfterFunc(s.life, cancel)
	defer stop()
	o, status, err := s.orders.Place(ctx, claims, r.Header.Get(kit.HeaderIdempotencyKey), req)
	if err != nil && o.ID != "" {
		// Failed orders still answer with the order, next to the error.
		kit.WriteJSON(w, status, struct {
			Error kit.Error    `json:"error"`
			Order events.Order `json:"order"`
		}{*kit.AsError(err), o})
		return
	}
	kit.Reply(w, r, status, o, err)
}

// refund is a staff refund. Like a placed order's saga, it outlives a
// client that hangs up, but not the instance.
func (s *service) refund(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[RefundRequest](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	staff, _ := kit.ClaimsFrom(r.Context())
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	stop := context.AfterFunc(s.life, cancel)
	defer stop()
	o, status, err := s.orders.Refund(ctx, staff, r.PathValue("id"), req)
	kit.Reply(w, r, status, o, err)
}

func (s *service) get(w http.ResponseWriter, r *http.Request) {
	o, err := s.orders.Get(r.Context(), kit.Subject(r), r.PathValue("id"))
	kit.Reply(w, r, http.StatusOK, o, err)
}

func (s *service) list(w http.ResponseWriter, r *http.Request) {
	os, err := s.orders.List(r.Context(), kit.Subject(r))
	kit.Reply(w, r, http.StatusOK, map[string][]events.Order{"items": os}, err)
}
