package kit

import "net/http"

// InternalOnly wraps a route that only other services call (stock
// reservations, charges, refunds) and refuses a request that carries a
// user's bearer token. The services that call these routes never send one,
// while every request the gateway forwards to a non-public route does: this
// is the service's own refusal behind the gateway's route table and the
// network policies, so a routing mistake fails closed. It does not identify
// the calling service; mutual TLS does that.
func InternalOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			WriteError(w, r, Forbidden("%s %s is internal to the platform", r.Method, r.URL.Path))
			return
		}
		h(w, r)
	}
}
