package kit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error codes shared by every service. Service-specific codes (out_of_stock,
// payment_declined …) are plain strings next to the code that returns them.
const (
	CodeInvalid          = "invalid_argument"
	CodeMalformed        = "malformed_json"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeTooLarge         = "body_too_large"
	CodeRateLimited      = "rate_limited"
	CodeUnauthenticated  = "unauthenticated"
	CodeForbidden        = "forbidden"
	CodeConflict         = "conflict"
	CodeUnavailable      = "dependency_unavailable"
	// CodeContention is a 503: too many concurrent changes to one record;
	// the same request is likely to succeed a moment later.
	CodeContention = "contention"
	CodeInternal   = "internal"
)

// MaxBodyBytes is the largest request body any service accepts.
const MaxBodyBytes = 1 << 20

// Error is an error with an HTTP status and a stable machine-readable code.
// Handlers return it; WriteError renders it as
// {"error":{"code":…,"message":…,"field":…}}.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// RetryAfter, when set, becomes a Retry-After header in whole seconds.
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Field)
	}
	return e.Code + ": " + e.Message
}

// Errorf builds an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid reports a client mistake in one field of the request.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: fmt.Sprintf(format, args...), Field: field}
}

// NotFound reports a missing resource.
func NotFound(format string, args ...any) *Error {
	return Errorf(http.StatusNotFound, CodeNotFound, format, args...)
}

// Unauthenticated reports a missing or bad token.
func Unauthenticated(format string, args ...any) *Error {
	return Errorf(http.StatusUnauthorized, CodeUnauthenticated, format, args...)
}

// Forbidden reports an authenticated caller acting on someone else's data.
func Forbidden(format string, args ...any) *Error {
	return Errorf(http.StatusForbidden, CodeForbidden, format, args...)
}

// Unavailable reports that a dependency (upstream, broker) cannot serve now.
func Unavailable(format string, args ...any) *Error {
	return Errorf(http.StatusServiceUnavailable, CodeUnavailable, format, args...)
}

// ErrBrokerUnavailable is a read the broker did not answer in time (a
// stream electing its leader, the connection being re-established):
// nothing changed, and the caller may try again. It answers 503.
var ErrBrokerUnavailable = errors.New("the broker is unavailable")

// ErrorBody is the JSON envelope of every error response.
type ErrorBody struct {
	Error Error `json:"error"`
}

// ContentionRetryAfter is the Retry-After of a contention 503.
const ContentionRetryAfter = time.Second

// AsError returns err as an *Error. Store contention (ErrContention)
// becomes a 503 with Retry-After; anything else a 500 whose message does
// not leak internals.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, ErrContention) {
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeContention,
			Message: "too many concurrent changes to the same record; retry", RetryAfter: ContentionRetryAfter}
	}
	if errors.Is(err, ErrBrokerUnavailable) {
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
			Message: "the broker is unavailable; retry", RetryAfter: time.Second}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body exceeds %d bytes", mbe.Limit)
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
}

// WriteError writes err as a JSON error response. 5xx errors that are not
// *Error are logged with their detail, since the client only sees "internal".
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	e := AsError(err)
	if e.Code == CodeInternal {
		Logger(r.Context()).Error("request failed", "err", err)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	WriteJSON(w, e.Status, ErrorBody{Error: *e})
}

// Reply writes v with status, or err as a JSON error when it is not nil: the
// last line of most handlers.
func Reply[T any](w http.ResponseWriter, r *http.Request, status int, v T, err error) {
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, status, v)
}

// WriteJSON writes v with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Debug("write response", "err", err)
	}
}

// Decode reads one JSON value from the request body into a T. Unknown fields,
// trailing data, oversize bodies (see MaxBodyBytes) and wrong types become
// *Error values naming the offending field where JSON tells us.
func Decode[T any](r *http.Request) (T, error) {
	// The Content-Type is not checked: `curl -d` sends a form type, and the
	// body is JSON or a 400 either way.
	var v T
	return v, DecodeJSON(http.MaxBytesReader(nil, r.Body, MaxBodyBytes), &v)
}

// DecodeJSON is Decode's core, separate so fuzz targets and tests can feed it
// bytes without an HTTP request.
func DecodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return AsError(err)
		}
		return &Error{Status: http.StatusBadRequest, Code: CodeMalformed, Message: "body must hold a single JSON value"}
	}
	return nil
}

func decodeError(err error) error {
	var (
		mbe  *http.MaxBytesError
		syn  *json.SyntaxError
		typ  *json.UnmarshalTypeError
		inva *json.InvalidUnmarshalError
	)
	switch {
	case errors.As(err, &mbe):
		return AsError(err)
	case errors.Is(err, io.EOF):
		return &Error{Status: http.StatusBadRequest, Code: CodeMalformed, Message: "empty body"}
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Status: http.StatusBadRequest, Code: CodeMalformed, Message: "malformed JSON: " + err.Error()}
	case errors.As(err, &typ):
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: fmt.Sprintf("must be %s", typ.Type), Field: typ.Field}
	case errors.As(err, &inva):
		return err // a programming error, not the client's
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: "unknown field", Field: strings.Trim(f, `"`)}
	}
	return &Error{Status: http.StatusBadRequest, Code: CodeMalformed, Message: err.Error()}
}

// ValidID reports whether s can serve as an id: 1–64 letters, digits, '-'
// or '_'. Ids become KV key tokens and URL path segments, so nothing else
// is accepted.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
