package kit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// metadataRequestID carries the request id across gRPC calls, as
// X-Request-ID does over HTTP.
const metadataRequestID = "x-request-id"

// healthService is the standard gRPC health service's name. Every service
// of the Platform may ask any other whether it serves.
const healthService = "grpc.health.v1.Health"

// GRPCPolicy says who may call what: full method name
// ("/switchboard.payment.v1.Payments/Charge") → the services allowed to
// call it. A method missing from the policy is refused to everyone; the
// health service is open to every service of the Platform. The catalog is
// where a service's policy comes from; it is not changed once served.
type GRPCPolicy map[string][]string

// authorize decides one call: Unauthenticated without a verified peer,
// PermissionDenied for a peer of another Platform or one the policy does
// not list.
func (p GRPCPolicy) authorize(self SPIFFEID, fullMethod string, peer SPIFFEID, havePeer bool) error {
	if !havePeer {
		return StatusError(codes.Unauthenticated, CodeUnauthenticated, "", "a client certificate naming a service is required")
	}
	if !self.SamePlatform(peer) {
		return StatusError(codes.PermissionDenied, CodeForbidden, "", "%s is not a service of this platform", peer)
	}
	if strings.HasPrefix(fullMethod, "/"+healthService+"/") {
		return nil
	}
	allowed, ok := p[fullMethod]
	if !ok || !slices.Contains(allowed, peer.Service) {
		return StatusError(codes.PermissionDenied, CodeForbidden, "", "service %s may not call %s", peer.Service, fullMethod)
	}
	return nil
}

// GRPCServer is a service's internal gRPC server: mutual TLS with the
// service's Identity, the standard health service, and, on every call, in
// this order: per-method Prometheus metrics, the caller's identity
// authorized against the GRPCPolicy, the request id and a request-scoped
// logger, *Error → status conversion (see ToStatus), and panic recovery.
// Register services on it like on a *grpc.Server, then Serve.
type GRPCServer struct {
	srv     *grpc.Server
	health  *health.Server
	policy  GRPCPolicy
	metrics *grpcprom.ServerMetrics
}

// NewGRPCServer builds the server of ident's service. The TLS handshake
// admits only certificates of ident's CAs naming a service of the same
// Platform; policy then decides per method. opts are appended (message
// sizes, stats handlers).
func NewGRPCServer(ident *Identity, m *Metrics, policy GRPCPolicy, log *slog.Logger, opts ...grpc.ServerOption) (*GRPCServer, error) {
	if ident == nil || m == nil || policy == nil {
		return nil, errors.New("kit: NewGRPCServer needs an identity, metrics and a policy")
	}
	if log == nil {
		log = slog.Default()
	}
	self := ident.ID()
	sm := registerOrExisting(m.Registry, grpcprom.NewServerMetrics(
		grpcprom.WithServerCounterOptions(grpcprom.WithConstLabels(prometheus.Labels{"service": self.Service})),
		grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramConstLabels(prometheus.Labels{"service": self.Service}),
			grpcprom.WithHistogramBuckets(latencyBuckets)),
	))
	// The handshake checks the CA and the Platform; the policy, per method,
	// checks the service. Reading ident.ID() at each handshake follows a
	// renewed certificate.
	tlsCfg := ServerTLSConfig(ident, func(peer SPIFFEID) error { return AuthorizeMemberOf(ident.ID())(peer) })
	s := &GRPCServer{policy: policy, metrics: sm, health: health.NewServer()}
	authz := func(ctx context.Context, fullMethod string) (context.Context, error) {
		id, ok := GRPCPeer(ctx)
		if err := policy.authorize(ident.ID(), fullMethod, id, ok); err != nil {
			log.Warn("grpc call refused", "method", fullMethod, "peer", id.String(), "err", err)
			return ctx, err
		}
		rid := ""
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get(metadataRequestID); len(v) > 0 && len(v[0]) <= 128 {
				rid = v[0]
			}
		}
		if rid == "" {
			rid = NewID()
		}
		ctx = WithRequestID(ctx, rid)
		return context.WithValue(ctx, ctxLogger, log.With("request_id", rid, "method", fullMethod, "peer", id.Service)), nil
	}
	onPanic := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		Logger(ctx).Error("grpc handler panicked", "panic", p, "stack", string(debug.Stack()))
		return StatusError(codes.Internal, CodeInternal, "", "internal error")
	})
	all := []grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(tlsCfg)),
		// Clients ping every 30 s on idle connections (see NewGRPCClient);
		// the default policy would answer that with GOAWAY.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// TLS checks a peer once, at the handshake; connections that live for
		// ever would outlive a replaced CA and never reach new replicas. A
		// bounded age makes clients reconnect (calls in flight finish): the
		// current certificates and the current endpoints apply within it.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second,
			MaxConnectionAge: 30 * time.Minute, MaxConnectionAgeGrace: 30 * time.Second}),
		grpc.ChainUnaryInterceptor(
			sm.UnaryServerInterceptor(grpcprom.WithExemplarFromContext(exemplarOf)),
			func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				ctx, err := authz(ctx, info.FullMethod)
				if err != nil {
					return nil, err
				}
				resp, err := h(ctx, req)
				if err != nil {
					st := ToStatus(err)
					if _, isStatus := status.FromError(err); !isStatus && status.Code(st) == codes.Internal {
						// The caller only sees "internal error".
						Logger(ctx).Error("grpc call failed", "err", err)
					}
					return nil, st
				}
				return resp, nil
			},
			recovery.UnaryServerInterceptor(onPanic),
		),
		grpc.ChainStreamInterceptor(
			sm.StreamServerInterceptor(grpcprom.WithExemplarFromContext(exemplarOf)),
			func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
				ctx, err := authz(ss.Context(), info.FullMethod)
				if err != nil {
					return err
				}
				return ToStatus(h(srv, &serverStream{ServerStream: ss, ctx: ctx}))
			},
			recovery.StreamServerInterceptor(onPanic),
		),
	}
	s.srv = grpc.NewServer(append(all, opts...)...)
	healthpb.RegisterHealthServer(s.srv, s.health)
	return s, nil
}

// RegisterService registers a service implementation (the generated
// Register…Server functions call it).
func (s *GRPCServer) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.srv.RegisterService(desc, impl)
}

// Health is the health service, to mark the server or one service
// NOT_SERVING while it drains.
func (s *GRPCServer) Health() *health.Server { return s.health }

// CheckPolicy reports methods served that the policy does not mention
// (refused to every caller: usually a forgotten catalog row) and policy
// entries that name no served method (usually a typo). Serve runs it.
func (s *GRPCServer) CheckPolicy() error {
	served := map[string]bool{}
	for name, info := range s.srv.GetServiceInfo() {
		if name == healthService {
			continue
		}
		for _, m := range info.Methods {
			served["/"+name+"/"+m.Name] = true
		}
	}
	var problems []string
	for m := range served {
		if _, ok := s.policy[m]; !ok {
			problems = append(problems, "no policy for "+m)
		}
	}
	for m := range s.policy {
		if !served[m] {
			problems = append(problems, "the policy names "+m+", which is not served")
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("kit: grpc policy: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Serve checks the policy, then serves on lis until Stop or GracefulStop.
func (s *GRPCServer) Serve(lis net.Listener) error {
	if err := s.CheckPolicy(); err != nil {
		return err
	}
	s.metrics.InitializeMetrics(s.srv)
	return s.srv.Serve(lis)
}

// GracefulStop marks every service NOT_SERVING, stops taking connections
// and waits for the calls in flight, streams included; see Shutdown.
func (s *GRPCServer) GracefulStop() {
	s.health.Shutdown()
	s.srv.GracefulStop()
}

// Shutdown is GracefulStop bounded by ctx: what is still open when ctx ends
// is closed. A health Watch stream never ends by itself, so an unbounded
// GracefulStop could wait for ever.
func (s *GRPCServer) Shutdown(ctx context.Context) {
	s.health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.srv.Stop()
		<-done
	}
}

// Stop closes every connection at once.
func (s *GRPCServer) Stop() {
	s.health.Shutdown()
	s.srv.Stop()
}

// GRPCPeer is the identity of the service calling, inside a handler. The
// server's TLS config verified the chain during the handshake, so the leaf
// is the identity.
func GRPCPeer(ctx context.Context) (SPIFFEID, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return SPIFFEID{}, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return SPIFFEID{}, false
	}
	id, err := PeerID(info.State)
	return id, err == nil
}

type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context { return s.ctx }

// latencyBuckets match the HTTP histograms', so dashboards compare them.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// registerOrExisting registers c, or returns the equal collector already
// registered: a service's server and its clients share one registry.
func registerOrExisting[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("kit: registering %T: %v", c, err))
	}
	return c
}
