// Package local runs a whole platform in one process: an embedded NATS
// server with JetStream and, like the real broker, one user per service
// with the permissions the operator renders for it, and every service of
// the chosen workloads on its own loopback ports, each configured through
// the same env-var loader as `switchboard serve`. `switchboard dev`, the
// end-to-end tests and the benchmarks use it.
//
// It runs the secured paths the operator wires on a cluster: a CA made in
// memory at start issues every service its certificate (SPIFFE ID
// spiffe://switchboard.local/ns/local/platform/dev/service/<name>), the
// gateway reaches the services' APIs over mutual TLS, and services call
// each other over gRPC with mutual TLS, each method admitting the callers
// the catalog lists.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/switchboard-dev/switchboard/internal/pki"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/internal/tokenkeys"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/registry"
)

// Options configure a local platform.
type Options struct {
	// Addr is the gateway's listen address; default ":8080".
	Addr string
	// DataDir is the broker's store; "" means a fresh temp dir removed on
	// Close. A given dir keeps its data across runs.
	DataDir string
	// Workloads to run; default every workload fully built in.
	Workloads []catalog.Workload
	Log       *slog.Logger
	// Env is added to every service's environment; ServiceEnv to one
	// service's, last (so it can redirect an upstream URL, say).
	Env        map[string]string
	ServiceEnv map[string]map[string]string
	// ShutdownGrace bounds each service's drain; default 5s.
	ShutdownGrace time.Duration
	// StoreBytes is the broker's JetStream store, of which every stream
	// and bucket gets its catalog share (BROKER_STORE_BYTES), as the
	// operator sizes them from spec.broker.jetstream.size; default
	// DefaultStoreBytes.
	StoreBytes int64
}

// DefaultStoreBytes is a local broker's store: the Platform's default.
const DefaultStoreBytes = 1 << 30

// Platform is a running local platform.
type Platform struct {
	Broker  *server.Server
	NATSURL string
	// BrokerUser and BrokerPassword are the broker's administrative user,
	// allowed everything, for tests and tools; every service logs in as a
	// user of its own, allowed what its catalog row says (Env shows its
	// credentials).
	BrokerUser, BrokerPassword string
	// BrokerMonitorURL is the broker's HTTP monitor (/jsz, /varz), which
	// the gateway's console reads.
	BrokerMonitorURL string
	GatewayURL       string
	// URLs maps each service to its API's base URL (https but for the
	// gateway's), OpsURLs to its ops port's (/healthz, /readyz, /metrics;
	// the gateway's /health/detail), GRPCAddrs each service that serves
	// gRPC to its internal API's address.
	URLs, OpsURLs, GRPCAddrs map[string]string
	// CA issued every service's identity; Base names the platform
	// (Namespace, Platform, TrustDomain) and Identity issues more.
	CA   pki.CA
	Base kit.SPIFFEID
	// TokenKeys verifies the tokens the platform issues; Signer signs them
	// as user and account do, for tests and benchmarks that need a token
	// no login gave them.
	TokenKeys *kit.KeySet
	Signer    *kit.Signer
	// Admin is the first admin, whom user and account ensure at start.
	Admin Admin

	opts     Options
	tmp      string
	defs     map[string]kit.Definition
	order    []string
	addrs    map[string]string
	opsAddr  map[string]string
	grpcAddr map[string]string
	idents   map[string]*kit.Identity
	envs     map[string]map[string]string
	mu       sync.Mutex
	running  map[string]*proc
}

// Admin is the first admin's credentials.
type Admin struct {
	Email, Password string
}

// AdminEmail is the first admin's email on a local platform.
const AdminEmail = "admin@switchboard.local"

// The identity of a local platform: trust domain switchboard.local,
// namespace "local", platform "dev".
const (
	Namespace    = "local"
	PlatformName = "dev"
	// certLifetime is long enough for any dev session: a local platform
	// issues its certificates at start and never renews them.
	certLifetime = 90 * 24 * time.Hour
)

// Identity issues service a certificate from the platform's CA, in memory:
// the platform's services all have one, and a test may take any service's
// identity to call as it.
func (p *Platform) Identity(service string) (*kit.Identity, error) {
	id := p.Base.Sibling(service)
	if err := id.Validate(); err != nil {
		return nil, err
	}
	l, err := pki.Issue(p.CA, id, nil, certLifetime, time.Now(), nil)
	if err != nil {
		return nil, err
	}
	return kit.NewIdentity(l.CertPEM, l.KeyPEM, p.CA.CertPEM)
}

// HTTPClient calls upstream's API as service would: mutual TLS with
// service's certificate, expecting upstream's. Services admit the
// gateway's alone.
func (p *Platform) HTTPClient(service, upstream string) (*http.Client, error) {
	ident, err := p.Identity(service)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = kit.ClientTLSConfig(ident, kit.AuthorizeID(p.Base.Sibling(upstream)))
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

type proc struct {
	cancel context.CancelFunc
	done   chan error
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Start brings the platform up and returns once every service answers
// /readyz, or fails and tears down what it started.
func Start(ctx context.Context, o Options) (p *Platform, err error) {
	if o.Addr == "" {
		o.Addr = fmt.Sprintf(":%d", catalog.HTTPPort)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.ShutdownGrace == 0 {
		o.ShutdownGrace = 5 * time.Second
	}
	if o.StoreBytes == 0 {
		o.StoreBytes = DefaultStoreBytes
	}
	if len(o.Workloads) == 0 {
		o.Workloads = registry.Available()
	}
	defs, err := registry.Resolve(o.Workloads)
	if err != nil {
		return nil, err
	}
	p = &Platform{opts: o, defs: map[string]kit.Definition{}, addrs: map[string]string{}, opsAddr: map[string]string{},
		grpcAddr: map[string]string{}, idents: map[string]*kit.Identity{}, envs: map[string]map[string]string{},
		running: map[string]*proc{}, URLs: map[string]string{}, OpsURLs: map[string]string{}, GRPCAddrs: map[string]string{},
		Base: kit.SPIFFEID{TrustDomain: pki.DefaultTrustDomain, Namespace: Namespace, Platform: PlatformName}}
	// Every error return sets p to nil before this runs: close the platform
	// being built, not the named result.
	building := p
	defer func() {
		if err != nil {
			building.Close()
		}
	}()

	dir := o.DataDir
	if dir == "" {
		if p.tmp, err = os.MkdirTemp("", "switchboard-dev-"); err != nil {
			return nil, err
		}
		dir = p.tmp
	}
	keys, err := loadSecrets(o.DataDir)
	if err != nil {
		return nil, err
	}
	p.Admin = Admin{Email: AdminEmail, Password: keys.AdminPassword}
	if p.TokenKeys, err = kit.NewKeySet(tokenkeys.Public(keys.SigningKey)); err != nil {
		return nil, err
	}
	if p.Signer, err = kit.NewSigner(keys.SigningKey, catalog.DefaultTokenTTL); err != nil {
		return nil, err
	}
	signing, err := tokenkeys.EncodePrivate(keys.SigningKey)
	if err != nil {
		return nil, err
	}
	verify, err := tokenkeys.EncodePublic(tokenkeys.Public(keys.SigningKey))
	if err != nil {
		return nil, err
	}

	users, creds, brokerServices, err := brokerUsers(defs)
	if err != nil {
		return nil, err
	}
	p.BrokerUser, p.BrokerPassword = "dev-admin", random(16)
	users = append(users, &server.User{Username: p.BrokerUser, Password: p.BrokerPassword})
	p.Broker, err = server.NewServer(&server.Options{
		ServerName: "switchboard-dev", Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir,
		JetStreamMaxStore: o.StoreBytes, JetStreamMaxMemory: 64 << 20,
		Users: users, NoSigs: true, NoLog: true,
		// The monitor, on loopback, as the console reads the broker's on a
		// cluster: no credentials needed.
		HTTPHost: "127.0.0.1", HTTPPort: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	go p.Broker.Start()
	if !p.Broker.ReadyForConnections(15 * time.Second) {
		return nil, errors.New("nats: embedded server did not start")
	}
	p.NATSURL = p.Broker.ClientURL()
	if a := p.Broker.MonitorAddr(); a != nil {
		p.BrokerMonitorURL = "http://" + a.String()
	}

	// The platform's CA, as the operator makes one per Platform, and every
	// service's certificate from it.
	if p.CA, err = pki.NewCA(Namespace+"/"+PlatformName+" dev CA", certLifetime, time.Now(), nil); err != nil {
		return nil, err
	}
	for _, d := range defs {
		if p.idents[d.Name], err = p.Identity(d.Name); err != nil {
			return nil, fmt.Errorf("%s: identity: %w", d.Name, err)
		}
	}

	// Bind every listener first, so each service's env can name the others.
	lns, opsLns, grpcLns := map[string]net.Listener{}, map[string]net.Listener{}, map[string]net.Listener{}
	defer func() {
		for _, m := range []map[string]net.Listener{lns, opsLns, grpcLns} {
			for _, ln := range m {
				ln.Close()
			}
		}
	}()
	for _, d := range defs {
		addr := "127.0.0.1:0"
		if d.Name == catalog.Gateway {
			addr = o.Addr
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s: listen %s: %w", d.Name, addr, err)
		}
		lns[d.Name] = ln
		// Ops ports are on loopback only, as they are never routed publicly.
		ops, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("%s: listen for ops: %w", d.Name, err)
		}
		opsLns[d.Name] = ops
		if row, _ := catalog.Lookup(d.Name); row.ServesGRPC() {
			g, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, fmt.Errorf("%s: listen for gRPC: %w", d.Name, err)
			}
			grpcLns[d.Name] = g
			p.grpcAddr[d.Name], p.GRPCAddrs[d.Name] = g.Addr().String(), g.Addr().String()
		}
		p.defs[d.Name] = d
		p.order = append(p.order, d.Name)
		p.addrs[d.Name], p.opsAddr[d.Name] = ln.Addr().String(), ops.Addr().String()
		scheme := "https://"
		if d.Name == catalog.Gateway {
			scheme = "http://"
		}
		p.URLs[d.Name], p.OpsURLs[d.Name] = scheme+dialable(ln.Addr()), "http://"+ops.Addr().String()
	}
	p.GatewayURL = p.URLs[catalog.Gateway]

	for _, name := range p.order {
		svc, _ := catalog.Lookup(name)
		env := map[string]string{
			catalog.EnvHTTPAddr: p.addrs[name], catalog.EnvOpsAddr: p.opsAddr[name],
			// No load balancer to leave: stop without a drain unless
			// Env asks for one.
			catalog.EnvShutdownDrain: "0s",
		}
		if c, ok := creds[name]; ok {
			env[catalog.EnvNATSURL], env[catalog.EnvNATSUser], env[catalog.EnvNATSPassword] = p.NATSURL, c[0], c[1]
			env[catalog.EnvBrokerStoreBytes] = strconv.FormatInt(o.StoreBytes, 10)
			// Each service creates and updates what it owns among them, as
			// its broker user allows, and waits for the rest.
			env[catalog.EnvBrokerServices] = strings.Join(brokerServices, ",")
		}
		if a, ok := p.grpcAddr[name]; ok {
			env[catalog.EnvGRPCAddr] = a
		}
		if name == catalog.Gateway && p.BrokerMonitorURL != "" {
			env[catalog.EnvBrokerMonitorURL] = p.BrokerMonitorURL
		}
		// As the operator wires them: public keys to every verifier, the
		// signing key and the first admin to the issuers alone.
		if svc.VerifiesTokens() {
			env[catalog.EnvTokenKeys] = verify
		}
		if svc.IssuesTokens() {
			env[catalog.EnvTokenSigningKey] = signing
			env[catalog.EnvAdminEmail], env[catalog.EnvAdminPassword] = p.Admin.Email, p.Admin.Password
		}
		// The gateway forwards the public API over REST; the others call
		// their upstreams' gRPC.
		for _, up := range svc.Upstreams {
			switch {
			case name == catalog.Gateway && p.URLs[up] != "":
				env[catalog.EnvURL(up)], env[catalog.EnvOpsURL(up)] = p.URLs[up], p.OpsURLs[up]
			case name != catalog.Gateway && p.grpcAddr[up] != "":
				env[catalog.EnvGRPC(up)] = p.grpcAddr[up]
			}
		}
		for k, v := range o.Env {
			env[k] = v
		}
		for k, v := range o.ServiceEnv[name] {
			env[k] = v
		}
		p.envs[name] = env
	}
	for _, name := range p.order {
		ln, ops, g := lns[name], opsLns[name], grpcLns[name]
		delete(lns, name)
		delete(opsLns, name)
		delete(grpcLns, name)
		if err := p.start(name, ln, ops, g); err != nil {
			return nil, err
		}
	}
	if err := p.WaitReady(ctx, 60*time.Second); err != nil {
		return nil, err
	}
	return p, nil
}

// brokerUsers are the broker's users as the operator renders them: one per
// service that uses the broker, allowed exactly what its catalog row says
// (render.PermissionsFor), creating and updating only the streams and
// buckets it owns among the platform's broker services (running); the
// gateway gets none. creds holds each one's user name and password.
func brokerUsers(defs []kit.Definition) (users []*server.User, creds map[string][2]string, running []string, err error) {
	var rows []catalog.Service
	for _, d := range defs {
		if row, ok := catalog.Lookup(d.Name); ok {
			rows = append(rows, row)
		}
	}
	running = catalog.BrokerServices(rows)
	creds = map[string][2]string{}
	for _, row := range rows {
		if !row.UsesBroker() {
			continue
		}
		perms, err := render.PermissionsFor(row, running)
		if err != nil {
			return nil, nil, nil, err
		}
		pass := random(16)
		users = append(users, &server.User{Username: row.Name, Password: pass, Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: perms.Publish},
			Subscribe: &server.SubjectPermission{Allow: perms.Subscribe},
		}})
		creds[row.Name] = [2]string{row.Name, pass}
	}
	return users, creds, running, nil
}

// dialable turns a wildcard listen address into one a client can dial.
func dialable(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// Services lists the running platform's services in start order.
func (p *Platform) Services() []string { return append([]string(nil), p.order...) }

// Env returns the environment a service was started with.
func (p *Platform) Env(name string) map[string]string { return p.envs[name] }

// start runs a service on ln, ops and g (its gRPC listener, nil for a
// service that serves none), or, on a restart (nil listeners), on the
// addresses it had, so the others still reach it.
func (p *Platform) start(name string, ln, ops, g net.Listener) error {
	cfg, err := kit.LoadConfig(name, p.defs[name].Needs, kit.MapEnv(p.envs[name]))
	if err == nil && ln == nil {
		ln, err = relisten(p.addrs[name])
	}
	if err == nil && ops == nil {
		ops, err = relisten(p.opsAddr[name])
	}
	if a, ok := p.grpcAddr[name]; err == nil && ok && g == nil {
		g, err = relisten(a)
	}
	if err != nil {
		for _, l := range []net.Listener{ln, ops, g} {
			if l != nil {
				l.Close()
			}
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr := &proc{cancel: cancel, done: make(chan error, 1)}
	o := kit.RunOptions{Listener: ln, OpsListener: ops, GRPCListener: g, Identity: p.idents[name], Log: p.opts.Log, ShutdownGrace: p.opts.ShutdownGrace}
	if cfg.Identity != nil {
		o.Identity = nil // TLS_DIR given in Env: use it, as on a cluster
	}
	go func() {
		pr.done <- kit.Run(ctx, p.defs[name], cfg, o)
	}()
	p.mu.Lock()
	p.running[name] = pr
	p.mu.Unlock()
	return nil
}

// relisten takes an address back after a stop, retrying while the old
// listener lets go of it.
func relisten(addr string) (net.Listener, error) {
	for i := 0; ; i++ {
		ln, err := net.Listen("tcp", addr)
		if err == nil || i == 50 {
			return ln, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops one service, as a crash or a scale-down would.
func (p *Platform) Stop(name string) error {
	p.mu.Lock()
	pr, ok := p.running[name]
	delete(p.running, name)
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s is not running", name)
	}
	pr.cancel()
	return <-pr.done
}

// Restart starts a stopped service again on its address and waits until it
// is ready.
func (p *Platform) Restart(ctx context.Context, name string) error {
	if err := p.start(name, nil, nil, nil); err != nil {
		return err
	}
	return waitReady(ctx, p.OpsURLs[name], 30*time.Second)
}

// WaitReady polls every service's /readyz until all answer 200.
func (p *Platform) WaitReady(ctx context.Context, within time.Duration) error {
	for _, name := range p.order {
		p.mu.Lock()
		pr := p.running[name]
		p.mu.Unlock()
		if err := waitReady(ctx, p.OpsURLs[name], within); err != nil {
			select {
			case rerr := <-pr.done:
				return fmt.Errorf("%s stopped: %v", name, rerr)
			default:
			}
			return fmt.Errorf("%s not ready: %w", name, err)
		}
	}
	return nil
}

func waitReady(ctx context.Context, base string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// Wait returns when ctx ends (nil) or a service stops on its own (its error).
func (p *Platform) Wait(ctx context.Context) error {
	p.mu.Lock()
	cases := make(chan error, len(p.running))
	for name, pr := range p.running {
		go func() {
			select {
			case err := <-pr.done:
				pr.done <- err
				cases <- fmt.Errorf("%s stopped: %v", name, err)
			case <-ctx.Done():
			}
		}()
	}
	p.mu.Unlock()
	select {
	case err := <-cases:
		return err
	case <-ctx.Done():
		return nil
	}
}

// Close stops every service, gateway first so no new work comes in, then
// the broker, and removes a temp store.
func (p *Platform) Close() error {
	var errs []error
	names := append([]string(nil), p.order...)
	for _, name := range names {
		p.mu.Lock()
		_, ok := p.running[name]
		p.mu.Unlock()
		if ok {
			if err := p.Stop(name); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	}
	if p.Broker != nil {
		p.Broker.Shutdown()
		p.Broker.WaitForShutdown()
	}
	if p.tmp != "" {
		_ = os.RemoveAll(p.tmp)
	}
	return errors.Join(errs...)
}
