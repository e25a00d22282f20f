package kit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// HeaderRequestID carries a request's correlation id across services.
const HeaderRequestID = "X-Request-ID"

type ctxKey int

const (
	ctxRequestID ctxKey = iota
	ctxLogger
	ctxClaims
)

// RequestID returns the id of the request being served, "" outside one.
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(ctxRequestID).(string)
	return s
}

// WithRequestID returns ctx carrying id; the resilient client forwards it.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxRequestID, id)
}

// Logger returns the request-scoped logger (carrying the request id), or the
// default logger.
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(ctxLogger).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// NewID returns a random 16-hex-character id, safe as a KV key and in URLs.
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Middleware wraps the service mux with the concerns every request shares:
// panic recovery, request id, access log, metrics, the body size limit and
// JSON 404/405 answers.
func Middleware(log *slog.Logger, m *Metrics, mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(HeaderRequestID)
		if id == "" || len(id) > 128 {
			id = NewID()
		}
		rl := log.With("request_id", id)
		ctx := context.WithValue(WithRequestID(r.Context(), id), ctxLogger, rl)
		r = r.WithContext(ctx)
		w.Header().Set(HeaderRequestID, id)
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok {
			rec.readTimeout, rec.writeTimeout = srv.ReadTimeout, srv.WriteTimeout
		}

		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				rl.Error("panic", "panic", p)
				if !rec.wrote {
					WriteError(rec, r, Errorf(http.StatusInternalServerError, CodeInternal, "internal error"))
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			code := strconv.Itoa(rec.status)
			m.HTTPRequests.WithLabelValues(route, r.Method, code).Inc()
			m.HTTPDuration.WithLabelValues(route, r.Method).Observe(time.Since(start).Seconds())
			if rec.status >= 500 {
				rl.Warn("request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "dur", time.Since(start))
			} else if rl.Enabled(ctx, slog.LevelDebug) {
				rl.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "dur", time.Since(start))
			}
		}()

		if r.ContentLength > MaxBodyBytes {
			WriteError(rec, r, Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body exceeds %d bytes", MaxBodyBytes))
			return
		}
		r.Body = http.MaxBytesReader(rec, r.Body, MaxBodyBytes)

		if _, pattern := mux.Handler(r); pattern == "" {
			// ServeMux answers unmatched paths and methods in plain text;
			// let it set the status (and Allow), then answer in JSON.
			mux.ServeHTTP(&jsonStatus{recorder: rec, r: r}, r)
			return
		}
		mux.ServeHTTP(rec, r)
	})
}

// recorder remembers the status for metrics and logs. Unwrap keeps
// http.ResponseController (flush, deadlines) working for streaming handlers.
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
	// The server's timeouts, which a streaming answer extends.
	readTimeout, writeTimeout time.Duration
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush lets streaming handlers (SSE, the gateway's proxy) push bytes out.
// Each flush also moves the connection's deadlines a full timeout ahead:
// the server's read and write timeouts bound an ordinary request, but an
// answer that keeps flushing (server-sent events, a proxied stream) lives
// as long as it keeps sending. Without this the write deadline would cut
// the stream, and the read deadline would cancel its context.
func (r *recorder) Flush() {
	r.wrote = true
	rc := http.NewResponseController(r.ResponseWriter)
	now := time.Now()
	if r.writeTimeout > 0 {
		_ = rc.SetWriteDeadline(now.Add(r.writeTimeout))
	}
	if r.readTimeout > 0 {
		_ = rc.SetReadDeadline(now.Add(r.readTimeout))
	}
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// jsonStatus turns ServeMux's text 404/405 into JSON errors.
type jsonStatus struct {
	*recorder
	r        *http.Request
	replaced bool
}

func (j *jsonStatus) WriteHeader(code int) {
	switch code {
	case http.StatusNotFound:
		j.replaced = true
		j.Header().Del("X-Content-Type-Options")
		WriteError(j.recorder, j.r, NotFound("no route for %s %s", j.r.Method, j.r.URL.Path))
	case http.StatusMethodNotAllowed:
		j.replaced = true
		WriteError(j.recorder, j.r, Errorf(code, CodeMethodNotAllowed, "method %s not allowed; allowed: %s", j.r.Method, j.Header().Get("Allow")))
	default:
		j.recorder.WriteHeader(code)
	}
}

func (j *jsonStatus) Write(b []byte) (int, error) {
	if j.replaced {
		return len(b), nil
	}
	return j.recorder.Write(b)
}
