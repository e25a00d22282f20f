package kit

import (
	"context"
	"errors"
	"time"

	"github.com/sony/gobreaker/v2"
)

// HeaderIdempotencyKey marks a non-idempotent request as safe to retry.
const HeaderIdempotencyKey = "Idempotency-Key"

// Errors of the gRPC client (GRPCClient). Use errors.Is.
var (
	// ErrBreakerOpen: the upstream failed too often; the call was not sent.
	ErrBreakerOpen = errors.New("circuit breaker open")
	// ErrNotSent: the request certainly did not reach the upstream (breaker
	// open, connection refused, DNS failure).
	ErrNotSent = errors.New("request not sent")
	// ErrAmbiguous: the request may have been processed (timeout or reset
	// after sending, or a server failure). Ask the upstream before assuming
	// anything.
	ErrAmbiguous = errors.New("outcome unknown")
)

// ClientOptions tune calls to an upstream; zero values take the defaults.
type ClientOptions struct {
	Timeout         time.Duration // per attempt; default 3s
	Attempts        int           // total attempts for retryable calls; default 3
	Backoff         time.Duration // first retry delay, doubled each time; default 50ms
	BreakerFailures uint32        // consecutive failures that open the breaker; default 5
	BreakerOpenFor  time.Duration // how long it stays open before probing; default 10s
}

// ClientOptionsFromEnv reads UPSTREAM_TIMEOUT, UPSTREAM_ATTEMPTS,
// BREAKER_FAILURES and BREAKER_OPEN_FOR, all optional.
func ClientOptionsFromEnv(c Config) (ClientOptions, error) {
	var o ClientOptions
	var err error
	if o.Timeout, err = c.Duration("UPSTREAM_TIMEOUT", 3*time.Second); err != nil {
		return o, err
	}
	if o.Attempts, err = c.Int("UPSTREAM_ATTEMPTS", 3); err != nil {
		return o, err
	}
	n, err := c.Int("BREAKER_FAILURES", 5)
	if err != nil {
		return o, err
	}
	o.BreakerFailures = uint32(n)
	if o.BreakerOpenFor, err = c.Duration("BREAKER_OPEN_FOR", 10*time.Second); err != nil {
		return o, err
	}
	return o, nil
}

// BreakerSettings are the breaker rules shared by the gRPC client and the
// gateway: open after n consecutive failures, probe after openFor; a
// cancelled caller is not the upstream's fault.
func BreakerSettings(name string, n uint32, openFor time.Duration, m *Metrics) gobreaker.Settings {
	return gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		Timeout:     openFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= n },
		IsExcluded:  func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			m.BreakerState.WithLabelValues(name).Set(float64(to))
		},
	}
}

// wrapped is a *Error that still answers errors.Is for the cause.
type wrapped struct {
	e     *Error
	cause error
}

func (w *wrapped) Error() string   { return w.e.Error() }
func (w *wrapped) Unwrap() []error { return []error{w.e, w.cause} }
