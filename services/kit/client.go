package kit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sony/gobreaker/v2"
)

// HeaderIdempotencyKey marks a non-idempotent request as safe to retry.
const HeaderIdempotencyKey = "Idempotency-Key"

// Errors of the resilient client. Use errors.Is.
var (
	// ErrBreakerOpen: the upstream failed too often; the call was not sent.
	ErrBreakerOpen = errors.New("circuit breaker open")
	// ErrNotSent: the request certainly did not reach the upstream (breaker
	// open, connection refused, DNS failure).
	ErrNotSent = errors.New("request not sent")
	// ErrAmbiguous: the request may have been processed (timeout or reset
	// after sending, or a 5xx). Ask the upstream before assuming anything.
	ErrAmbiguous = errors.New("outcome unknown")
)

// ClientOptions tune a Client; zero values take the defaults.
type ClientOptions struct {
	Timeout         time.Duration // per attempt; default 3s
	Attempts        int           // total attempts for retryable calls; default 3
	Backoff         time.Duration // first retry delay, doubled each time; default 50ms
	BreakerFailures uint32        // consecutive failures that open the breaker; default 5
	BreakerOpenFor  time.Duration // how long it stays open before probing; default 10s
	Transport       http.RoundTripper
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

// NewTransport is the pooled transport shared by service-to-service calls:
// many idle connections per host, so a busy service never re-dials, and the
// proxy taken from the environment.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	return t
}

// Client calls one upstream with a per-attempt timeout, retries with
// jittered exponential backoff for idempotent requests (GET, HEAD, PUT,
// DELETE, or any request with an Idempotency-Key) on transport errors and
// 502/503/504 only, never on other statuses, and a circuit breaker that
// fails fast while the upstream is down.
type Client struct {
	name    string
	base    *url.URL
	hc      *http.Client
	opts    ClientOptions
	cb      *gobreaker.CircuitBreaker[*http.Response]
	metrics *Metrics
}

// NewClient builds the client for upstream name at base.
func NewClient(name string, base *url.URL, m *Metrics, o ClientOptions) (*Client, error) {
	if base == nil || m == nil {
		return nil, fmt.Errorf("kit: client %s needs a base URL and metrics", name)
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.Backoff <= 0 {
		o.Backoff = 50 * time.Millisecond
	}
	if o.BreakerFailures == 0 {
		o.BreakerFailures = 5
	}
	if o.BreakerOpenFor <= 0 {
		o.BreakerOpenFor = 10 * time.Second
	}
	if o.Transport == nil {
		o.Transport = NewTransport()
	}
	c := &Client{name: name, base: base, hc: &http.Client{Transport: o.Transport}, opts: o, metrics: m}
	c.cb = gobreaker.NewCircuitBreaker[*http.Response](BreakerSettings(name, o.BreakerFailures, o.BreakerOpenFor, m))
	m.BreakerState.WithLabelValues(name).Set(0)
	return c, nil
}

// BreakerSettings are the breaker rules shared by the client and the
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

// Name is the upstream's name.
func (c *Client) Name() string { return c.name }

// Open reports whether the breaker is open, i.e. calls would fail fast.
func (c *Client) Open() bool { return c.cb.State() == gobreaker.StateOpen }

// Request describes one call.
type Request struct {
	Method string
	Path   string // relative to the base URL, may carry a query
	Body   any    // marshalled as JSON when not nil
	// IdempotencyKey, when set, is sent as Idempotency-Key and makes a POST
	// retryable.
	IdempotencyKey string
	Header         http.Header
}

// Response is a completed call: status and the raw body (small JSON).
type Response struct {
	Status int
	Body   []byte
}

// JSON decodes the body into v.
func (r *Response) JSON(v any) error { return json.Unmarshal(r.Body, v) }

// Do performs the call. A 2xx-4xx response is returned as is (err == nil)
// so callers can map upstream codes; failures are errors wrapping
// ErrBreakerOpen/ErrNotSent or ErrAmbiguous and carrying a 503 *Error.
func (c *Client) Do(ctx context.Context, req Request) (*Response, error) {
	start := time.Now()
	defer func() { c.metrics.ClientDuration.WithLabelValues(c.name).Observe(time.Since(start).Seconds()) }()
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = json.Marshal(req.Body); err != nil {
			return nil, err
		}
	}
	u, err := c.base.Parse(req.Path)
	if err != nil {
		return nil, err
	}
	retryable := req.IdempotencyKey != "" || req.Method == http.MethodGet || req.Method == http.MethodHead ||
		req.Method == http.MethodPut || req.Method == http.MethodDelete
	attempts := 1
	if retryable {
		attempts = c.opts.Attempts
	}
	var lastErr error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			c.metrics.ClientRetries.WithLabelValues(c.name).Inc()
			d := c.opts.Backoff << (i - 1)
			d = d/2 + time.Duration(rand.Int64N(int64(d)))
			select {
			case <-ctx.Done():
				return nil, c.fail(lastErr)
			case <-time.After(d):
			}
		}
		resp, err := c.attempt(ctx, req, u, body)
		if err == nil {
			return resp, nil
		}
		lastErr = err
		if errors.Is(err, ErrBreakerOpen) || ctx.Err() != nil {
			break
		}
	}
	return nil, c.fail(lastErr)
}

func (c *Client) fail(err error) error {
	return &wrapped{e: Unavailable("%s unavailable: %v", c.name, err), cause: err}
}

// wrapped is a 503 *Error that still answers errors.Is for the cause.
type wrapped struct {
	e     *Error
	cause error
}

func (w *wrapped) Error() string   { return w.e.Error() }
func (w *wrapped) Unwrap() []error { return []error{w.e, w.cause} }

// upstreamStatus is a retryable bad status, counted as a breaker failure.
type upstreamStatus int

func (s upstreamStatus) Error() string { return "upstream answered " + strconv.Itoa(int(s)) }

func (c *Client) attempt(ctx context.Context, req Request, u *url.URL, body []byte) (*Response, error) {
	actx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var out *Response
	_, err := c.cb.Execute(func() (*http.Response, error) {
		hr, err := http.NewRequestWithContext(actx, req.Method, u.String(), bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		for k, vs := range req.Header {
			hr.Header[k] = vs
		}
		if body != nil {
			hr.Header.Set("Content-Type", "application/json")
		}
		hr.Header.Set("Accept", "application/json")
		if req.IdempotencyKey != "" {
			hr.Header.Set(HeaderIdempotencyKey, req.IdempotencyKey)
		}
		if id := RequestID(ctx); id != "" {
			hr.Header.Set(HeaderRequestID, id)
		}
		resp, err := c.hc.Do(hr)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4*MaxBodyBytes))
		if err != nil {
			return nil, err
		}
		out = &Response{Status: resp.StatusCode, Body: b}
		switch resp.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return nil, upstreamStatus(resp.StatusCode)
		}
		return nil, nil
	})
	outcome := "error"
	switch {
	case err == nil:
		outcome = strconv.Itoa(out.Status)
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		outcome = "breaker_open"
		err = fmt.Errorf("%w: %w", ErrBreakerOpen, ErrNotSent)
	case notSent(err):
		err = fmt.Errorf("%w: %w", ErrNotSent, err)
	default:
		var us upstreamStatus
		if errors.As(err, &us) {
			outcome = strconv.Itoa(int(us))
		}
		err = fmt.Errorf("%w: %w", ErrAmbiguous, err)
	}
	c.metrics.ClientRequests.WithLabelValues(c.name, outcome).Inc()
	return out, err
}

// notSent reports errors raised before the request left: dialing failed.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// UpstreamError turns a 4xx response into the *Error the upstream sent, so a
// caller can pass out_of_stock along or branch on its code.
func UpstreamError(r *Response) *Error {
	var b ErrorBody
	if err := json.Unmarshal(r.Body, &b); err != nil || b.Error.Code == "" {
		return &Error{Status: r.Status, Code: http.StatusText(r.Status), Message: string(r.Body)}
	}
	b.Error.Status = r.Status
	return &b.Error
}
