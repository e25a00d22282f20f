package kit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// GRPCClientOptions tune a GRPCClient. The embedded ClientOptions give the
// per-attempt timeout, attempts, backoff and breaker rules, with the same
// defaults and env knobs as the HTTP client; its Transport is unused.
type GRPCClientOptions struct {
	ClientOptions
	// Idempotent reports whether a method may be sent again after a
	// failure; default ProtoIdempotent, the method's idempotency_level in
	// its .proto.
	Idempotent func(fullMethod string) bool
	// DialOptions are appended to the client's own.
	DialOptions []grpc.DialOption
}

// GRPCClientOptionsFromEnv reads the HTTP client's knobs:
// UPSTREAM_TIMEOUT, UPSTREAM_ATTEMPTS, BREAKER_FAILURES, BREAKER_OPEN_FOR.
func GRPCClientOptionsFromEnv(c Config) (GRPCClientOptions, error) {
	o, err := ClientOptionsFromEnv(c)
	return GRPCClientOptions{ClientOptions: o}, err
}

// GRPCClient calls one upstream's internal gRPC services. It is a
// grpc.ClientConnInterface: hand it to a generated New…Client.
//
// Every unary call:
//   - runs over mutual TLS with the service's Identity, and the server must
//     prove the upstream's own SPIFFE ID (the caller's Platform, service
//     named upstream), whatever address it answers on;
//   - has a deadline per attempt (Timeout), within the caller's;
//   - goes through a gobreaker circuit breaker per upstream that counts
//     only transport failures (Unavailable, DeadlineExceeded), never domain
//     answers, and fails fast with ErrBreakerOpen while open;
//   - is sent again, with jittered exponential backoff, up to Attempts
//     times, only for idempotent methods and only after a transport
//     failure;
//   - ends in the worst outcome across its attempts: once any attempt may
//     have reached the server (its headers were handed to the transport)
//     and no later attempt got an answer, the error is ErrAmbiguous, never
//     ErrNotSent;
//   - returns a domain answer as an *Error (see FromStatus), a failure as a
//     503 dependency_unavailable *Error matching ErrAmbiguous, or ErrNotSent
//     (and ErrBreakerOpen), with errors.Is.
//
// Internal, Unknown and DataLoss after sending also count as ambiguous: the
// server failed somewhere inside the operation. Streams pass through with
// none of this.
type GRPCClient struct {
	name    string
	conn    *grpc.ClientConn
	opts    GRPCClientOptions
	cb      *gobreaker.CircuitBreaker[struct{}]
	metrics grpcClientMetrics
	idem    sync.Map // full method → bool
}

// NewGRPCClient prepares the client of upstream at target ("host:port", or
// any gRPC target such as dns:///shop-product.demo.svc:9090). Connections
// are made lazily, on the first call.
func NewGRPCClient(upstream, target string, ident *Identity, m *Metrics, o GRPCClientOptions) (*GRPCClient, error) {
	if upstream == "" || target == "" || ident == nil || m == nil {
		return nil, fmt.Errorf("kit: grpc client %q needs a target, an identity and metrics", upstream)
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
	if o.Idempotent == nil {
		o.Idempotent = ProtoIdempotent
	}
	self := ident.ID().Service
	c := &GRPCClient{name: upstream, opts: o, metrics: newGRPCClientMetrics(m.Registry, self)}

	st := BreakerSettings(upstream, o.BreakerFailures, o.BreakerOpenFor, m)
	st.IsSuccessful = func(err error) bool { return !transportFailure(err) }
	st.IsExcluded = func(err error) bool {
		return errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled
	}
	c.cb = gobreaker.NewCircuitBreaker[struct{}](st)
	m.BreakerState.WithLabelValues(upstream).Set(0)

	// The server must be the upstream of our own Platform, read at each
	// handshake so a renewed identity is followed.
	authorize := func(peer SPIFFEID) error { return AuthorizeID(ident.ID().Sibling(upstream))(peer) }
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(ClientTLSConfig(ident, authorize))),
		grpc.WithStatsHandler(sendTracker{}),
		grpc.WithChainUnaryInterceptor(c.metrics.attempts.UnaryClientInterceptor(grpcprom.WithExemplarFromContext(exemplarOf))),
		// Spread calls over every address the name resolves to (a headless
		// Service's pods); one ClusterIP address behaves as before.
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
	}
	conn, err := grpc.NewClient(target, append(dial, o.DialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("kit: grpc client %s: %w", upstream, err)
	}
	c.conn = conn
	return c, nil
}

// Name is the upstream's name.
func (c *GRPCClient) Name() string { return c.name }

// Open reports whether the breaker is open, i.e. calls would fail fast.
func (c *GRPCClient) Open() bool { return c.cb.State() == gobreaker.StateOpen }

// Close closes the connections.
func (c *GRPCClient) Close() error { return c.conn.Close() }

// NewStream opens a stream as the connection does: no deadline, retry or
// breaker of the client's.
func (c *GRPCClient) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.conn.NewStream(ctx, desc, method, opts...)
}

// Invoke performs a unary call with the client's rules (see GRPCClient).
func (c *GRPCClient) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	start := time.Now()
	short := shortMethod(method)
	outcome := "OK"
	defer func() {
		c.metrics.calls.WithLabelValues(c.name, short, outcome).Inc()
		observe(c.metrics.duration.WithLabelValues(c.name, short), time.Since(start).Seconds(), ctx)
	}()
	attempts := 1
	if c.idempotent(method) {
		attempts = c.opts.Attempts
	}
	var (
		reached bool  // an attempt may have reached the server
		open    bool  // the breaker refused the last attempt
		last    error // the last attempt's error
	)
attempts:
	for i := 0; i < attempts; i++ {
		if i > 0 {
			c.metrics.retries.WithLabelValues(c.name, short).Inc()
			if !sleep(ctx, backoff(c.opts.Backoff, i)) {
				last = fmt.Errorf("%w while waiting to retry: %w", ctx.Err(), last)
				break
			}
		}
		sent, err := c.attempt(ctx, method, args, reply, opts)
		if err == nil {
			return nil
		}
		last = err
		code := status.Code(err)
		switch {
		case errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests):
			open = true
			break attempts
		case transportFailure(err):
			reached = reached || sent
			if ctx.Err() != nil {
				break attempts
			}
		case code == codes.Canceled:
			reached = reached || sent
			break attempts
		case sent && (code == codes.Internal || code == codes.Unknown || code == codes.DataLoss):
			// The server failed somewhere inside the operation.
			reached = true
			break attempts
		default:
			// A domain answer: the server received the request and decided.
			// For an idempotent method it is the truth, whatever earlier
			// attempts did.
			outcome = code.String()
			return FromStatus(err)
		}
	}
	var cause error
	switch {
	case reached:
		outcome, cause = "ambiguous", fmt.Errorf("%w: %w", ErrAmbiguous, last)
	case open:
		outcome, cause = "breaker_open", fmt.Errorf("%w: %w: %w", ErrBreakerOpen, ErrNotSent, last)
	default:
		outcome, cause = "not_sent", fmt.Errorf("%w: %w", ErrNotSent, last)
	}
	return &wrapped{e: Unavailable("%s unavailable: %v", c.name, last), cause: cause}
}

// attempt is one call through the breaker, within the per-attempt
// deadline. sent reports whether the request's headers were handed to a
// connection, i.e. whether the server may have seen it.
func (c *GRPCClient) attempt(ctx context.Context, method string, args, reply any, opts []grpc.CallOption) (sent bool, err error) {
	actx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	tr := &tracker{}
	actx = context.WithValue(actx, trackerKey{}, tr)
	if id := RequestID(ctx); id != "" {
		actx = metadata.AppendToOutgoingContext(actx, metadataRequestID, id)
	}
	_, err = c.cb.Execute(func() (struct{}, error) {
		return struct{}{}, c.conn.Invoke(actx, method, args, reply, opts...)
	})
	return tr.sent.Load(), err
}

// backoff is the jittered delay before attempt i (1-based retries): base
// doubled each time, between half and one and a half of it.
func backoff(base time.Duration, i int) time.Duration {
	d := base << (i - 1)
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}

// sleep waits d, or less when ctx ends first (then it reports false).
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

func (c *GRPCClient) idempotent(method string) bool {
	if v, ok := c.idem.Load(method); ok {
		return v.(bool)
	}
	v := c.opts.Idempotent(method)
	c.idem.Store(method, v)
	return v
}

// ProtoIdempotent reads a method's idempotency_level option from the
// registered descriptors: IDEMPOTENT and NO_SIDE_EFFECTS may be retried,
// anything else (the default, IDEMPOTENCY_UNKNOWN) may not.
func ProtoIdempotent(fullMethod string) bool {
	svc, name, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if !ok {
		return false
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return false
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return false
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return false
	}
	mo, ok := md.Options().(*descriptorpb.MethodOptions)
	if !ok {
		return false
	}
	switch mo.GetIdempotencyLevel() {
	case descriptorpb.MethodOptions_IDEMPOTENT, descriptorpb.MethodOptions_NO_SIDE_EFFECTS:
		return true
	}
	return false
}

// transportFailure is what says nothing of the upstream's answer: it could
// not be reached, or did not answer in time.
func transportFailure(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

func shortMethod(full string) string {
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		if j := strings.LastIndexByte(full[:i], '.'); j >= 0 {
			return full[j+1:] // Payments/Charge
		}
		return strings.TrimPrefix(full, "/")
	}
	return full
}

// tracker records, through the stats handler, that an attempt's headers
// went to a connection.
type tracker struct{ sent atomic.Bool }

type trackerKey struct{}

type sendTracker struct{}

func (sendTracker) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (sendTracker) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.OutHeader); ok {
		if tr, ok := ctx.Value(trackerKey{}).(*tracker); ok {
			tr.sent.Store(true)
		}
	}
}
func (sendTracker) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (sendTracker) HandleConn(context.Context, stats.ConnStats)                       {}

// grpcClientMetrics: per attempt, the go-grpc-middleware client metrics
// (grpc_client_handled_total by method and code, latency histogram); per
// call, the outcome after retries, the retries and the latency.
type grpcClientMetrics struct {
	attempts *grpcprom.ClientMetrics
	calls    *prometheus.CounterVec   // upstream, method, outcome
	retries  *prometheus.CounterVec   // upstream, method
	duration *prometheus.HistogramVec // upstream, method
}

func newGRPCClientMetrics(reg *prometheus.Registry, service string) grpcClientMetrics {
	lbl := prometheus.Labels{"service": service}
	return grpcClientMetrics{
		attempts: registerOrExisting(reg, grpcprom.NewClientMetrics(
			grpcprom.WithClientCounterOptions(grpcprom.WithConstLabels(lbl)),
			grpcprom.WithClientHandlingTimeHistogram(grpcprom.WithHistogramConstLabels(lbl), grpcprom.WithHistogramBuckets(latencyBuckets)),
		)),
		calls: registerOrExisting(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_grpc_client_calls_total", ConstLabels: lbl,
			Help: "Internal gRPC calls by final outcome after retries: OK, the gRPC code of a domain answer, ambiguous, not_sent or breaker_open.",
		}, []string{"upstream", "method", "outcome"})),
		retries: registerOrExisting(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_grpc_client_retries_total", ConstLabels: lbl,
			Help: "Internal gRPC attempts sent again after a transport failure.",
		}, []string{"upstream", "method"})),
		duration: registerOrExisting(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_grpc_client_call_duration_seconds", ConstLabels: lbl, Buckets: latencyBuckets,
			Help: "Internal gRPC call latency, all attempts and backoff included.",
		}, []string{"upstream", "method"})),
	}
}
