package kit

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// GRPCRegistrar is a Service that serves an internal gRPC API: exactly
// the gRPC services its catalog row names (catalog.Service.GRPC), which it
// registers on the server Run builds. Run serves them on GRPC_ADDR with
// mutual TLS, to the callers catalog.InternalMethods admits.
type GRPCRegistrar interface {
	RegisterGRPC(s *GRPCServer)
}

// GRPCPolicyFor is the policy of service's gRPC server: each of its
// methods in catalog.InternalMethods, with the callers the table admits.
func GRPCPolicyFor(service string) GRPCPolicy {
	p := GRPCPolicy{}
	for _, m := range catalog.MethodsOf(service) {
		p[m.Method] = m.Callers
	}
	return p
}

// identityFor is the identity a service runs with: the one o passes (dev
// mode, tests), else the one loaded from TLS_DIR. Every service has one:
// the API port, the gRPC port and the gRPC clients all speak mutual TLS.
func identityFor(name string, cfg Config, o RunOptions) (*Identity, error) {
	ident := o.Identity
	if ident == nil {
		ident = cfg.Identity
	}
	if ident == nil {
		return nil, fmt.Errorf("%s is required: the directory holding the service's certificate and key (%s, %s) and the platform's CA bundle (%s)",
			EnvTLSDir, TLSCertFile, TLSKeyFile, TLSCAFile)
	}
	if got := ident.ID().Service; got != name {
		return nil, fmt.Errorf("%s: the certificate names service %q (%s), not %q", EnvTLSDir, got, ident.ID(), name)
	}
	return ident, nil
}

// APITLSConfig is the TLS of a service's API port: mutual TLS, and only
// the gateway of the service's own Platform may connect, since the
// gateway alone forwards the public API. Another service, even with a
// valid certificate, never completes the handshake.
func APITLSConfig(ident *Identity) *tls.Config {
	return ServerTLSConfig(ident, func(peer SPIFFEID) error {
		return AuthorizeServices(ident.ID(), catalog.Gateway)(peer)
	})
}

// apiListener is what the API port serves on: mutual TLS for every
// service but the gateway, whose port is the platform's public front door
// (TLS for the outside is the ingress's job).
func apiListener(ln net.Listener, name string, ident *Identity) net.Listener {
	if name == catalog.Gateway {
		return ln
	}
	return tls.NewListener(ln, APITLSConfig(ident))
}

// newServiceGRPC builds the gRPC server of a built service: its row's
// gRPC services registered, each method's callers from the catalog, every
// method covered by the policy (CheckPolicy) and the health service
// reporting each one SERVING.
func newServiceGRPC(svc Service, row catalog.Service, ident *Identity, m *Metrics, log *slog.Logger, tr *Tracing) (*GRPCServer, error) {
	reg, ok := svc.(GRPCRegistrar)
	switch {
	case !row.ServesGRPC() && ok:
		return nil, fmt.Errorf("%s registers a gRPC API, but its catalog row names no gRPC service", row.Name)
	case !row.ServesGRPC():
		return nil, nil
	case !ok:
		return nil, fmt.Errorf("%s's catalog row names gRPC services %v, but it registers none", row.Name, row.GRPC)
	}
	s, err := NewGRPCServer(ident, m, GRPCPolicyFor(row.Name), log, tr.GRPCServerOptions()...)
	if err != nil {
		return nil, err
	}
	reg.RegisterGRPC(s)
	var served []string
	for name := range s.srv.GetServiceInfo() {
		if name != healthService {
			served = append(served, name)
		}
	}
	sort.Strings(served)
	want := slices.Sorted(slices.Values(row.GRPC))
	if len(served) == 0 {
		return nil, fmt.Errorf("%s's catalog row names gRPC services %v, but it registers none", row.Name, row.GRPC)
	}
	if !slices.Equal(served, want) {
		return nil, fmt.Errorf("%s serves gRPC %s, but its catalog row names %s", row.Name, strings.Join(served, ", "), strings.Join(want, ", "))
	}
	if err := s.CheckPolicy(); err != nil {
		return nil, err
	}
	for _, name := range served {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	return s, nil
}

// closers are what a service's Deps opened (its gRPC clients), closed
// once it has stopped.
type closers struct {
	mu   sync.Mutex
	list []io.Closer
}

func (c *closers) add(x io.Closer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.list = append(c.list, x)
}

func (c *closers) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range c.list {
		_ = x.Close()
	}
	c.list = nil
}
