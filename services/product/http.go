package product

import (
	"net/http"

	"github.com/switchboard-dev/switchboard/services/kit"
)

func (s *service) list(w http.ResponseWriter, r *http.Request) {
	ps, err := s.cat.List(r.Context(), r.URL.Query().Get("category"))
	kit.Reply(w, r, http.StatusOK, map[string][]Product{"items": ps}, err)
}

func (s *service) create(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[NewProduct](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	p, err := s.cat.Create(r.Context(), req)
	kit.Reply(w, r, http.StatusCreated, p, err)
}

func (s *service) update(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[ProductPatch](r)
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	p, err := s.cat.Update(r.Context(), r.PathValue("id"), req)
	kit.Reply(w, r, http.StatusOK, p, err)
}

func (s *service) get(w http.ResponseWriter, r *http.Request) {
	p, err := s.cat.Get(r.Context(), r.PathValue("id"))
	kit.Reply(w, r, http.StatusOK, p, err)
}

func (s *service) stock(w http.ResponseWriter, r *http.Request) {
	st, err := s.cat.Stock(r.Context(), r.PathValue("id"))
	kit.Reply(w, r, http.StatusOK, st, err)
}

// SetStockRequest is the body of PUT /stock/{id}.
type SetStockRequest struct {
	Available *int64 `json:"available"`
}

func (s *service) setStock(w http.ResponseWriter, r *http.Request) {
	req, err := kit.Decode[SetStockRequest](r)
	if err == nil && req.Available == nil {
		err = kit.Invalid("available", "available is required")
	}
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	st, err := s.cat.SetAvailable(r.Context(), r.PathValue("id"), *req.Available)
	kit.Reply(w, r, http.StatusOK, st, err)
}
