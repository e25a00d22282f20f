package kit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// HeaderRequestID carries a request's correlation id across services.
const HeaderRequestID = "X-Request-ID"

type ctxKey int

const (
	ctxRequestID ctxKey = iota
	ctxLogger
	ctxClaims
	// ctxClosing is done when the request's server shuts down.
	ctxClosing
	// ctxTracing is the service's *Tracing, for StartSpan.
	ctxTracing
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
// default logger. Where the logger's handler is a TraceHandler, its records
// carry the trace and span ids of ctx.
func Logger(ctx context.Context) *slog.Logger {
	l, ok := ctx.Value(ctxLogger).(*slog.Logger)
	if !ok {
		l = slog.Default()
	}
	return bindLogger(l, ctx)
}

// WithLogger returns ctx whose Logger is l. Run gives the service's
// background work (consumers, sweeps) its logger this way.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, ctxLogger, l)
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
		rl = bindLogger(rl, ctx)
		r = r.WithContext(ctx)
		w.Header().Set(HeaderRequestID, id)
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok {
			rec.readTimeout, rec.writeTimeout = srv.ReadTimeout, srv.WriteTimeout
		}
		if closing, ok := r.Context().Value(ctxClosing).(context.Context); ok {
			// A streaming answer ends when its server shuts down (see
			// endStreamsOnShutdown); an ordinary one is left to finish.
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			r = r.WithContext(ctx)
			defer cancel()
			var unregister func() bool
			rec.streaming = func() { unregister = context.AfterFunc(closing, cancel) }
			defer func() {
				if unregister != nil {
					unregister()
				}
			}()
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
			observe(m.HTTPDuration.WithLabelValues(route, r.Method), time.Since(start).Seconds(), ctx)
			if sp := trace.SpanFromContext(ctx); sp.IsRecording() {
				// The server span (see Tracing.HTTPHandler) is named after
				// the route, known only now.
				sp.SetName(spanName(r.Method, route))
				sp.SetAttributes(attribute.String("http.route", route), attribute.Int("http.response.status_code", rec.status))
				if rec.status >= 500 {
					sp.SetStatus(codes.Error, http.StatusText(rec.status))
				}
			}
			if rec.status >= 500 {
				rl.Warn("request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "dur", time.Since(start))
			} else if rl.Enabled(ctx, slog.LevelDebug) {
				rl.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "dur", time.Since(start))
			}
		}()

		if r.ContentLength > MaxBodyBytes {
			// Refused before reading a byte of it.
			refuseBody(rec)
			WriteError(rec, r, Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body exceeds %d bytes", MaxBodyBytes))
			drain(rec, r, r.Body, false)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			rec.body = &limitedBody{src: r.Body, left: MaxBodyBytes}
			orig := r.Body
			r.Body = rec.body
			defer func() {
				if rec.body.over.Load() {
					drain(rec, r, orig, true)
				}
			}()
		}

		if _, pattern := mux.Handler(r); pattern == "" {
			// ServeMux answers unmatched paths and methods in plain text;
			// let it set the status (and Allow), then answer in JSON.
			mux.ServeHTTP(&jsonStatus{recorder: rec, r: r}, r)
			return
		}
		mux.ServeHTTP(rec, r)
	})
}

// spanName is "GET /orders/{id}" for the route pattern "GET /orders/{id}"
// or "/orders/{id}".
func spanName(method, route string) string {
	if strings.HasPrefix(route, method+" ") {
		return route
	}
	return method + " " + route
}

// MaxDrainBytes bounds how much of an oversize body is read and thrown away
// after its 413. Clients that send their whole body before reading the
// answer (most do) would otherwise meet a connection closed with their
// bytes unread, which the kernel turns into a reset: they would see the
// reset, never the 413.
const MaxDrainBytes = 8 << 20

// drainTimeout bounds the time a drain may take.
const drainTimeout = 10 * time.Second

// refuseBody readies the connection for a 413 that leaves the body unread:
// full duplex, so that the server does not try to consume the body before
// the answer goes out, and Connection: close, since what is left of the
// body will not be parsed as a next request.
func refuseBody(w http.ResponseWriter) {
	_ = http.NewResponseController(w).EnableFullDuplex()
	w.Header().Set("Connection", "close")
}

// drain sends the answer written so far, then reads and discards up to
// MaxDrainBytes of what is left of body, so that the client finishes
// sending and reads the answer. A client that awaits "100 Continue" and has
// not been told to go on sends nothing more: there is nothing to drain.
func drain(w http.ResponseWriter, r *http.Request, body io.Reader, started bool) {
	if !started && r.Header.Get("Expect") != "" {
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	_ = rc.SetReadDeadline(time.Now().Add(drainTimeout))
	_, _ = io.CopyN(io.Discard, body, MaxDrainBytes)
}

// limitedBody is a request body capped at MaxBodyBytes: reading past the cap
// fails with *http.MaxBytesError, and from then on the response is readied
// for the 413 (see recorder.WriteHeader) and the rest drained after the
// handler. Unlike http.MaxBytesReader, Close leaves the connection's body
// open: the server closes it after the handler, and the drain needs it
// until then. The reverse proxy reads it from its transport's goroutine,
// hence the atomic flag.
type limitedBody struct {
	src  io.ReadCloser
	left int64
	over atomic.Bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, &http.MaxBytesError{Limit: MaxBodyBytes}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.src.Read(p)
	if int64(n) <= b.left {
		b.left -= int64(n)
		return n, err
	}
	n, b.left = int(b.left), -1
	b.over.Store(true)
	return n, &http.MaxBytesError{Limit: MaxBodyBytes}
}

func (b *limitedBody) Close() error { return nil }

// endStreamsOnShutdown makes srv end its streaming answers (those that
// flushed: server-sent events, the gateway's proxy of them) when it shuts
// down. Shutdown waits for every request to finish, and a stream never
// would: without this it would hold the stop for the whole grace period.
func endStreamsOnShutdown(srv *http.Server) {
	closing, cancel := context.WithCancel(context.Background())
	srv.RegisterOnShutdown(cancel)
	base := srv.BaseContext
	srv.BaseContext = func(l net.Listener) context.Context {
		ctx := context.Background()
		if base != nil {
			ctx = base(l)
		}
		return context.WithValue(ctx, ctxClosing, closing)
	}
}

// recorder remembers the status for metrics and logs. Unwrap keeps
// http.ResponseController (flush, deadlines) working for streaming handlers.
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
	body   *limitedBody
	// The server's timeouts, which a streaming answer extends.
	readTimeout, writeTimeout time.Duration
	// streaming is called on the first flush: the answer is a stream.
	streaming func()
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
		if r.body != nil && r.body.over.Load() {
			refuseBody(r.ResponseWriter)
		}
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
	if r.streaming != nil {
		r.streaming()
		r.streaming = nil
	}
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
