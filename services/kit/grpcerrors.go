package kit

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain errors on gRPC. A server's handler returns *Error as it does over
// HTTP; the server turns it into a status whose code follows from the HTTP
// status (table below) and whose google.rpc.ErrorInfo carries the domain
// code as reason, ErrorDomain as domain and the field at fault as metadata
// "field". The client turns the status back into an *Error with the same
// code and field, so callers branch on codes (or on sentinels through
// Reasons) and never on transport details.
//
//	HTTP status (kit.Error)          gRPC code
//	400 invalid, 413, 422            InvalidArgument
//	401                              Unauthenticated
//	403                              PermissionDenied
//	404                              NotFound
//	409 conflict (CAS contention)    Aborted
//	402, 409, 412 (domain state)     FailedPrecondition
//	429                              ResourceExhausted
//	501                              Unimplemented
//	503                              Unavailable
//	504                              DeadlineExceeded
//	other 5xx, non-*Error errors     Internal ("internal error"; the detail is logged)
const ErrorDomain = "switchboard.dev"

// errorInfoField is the ErrorInfo metadata key naming the request field at
// fault.
const errorInfoField = "field"

// StatusError builds a status error with an ErrorInfo: reason is the domain
// code (out_of_stock, payment_declined …), field the request field at fault
// ("" for none).
func StatusError(code codes.Code, reason, field, format string, args ...any) error {
	st := status.New(code, fmt.Sprintf(format, args...))
	info := &errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}
	if field != "" {
		info.Metadata = map[string]string{errorInfoField: field}
	}
	if withInfo, err := st.WithDetails(info); err == nil {
		st = withInfo
	}
	return st.Err()
}

// ToStatus is what a gRPC server sends for a handler's error: an *Error (or
// an upstream failure the handler passes on) as its code and ErrorInfo,
// a status error as it is, a context error as Canceled or
// DeadlineExceeded, and anything else as AsError renders it over HTTP: a
// store's contention (ErrContention) or an unanswered broker read
// (ErrBrokerUnavailable) as Unavailable with its reason, the rest as
// Internal without its detail.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return StatusError(grpcCode(e), e.Code, e.Field, "%s", e.Message)
	}
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	e = AsError(err)
	return StatusError(grpcCode(e), e.Code, e.Field, "%s", e.Message)
}

// FromStatus is what a gRPC client returns for a status error: an *Error
// whose code is the ErrorInfo reason (or one derived from the gRPC code),
// whose field comes from the metadata and whose HTTP status follows the
// table above; the status stays reachable (status.FromError, status.Code).
// Errors that are not statuses are returned as they are.
func FromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok || st == nil {
		return err
	}
	e := &Error{Status: httpStatus(st.Code()), Code: kitCode(st.Code()), Message: st.Message()}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ErrorDomain {
			e.Code = info.GetReason()
			e.Field = info.GetMetadata()[errorInfoField]
			break
		}
	}
	return &wrapped{e: e, cause: err}
}

// Reasons maps domain codes to a typed client's sentinel errors, such as
// "out_of_stock" → ErrOutOfStock.
type Reasons map[string]error

// Wrap returns err so that errors.Is(err, sentinel) holds for the sentinel
// its code maps to, with the *Error and the status still reachable. An err
// whose code is not listed is returned as it is.
func (r Reasons) Wrap(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	if s, ok := r[e.Code]; ok {
		return &reasonError{sentinel: s, err: err}
	}
	return err
}

type reasonError struct{ sentinel, err error }

func (r *reasonError) Error() string   { return r.err.Error() }
func (r *reasonError) Unwrap() []error { return []error{r.sentinel, r.err} }

func grpcCode(e *Error) codes.Code {
	switch e.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusConflict:
		if e.Code == CodeConflict {
			return codes.Aborted
		}
		return codes.FailedPrecondition
	case http.StatusPaymentRequired, http.StatusPreconditionFailed:
		return codes.FailedPrecondition
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusNotImplemented:
		return codes.Unimplemented
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	case http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	}
	if e.Status >= 400 && e.Status < 500 {
		return codes.FailedPrecondition
	}
	return codes.Internal
}

func httpStatus(c codes.Code) int {
	switch c {
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted, codes.FailedPrecondition:
		return http.StatusConflict
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Canceled:
		return 499 // client closed request, as nginx counts it
	}
	return http.StatusInternalServerError
}

// kitCode names a status that carries no ErrorInfo.
func kitCode(c codes.Code) string {
	switch c {
	case codes.InvalidArgument, codes.OutOfRange:
		return CodeInvalid
	case codes.Unauthenticated:
		return CodeUnauthenticated
	case codes.PermissionDenied:
		return CodeForbidden
	case codes.NotFound:
		return CodeNotFound
	case codes.Aborted:
		return CodeConflict
	case codes.ResourceExhausted:
		return CodeRateLimited
	case codes.Unavailable, codes.DeadlineExceeded:
		return CodeUnavailable
	}
	return CodeInternal
}
