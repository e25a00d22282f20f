package traces

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// Paths of the ops routes.
const (
	PathList  = "/debug/traces"
	PathTrace = "/debug/traces/{traceId}"
)

// DefaultLimit is the length of a list when ?limit= is not given.
const DefaultLimit = 50

// Routes serves b on mux: GET /debug/traces (?limit=, default
// DefaultLimit) and GET /debug/traces/{traceId}, which answers 404 when
// the buffer holds none of the trace's spans.
func Routes(mux *http.ServeMux, b *Buffer) {
	mux.HandleFunc("GET "+PathList, func(w http.ResponseWriter, r *http.Request) {
		limit, err := ParseLimit(r.URL.Query().Get("limit"))
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_argument", "limit", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, b.List(limit))
	})
	mux.HandleFunc("GET "+PathTrace, func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("traceId")
		t, ok := b.Trace(id)
		if !ok {
			writeError(w, http.StatusNotFound, "not_found", "traceId", fmt.Sprintf("no span of trace %q is held here", id))
			return
		}
		writeJSON(w, http.StatusOK, t)
	})
}

// ParseLimit reads ?limit=: "" is DefaultLimit, else a positive integer.
func ParseLimit(v string) (int, error) {
	if v == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("limit=%q: want a positive integer", v)
	}
	return n, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in the platform's error shape (kit.Error's JSON),
// written here because kit imports this package.
func writeError(w http.ResponseWriter, status int, code, field, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg, "field": field}})
}
