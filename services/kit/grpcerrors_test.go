package kit_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-dev/switchboard/services/kit"
)

func TestDomainErrorsCrossGRPC(t *testing.T) {
	for name, tc := range map[string]struct {
		err      error
		code     codes.Code
		back     int // the HTTP status the client's *kit.Error carries
		kitCode  string
		field    string
		message  string
		notAnErr bool
	}{
		"an invalid field": {
			err: kit.Invalid("quantity", "quantity must be positive"), code: codes.InvalidArgument,
			back: http.StatusBadRequest, kitCode: kit.CodeInvalid, field: "quantity", message: "quantity must be positive",
		},
		"a missing token":     {err: kit.Unauthenticated("no token"), code: codes.Unauthenticated, back: http.StatusUnauthorized, kitCode: kit.CodeUnauthenticated},
		"someone else's data": {err: kit.Forbidden("not yours"), code: codes.PermissionDenied, back: http.StatusForbidden, kitCode: kit.CodeForbidden},
		"an unknown product": {
			err:  &kit.Error{Status: http.StatusNotFound, Code: "unknown_product", Message: "no such product", Field: "product_id"},
			code: codes.NotFound, back: http.StatusNotFound, kitCode: "unknown_product", field: "product_id",
		},
		"out of stock": {
			err: &kit.Error{Status: http.StatusConflict, Code: "out_of_stock", Message: "only 2 left", Field: "quantity"}, code: codes.FailedPrecondition,
			back: http.StatusConflict, kitCode: "out_of_stock", field: "quantity", message: "only 2 left",
		},
		"a declined payment (402)": {
			err:  kit.Errorf(http.StatusPaymentRequired, "payment_declined", "card declined"),
			code: codes.FailedPrecondition, back: http.StatusConflict, kitCode: "payment_declined",
		},
		"contention":            {err: kit.Errorf(http.StatusConflict, kit.CodeConflict, "busy"), code: codes.Aborted, back: http.StatusConflict, kitCode: kit.CodeConflict},
		"an idempotency misuse": {err: kit.Errorf(http.StatusUnprocessableEntity, "idempotency_mismatch", "other body"), code: codes.InvalidArgument, back: http.StatusBadRequest, kitCode: "idempotency_mismatch"},
		"rate limited":          {err: kit.Errorf(http.StatusTooManyRequests, kit.CodeRateLimited, "slow down"), code: codes.ResourceExhausted, back: http.StatusTooManyRequests, kitCode: kit.CodeRateLimited},
		"a dependency down":     {err: kit.Unavailable("kv down"), code: codes.Unavailable, back: http.StatusServiceUnavailable, kitCode: kit.CodeUnavailable},
		"a dependency slow":     {err: kit.Errorf(http.StatusGatewayTimeout, "upstream_timeout", "slow"), code: codes.DeadlineExceeded, back: http.StatusGatewayTimeout, kitCode: "upstream_timeout"},
		"a 500 *Error":          {err: kit.Errorf(http.StatusInternalServerError, kit.CodeInternal, "bug"), code: codes.Internal, back: http.StatusInternalServerError, kitCode: kit.CodeInternal},
		"an odd 4xx":            {err: kit.Errorf(http.StatusGone, "gone", "gone"), code: codes.FailedPrecondition, back: http.StatusConflict, kitCode: "gone"},
		// What kit.Store and the leader reads return, as a handler passes
		// them on: the answers the client retries, as over HTTP.
		"a store's contention": {
			err: fmt.Errorf("reserve: %w", kit.ErrContention), code: codes.Unavailable, back: http.StatusServiceUnavailable, kitCode: kit.CodeContention,
		},
		"a broker read no leader answered": {
			err: fmt.Errorf("get stock/p1: %w: %w", kit.ErrBrokerUnavailable, nats.ErrNoResponders), code: codes.Unavailable,
			back: http.StatusServiceUnavailable, kitCode: kit.CodeUnavailable,
		},
		"a plain error hides its detail": {
			err: errors.New("disk on fire"), code: codes.Internal, back: http.StatusInternalServerError, kitCode: kit.CodeInternal, message: "internal error",
		},
		"a wrapped *Error keeps its code": {
			err: fmt.Errorf("reserving: %w", kit.NotFound("gone")), code: codes.NotFound, back: http.StatusNotFound, kitCode: kit.CodeNotFound,
		},
		"a cancelled context": {err: fmt.Errorf("x: %w", context.Canceled), code: codes.Canceled, back: 499, kitCode: kit.CodeInternal},
		"a deadline":          {err: context.DeadlineExceeded, code: codes.DeadlineExceeded, back: http.StatusGatewayTimeout, kitCode: kit.CodeUnavailable},
		"a bare status without ErrorInfo": {
			err: status.Error(codes.PermissionDenied, "no"), code: codes.PermissionDenied, back: http.StatusForbidden, kitCode: kit.CodeForbidden,
		},
		"nil stays nil": {notAnErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			wire := kit.ToStatus(tc.err)
			if tc.notAnErr {
				if wire != nil || kit.FromStatus(nil) != nil {
					t.Fatalf("ToStatus(nil) = %v", wire)
				}
				return
			}
			if status.Code(wire) != tc.code {
				t.Fatalf("ToStatus(%v) = %v; want %v", tc.err, wire, tc.code)
			}
			// What the client gets: the status as it arrives off the wire.
			got := kit.FromStatus(status.FromProto(status.Convert(wire).Proto()).Err())
			e := kit.AsError(got)
			if e.Status != tc.back || e.Code != tc.kitCode || e.Field != tc.field {
				t.Fatalf("*kit.Error %+v; want %d %q field %q", e, tc.back, tc.kitCode, tc.field)
			}
			if tc.message != "" && e.Message != tc.message {
				t.Fatalf("message %q, want %q", e.Message, tc.message)
			}
			if status.Code(got) != tc.code {
				t.Fatalf("the client's error lost its status: %v", status.Code(got))
			}
		})
	}
}

func TestErrorInfoOfAnotherDomainIsNotOurs(t *testing.T) {
	st, err := status.New(codes.FailedPrecondition, "quota").WithDetails(&errdetails.ErrorInfo{Reason: "QUOTA", Domain: "example.com"})
	if err != nil {
		t.Fatal(err)
	}
	e := kit.AsError(kit.FromStatus(st.Err()))
	if e.Code == "QUOTA" {
		t.Fatalf("a foreign ErrorInfo became our domain code: %+v", e)
	}
}

func TestReasonsWrap(t *testing.T) {
	errDeclined := errors.New("declined")
	r := kit.Reasons{"payment_declined": errDeclined}
	if r.Wrap(nil) != nil {
		t.Fatal("Wrap(nil) is not nil")
	}
	plain := errors.New("plain")
	if r.Wrap(plain) != plain {
		t.Fatal("an error that is no *kit.Error changed")
	}
	other := kit.FromStatus(kit.StatusError(codes.FailedPrecondition, "out_of_stock", "", "none"))
	if got := r.Wrap(other); errors.Is(got, errDeclined) || got != other {
		t.Fatalf("an unlisted reason was mapped: %v", got)
	}
	declined := kit.FromStatus(kit.StatusError(codes.FailedPrecondition, "payment_declined", "", "card declined"))
	got := r.Wrap(declined)
	if !errors.Is(got, errDeclined) || got.Error() != declined.Error() || kit.AsError(got).Code != "payment_declined" {
		t.Fatalf("Wrap = %v", got)
	}
}
