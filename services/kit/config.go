package kit

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/internal/tokenkeys"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

// Getenv looks up one variable; os.Getenv in production, a map in dev mode
// and tests.
type Getenv func(string) string

// MapEnv adapts a map to Getenv.
func MapEnv(m map[string]string) Getenv { return func(k string) string { return m[k] } }

// OSEnv is the process environment.
var OSEnv Getenv = os.Getenv

// Config is everything a service reads from its environment. LoadConfig is
// the one loader for `switchboard serve` and `switchboard dev`.
type Config struct {
	Service  catalog.Service
	HTTPAddr string
	// OpsAddr serves /healthz, /readyz, /metrics and the service's ops
	// routes, never its API.
	OpsAddr string
	// GRPCAddr serves the internal gRPC API, for services whose row names
	// gRPC services (GRPC_ADDR, default ":9090").
	GRPCAddr string
	// Identity is the service's certificate, key and CA bundle, from the
	// directory TLS_DIR names; nil when TLS_DIR is unset, and then Run
	// refuses to start unless the caller sets one (dev mode and tests
	// issue it in memory).
	Identity *Identity
	// NATS is empty for services with no streams and no buckets (the gateway).
	NATSURL, NATSUser, NATSPassword string
	// BrokerReplicas is the broker's server count (BROKER_REPLICAS, default
	// 1); streams and buckets keep catalog.StreamReplicas of it.
	BrokerReplicas int
	// BrokerStoreBytes is each broker server's JetStream store
	// (BROKER_STORE_BYTES); 0 when unknown, and then streams and buckets
	// have no byte limits.
	BrokerStoreBytes int64
	// BrokerServices are the platform's services that use the broker
	// (BROKER_SERVICES): the service creates and updates the streams and
	// buckets it owns among them (catalog.StreamOwner, BucketOwner) and
	// waits for the others. Nil when unset: it then creates and updates
	// everything it uses, which only a broker user without limits may do
	// (tests, a dev broker).
	BrokerServices []string
	// ShutdownDrain is how long a stopping service keeps serving with
	// readiness failed (SHUTDOWN_DRAIN); 0 skips the drain.
	ShutdownDrain time.Duration
	// ReadTimeout and WriteTimeout bound reading a request and writing its
	// answer (HTTP_READ_TIMEOUT, HTTP_WRITE_TIMEOUT).
	ReadTimeout, WriteTimeout time.Duration
	// TokenKeys verifies user tokens (TOKEN_KEYS); nil for services whose
	// catalog row never sees one.
	TokenKeys *KeySet
	// Signer signs user tokens (TOKEN_SIGNING_KEY, TOKEN_TTL); nil except
	// for the services whose catalog row issues them.
	Signer *Signer
	// Upstreams maps upstream name → the https base URL of its REST API:
	// the gateway's upstreams (<UPSTREAM>_URL), those that are set, as it
	// routes to enabled services only.
	Upstreams map[string]*url.URL
	// GRPCUpstreams maps upstream name → gRPC target (<UPSTREAM>_GRPC):
	// every other service's upstreams, each required.
	GRPCUpstreams map[string]string
	// Tracing is where spans go and which traces are sampled
	// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER[_ARG],
	// TRACE_BUFFER_TRACES).
	Tracing TracingConfig
	// Env gives access to service-specific optional settings (see Duration,
	// Int).
	Env Getenv
}

// Needs says which optional parts of Config a service requires.
type Needs struct {
	// Auth means the service's routes check tokens with Deps.Tokens. Its
	// catalog row must say it verifies tokens, because that row is what
	// makes the operator hand it the keys; LoadConfig refuses a mismatch.
	Auth bool
}

// NeedsNATS reports whether the service keeps state, watches a bucket or
// exchanges events.
func NeedsNATS(s catalog.Service) bool {
	return len(s.Buckets)+len(s.Reads)+len(s.Publishes)+len(s.Consumers) > 0
}

// LoadConfig reads and validates the configuration of service name. Every
// error names the variable at fault.
func LoadConfig(name string, needs Needs, env Getenv) (Config, error) {
	svc, ok := catalog.Lookup(name)
	if !ok {
		return Config{}, fmt.Errorf("unknown service %q", name)
	}
	c := Config{Service: svc, Env: env, Upstreams: map[string]*url.URL{}, GRPCUpstreams: map[string]string{}}

	var err error
	if c.HTTPAddr, err = listenAddr(env, catalog.EnvHTTPAddr, catalog.HTTPPort); err != nil {
		return Config{}, err
	}
	if c.OpsAddr, err = listenAddr(env, catalog.EnvOpsAddr, catalog.OpsPort); err != nil {
		return Config{}, err
	}
	if svc.ServesGRPC() {
		if c.GRPCAddr, err = listenAddr(env, catalog.EnvGRPCAddr, catalog.GRPCPort); err != nil {
			return Config{}, err
		}
	}
	if strings.TrimSpace(env(catalog.EnvTLSDir)) != "" {
		if c.Identity, err = IdentityFromEnv(env); err != nil {
			return Config{}, err
		}
	}

	if c.ShutdownDrain, err = c.NonNegativeDuration(catalog.EnvShutdownDrain, catalog.DefaultShutdownDrain); err != nil {
		return Config{}, err
	}
	if c.ReadTimeout, err = c.Duration(catalog.EnvHTTPReadTimeout, catalog.DefaultHTTPReadTimeout); err != nil {
		return Config{}, err
	}
	if c.WriteTimeout, err = c.Duration(catalog.EnvHTTPWriteTimeout, catalog.DefaultHTTPWriteTimeout); err != nil {
		return Config{}, err
	}

	if c.Tracing, err = LoadTracingConfig(env); err != nil {
		return Config{}, err
	}

	if NeedsNATS(svc) {
		if c.BrokerReplicas, err = c.Int(catalog.EnvBrokerReplicas, 1); err != nil {
			return Config{}, err
		}
		if v := strings.TrimSpace(env(catalog.EnvBrokerStoreBytes)); v != "" {
			if c.BrokerStoreBytes, err = strconv.ParseInt(v, 10, 64); err != nil || c.BrokerStoreBytes <= 0 {
				return Config{}, fmt.Errorf("%s=%q: want the store's size in bytes, a positive integer", catalog.EnvBrokerStoreBytes, v)
			}
		}
		if c.BrokerServices, err = brokerServices(env, svc); err != nil {
			return Config{}, err
		}
		c.NATSURL = strings.TrimSpace(env(catalog.EnvNATSURL))
		if c.NATSURL == "" {
			return Config{}, fmt.Errorf("%s is required", catalog.EnvNATSURL)
		}
		for _, u := range strings.Split(c.NATSURL, ",") {
			pu, err := url.Parse(strings.TrimSpace(u))
			if err != nil || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, pu.Scheme) || pu.Host == "" {
				return Config{}, fmt.Errorf("%s=%q: want nats://host:port[,…]", catalog.EnvNATSURL, c.NATSURL)
			}
		}
		c.NATSUser, c.NATSPassword = env(catalog.EnvNATSUser), env(catalog.EnvNATSPassword)
		if (c.NATSUser == "") != (c.NATSPassword == "") {
			return Config{}, fmt.Errorf("%s and %s must be set together", catalog.EnvNATSUser, catalog.EnvNATSPassword)
		}
	}

	if needs.Auth && !svc.VerifiesTokens() {
		return Config{}, fmt.Errorf("%s checks tokens, but its catalog row does not say it verifies them", svc.Name)
	}
	if svc.VerifiesTokens() {
		var err error
		if c.TokenKeys, err = loadTokenKeys(env); err != nil {
			return Config{}, err
		}
	}
	if svc.IssuesTokens() {
		var err error
		if c.Signer, err = loadSigner(env, c.TokenKeys); err != nil {
			return Config{}, err
		}
	}

	for _, up := range svc.Upstreams {
		if svc.Name != catalog.Gateway {
			target := strings.TrimSpace(env(catalog.EnvGRPC(up)))
			if target == "" {
				return Config{}, fmt.Errorf("%s is required: the gRPC target of %s, such as dns:///%s.<namespace>.svc:%d", catalog.EnvGRPC(up), up, up, catalog.GRPCPort)
			}
			c.GRPCUpstreams[up] = target
			continue
		}
		v := strings.TrimSpace(env(catalog.EnvURL(up)))
		if v == "" {
			continue // the gateway routes only to enabled services
		}
		u, err := url.Parse(v)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return Config{}, fmt.Errorf("%s=%q: want an absolute https URL: services serve their API over mutual TLS", catalog.EnvURL(up), v)
		}
		c.Upstreams[up] = u
	}
	return c, nil
}

// brokerServices reads BROKER_SERVICES: catalog services that use the
// broker, among them svc itself, which would otherwise own nothing.
func brokerServices(env Getenv, svc catalog.Service) ([]string, error) {
	v := strings.TrimSpace(env(catalog.EnvBrokerServices))
	if v == "" {
		return nil, nil
	}
	var out []string
	for _, name := range strings.Split(v, ",") {
		name = strings.TrimSpace(name)
		if s, ok := catalog.Lookup(name); !ok || !s.UsesBroker() {
			return nil, fmt.Errorf("%s=%q: %q is no service that uses the broker", catalog.EnvBrokerServices, v, name)
		}
		out = append(out, name)
	}
	if !slices.Contains(out, svc.Name) {
		return nil, fmt.Errorf("%s=%q does not name %s itself", catalog.EnvBrokerServices, v, svc.Name)
	}
	return out, nil
}

// listenAddr reads a host:port to listen on, ":<port>" when unset.
func listenAddr(env Getenv, name string, port int) (string, error) {
	addr := strings.TrimSpace(env(name))
	if addr == "" {
		return fmt.Sprintf(":%d", port), nil
	}
	if _, p, err := net.SplitHostPort(addr); err != nil {
		return "", fmt.Errorf("%s=%q is not host:port: %v", name, addr, err)
	} else if _, err := strconv.ParseUint(p, 10, 16); err != nil {
		return "", fmt.Errorf("%s=%q has a bad port", name, addr)
	}
	return addr, nil
}

func loadTokenKeys(env Getenv) (*KeySet, error) {
	text := env(catalog.EnvTokenKeys)
	if strings.TrimSpace(text) == "" {
		return nil, fmt.Errorf("%s is required: the PEM public keys that verify user tokens", catalog.EnvTokenKeys)
	}
	keys, err := tokenkeys.ParsePublic(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", catalog.EnvTokenKeys, err)
	}
	return NewKeySet(keys...)
}

func loadSigner(env Getenv, verify *KeySet) (*Signer, error) {
	text := env(catalog.EnvTokenSigningKey)
	if strings.TrimSpace(text) == "" {
		return nil, fmt.Errorf("%s is required: the PEM Ed25519 private key that signs user tokens", catalog.EnvTokenSigningKey)
	}
	key, err := tokenkeys.ParsePrivate(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", catalog.EnvTokenSigningKey, err)
	}
	ttl, err := Config{Env: env}.Duration(catalog.EnvTokenTTL, catalog.DefaultTokenTTL)
	if err != nil {
		return nil, err
	}
	if ttl > catalog.MaxTokenTTL {
		return nil, fmt.Errorf("%s=%s: at most %s, the time a sign-out is remembered", catalog.EnvTokenTTL, ttl, catalog.MaxTokenTTL)
	}
	s, err := NewSigner(key, ttl)
	if err != nil {
		return nil, err
	}
	if !verify.Has(s.KeyID()) {
		return nil, fmt.Errorf("%s: its public key (kid %s) is not in %s (%s), so the tokens it signs would be refused",
			catalog.EnvTokenSigningKey, s.KeyID(), catalog.EnvTokenKeys, strings.Join(verify.KeyIDs(), ", "))
	}
	return s, nil
}

// Duration reads an optional duration setting, def when unset.
func (c Config) Duration(name string, def time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(c.env(name))
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration like 2s", name, v)
	}
	return d, nil
}

// NonNegativeDuration reads an optional duration setting that may be 0,
// def when unset.
func (c Config) NonNegativeDuration(name string, def time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(c.env(name))
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q: want a duration like 5s, or 0s", name, v)
	}
	return d, nil
}

// Int reads an optional positive integer setting, def when unset.
func (c Config) Int(name string, def int) (int, error) {
	v := strings.TrimSpace(c.env(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive integer", name, v)
	}
	return n, nil
}

// String reads an optional setting.
func (c Config) String(name string) string { return strings.TrimSpace(c.env(name)) }

func (c Config) env(name string) string {
	if c.Env == nil {
		return ""
	}
	return c.Env(name)
}
