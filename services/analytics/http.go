package analytics

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/switchboard-dev/switchboard/services/kit"
)

func (s *service) live(w http.ResponseWriter, r *http.Request) {
	kit.WriteJSON(w, http.StatusOK, s.a.Live())
}

func (s *service) stats(w http.ResponseWriter, r *http.Request) {
	kit.WriteJSON(w, http.StatusOK, s.a.Stats())
}

// Window bounds of GET /top.
const (
	DefaultWindow = 5 * time.Minute
	MaxWindow     = time.Hour
	DefaultLimit  = 10
	MaxLimit      = 100
)

// TopQuery is the parsed query of GET /top.
type TopQuery struct {
	Window time.Duration
	Limit  int
}

// ParseTopQuery reads window (a duration, 1s to 1h) and limit (1 to 100).
func ParseTopQuery(window, limit string) (TopQuery, error) {
	q := TopQuery{Window: DefaultWindow, Limit: DefaultLimit}
	if window != "" {
		d, err := time.ParseDuration(window)
		if err != nil || d < time.Second || d > MaxWindow {
			return q, kit.Invalid("window", "window must be a duration from 1s to %s, like 5m", MaxWindow)
		}
		q.Window = d
	}
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 || n > MaxLimit {
			return q, kit.Invalid("limit", "limit must be between 1 and %d", MaxLimit)
		}
		q.Limit = n
	}
	return q, nil
}

func (s *service) top(w http.ResponseWriter, r *http.Request) {
	q, err := ParseTopQuery(r.URL.Query().Get("window"), r.URL.Query().Get("limit"))
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	kit.WriteJSON(w, http.StatusOK, map[string]any{"window": q.Window.String(), "items": s.a.Top(q.Window, q.Limit)})
}

// watchTime answers the caller's own watch time. Another account's answers
// 404, as an account that does not exist would, so ids cannot be probed.
func (s *service) watchTime(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id != kit.Subject(r) {
		kit.WriteError(w, r, kit.NotFound("account %q not found", id))
		return
	}
	kit.WriteJSON(w, http.StatusOK, s.a.WatchTime(id))
}

// stream pushes /live as Server-Sent Events: the figures at once, then
// whenever they change (at most every 200ms), plus a comment every 15s to
// keep proxies from closing the connection.
func (s *service) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	var last Live
	sent := false
	send := func() error {
		l := s.a.Live()
		if sent && reflect.DeepEqual(l, last) {
			return nil
		}
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "event: live\ndata: %s\n\n", b); err != nil {
			return err
		}
		last, sent = l, true
		return rc.Flush()
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	// Staleness changes /live without an event, so look again each second.
	stale := time.NewTicker(time.Second)
	defer stale.Stop()
	ctx := r.Context()
	for {
		if err := send(); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-s.a.view.changes():
			if !sleep(ctx, 200*time.Millisecond) {
				return
			}
		case <-stale.C:
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
