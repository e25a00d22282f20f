package kit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit/traces"
)

// Deps is what a service constructor receives. Bus is nil for services with
// no buckets and no events (see NeedsNATS).
type Deps struct {
	Config  Config
	Log     *slog.Logger
	Metrics *Metrics
	Bus     *Bus
	// Tokens verifies user tokens; nil for services whose catalog row never
	// sees one. Where the row reads catalog.TokenRevocations it also
	// refuses signed-out tokens; the gateway's checks signatures only.
	Tokens Verifier
	// Signer signs user tokens; nil except for the issuing services.
	Signer *Signer
	// Revocations is the shared set of signed-out tokens; nil unless the
	// row writes or reads catalog.TokenRevocations. Issuers revoke with it.
	Revocations *Revocations
	// Identity is the service's own: what its servers present and its
	// clients prove.
	Identity *Identity
	// Tracing is the service's tracing: clients the service makes itself
	// pass Tracing.HTTPTransport or GRPCDialOptions. Nil traces nothing.
	Tracing *Tracing

	closers *closers
}

// GRPC builds the client of one of the service's upstreams' internal gRPC
// API, at <UPSTREAM>_GRPC, with the options from GRPCClientOptionsFromEnv:
// mutual TLS with the service's identity to the upstream's, deadlines,
// retries of idempotent methods, a breaker and metrics. Hand it to the
// generated New…Client; Run closes it when the service stops.
func (d Deps) GRPC(upstream string) (*GRPCClient, error) {
	target, ok := d.Config.GRPCUpstreams[upstream]
	if !ok {
		return nil, fmt.Errorf("%s is not set", catalog.EnvGRPC(upstream))
	}
	o, err := GRPCClientOptionsFromEnv(d.Config)
	if err != nil {
		return nil, err
	}
	o.DialOptions = append(o.DialOptions, d.Tracing.GRPCDialOptions()...)
	c, err := NewGRPCClient(upstream, target, d.Identity, d.Metrics, o)
	if err != nil {
		return nil, err
	}
	if d.closers != nil {
		d.closers.add(c)
	}
	return c, nil
}

// Service is a running microservice: it registers its routes and may run
// background work (consumers, sweeps) until ctx ends.
type Service interface {
	Routes(mux *http.ServeMux)
	Run(ctx context.Context) error
}

// OpsRouter is a Service with routes for operators on the ops port, beside
// /healthz, /readyz and /metrics: detail that nothing routes publicly, such
// as the gateway's per-upstream health.
type OpsRouter interface {
	OpsRoutes(mux *http.ServeMux)
}

// Constructor builds a service from its dependencies. It must refuse
// missing dependencies rather than fail later.
type Constructor func(ctx context.Context, d Deps) (Service, error)

// Definition ties a service name to its constructor and its needs; the
// binary's registry holds one per service.
type Definition struct {
	Name  string
	Needs Needs
	New   Constructor
}

// RunOptions tune Run for tests and dev mode.
type RunOptions struct {
	// Listener, if set, is served instead of listening on HTTP_ADDR,
	// OpsListener instead of listening on OPS_ADDR, and GRPCListener
	// instead of listening on GRPC_ADDR. Run closes them.
	Listener     net.Listener
	OpsListener  net.Listener
	GRPCListener net.Listener
	// Identity, if set, is the service's identity instead of the one in
	// TLS_DIR: dev mode and tests issue it in memory.
	Identity *Identity
	Log      *slog.Logger
	// ShutdownGrace bounds each step of a stop: handling the messages
	// consumers already received, then finishing in-flight calls and
	// requests; default catalog.DefaultShutdownGrace. The drain before
	// them is Config.ShutdownDrain.
	ShutdownGrace time.Duration
	// OnReady is called once the service is built and serving.
	OnReady func(addr string)
}

// Run serves def until ctx ends, then stops in order (see shutdown). The
// API listener serves the service's routes only; the ops listener serves
// /healthz, /readyz and /metrics, and the service's OpsRoutes. /healthz
// answers from the first moment; /readyz only once NATS, streams and
// buckets are reachable and the service is built. Other routes answer 503
// until then.
func Run(ctx context.Context, def Definition, cfg Config, o RunOptions) error {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("service", def.Name)
	if o.ShutdownGrace == 0 {
		o.ShutdownGrace = catalog.DefaultShutdownGrace
	}
	m := NewMetrics(def.Name)
	log = slog.New(TraceHandler(log.Handler()))
	tr, err := NewTracing(def.Name, cfg.Tracing)
	if err != nil {
		for _, l := range []net.Listener{o.Listener, o.OpsListener, o.GRPCListener} {
			if l != nil {
				l.Close()
			}
		}
		return err
	}
	defer func() {
		// Export what is pending; a collector that does not answer in
		// time loses it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(ctx); err != nil {
			log.Warn("tracing shutdown", "err", err)
		}
	}()

	ident, err := identityFor(def.Name, cfg, o)
	if err != nil {
		for _, l := range []net.Listener{o.Listener, o.OpsListener, o.GRPCListener} {
			if l != nil {
				l.Close()
			}
		}
		return err
	}
	ln, opsLn, grpcLn, err := listen(cfg, o)
	if err != nil {
		return err
	}
	ln = apiListener(ln, def.Name, ident)

	var (
		app     atomic.Pointer[http.Handler]
		opsApp  atomic.Pointer[http.Handler]
		bus     atomic.Pointer[Bus]
		revoked atomic.Pointer[Revocations]
		stopped atomic.Bool
		built   atomic.Bool
	)
	starting := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, Unavailable("%s is starting", def.Name))
	}))
	app.Store(&starting)
	opsApp.Store(&starting)

	ops := http.NewServeMux()
	ops.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	ops.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		err := ready(r.Context(), stopped.Load(), built.Load(), bus.Load(), NeedsNATS(cfg.Service), revoked.Load())
		if err != nil {
			WriteError(w, r, Unavailable("not ready: %v", err))
			return
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	ops.Handle("GET /metrics", m.Handler())
	traces.Routes(ops, tr.Buffer())
	ops.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*opsApp.Load()).ServeHTTP(w, r) }))

	newServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			// Streaming answers extend both as they flush (see
			// recorder.Flush).
			ReadTimeout:  cfg.ReadTimeout,
			WriteTimeout: cfg.WriteTimeout,
			IdleTimeout:  120 * time.Second,
			ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	srv := newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*app.Load()).ServeHTTP(w, r) }))
	opsSrv := newServer(ops)
	for _, s := range []*http.Server{srv, opsSrv} {
		endStreamsOnShutdown(s)
	}
	serveErr := make(chan error, 3)
	go func() { serveErr <- srv.Serve(ln) }()
	go func() { serveErr <- opsSrv.Serve(opsLn) }()
	var grpcSrv atomic.Pointer[GRPCServer]
	if grpcLn != nil {
		defer grpcLn.Close() // unless served, when Stop closes it
	}
	clients := &closers{}
	defer clients.close()

	// The service's context outlives ctx: shutdown cancels it only once
	// consumers and requests are done with it.
	runCtx, cancelRun := context.WithCancel(WithLogger(withTracing(context.WithoutCancel(ctx), tr), log))
	defer cancelRun()
	svcErr := make(chan error, 1)
	go func() {
		svc, d, err := build(runCtx, def, cfg, log, m, ident, clients, tr)
		if err != nil {
			svcErr <- err
			return
		}
		gs, err := newServiceGRPC(svc, cfg.Service, ident, m, log, tr)
		if err != nil {
			if d.Bus != nil {
				d.Bus.Close()
			}
			svcErr <- fmt.Errorf("%s: %w", def.Name, err)
			return
		}
		if d.Bus != nil {
			bus.Store(d.Bus)
		}
		if d.Revocations != nil {
			revoked.Store(d.Revocations)
		}
		mux, opsMux := http.NewServeMux(), http.NewServeMux()
		svc.Routes(mux)
		if or, ok := svc.(OpsRouter); ok {
			or.OpsRoutes(opsMux)
		}
		// The API is traced; the ops routes (probes, scrapes) are not.
		h, oh := tr.HTTPHandler(Middleware(log, m, mux)), Middleware(log, m, opsMux)
		app.Store(&h)
		opsApp.Store(&oh)
		if gs != nil {
			grpcSrv.Store(gs)
			go func() { serveErr <- gs.Serve(grpcLn) }()
		}
		built.Store(true)
		log.Info("serving", "addr", ln.Addr().String(), "ops", opsLn.Addr().String(), "grpc", addrOf(grpcLn), "identity", ident.ID().String())
		if o.OnReady != nil {
			o.OnReady(ln.Addr().String())
		}
		svcErr <- svc.Run(runCtx)
	}()

	svcDone := false
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	case err = <-svcErr:
		svcDone = true
		if err == nil && ctx.Err() == nil {
			err = errors.New("service stopped unexpectedly")
		}
	}
	shutdown(log, stopping{
		notReady: func() { stopped.Store(true) },
		drain:    cfg.ShutdownDrain,
		wasReady: built.Load(),
		grace:    o.ShutdownGrace,
		bus:      bus.Load,
		grpc:     grpcSrv.Load,
		// The ops port closes last, so probes see readiness fail until
		// the API has finished.
		servers: []*http.Server{srv, opsSrv},
		cancel:  cancelRun,
		svcDone: func() <-chan error {
			if svcDone {
				return nil
			}
			return svcErr
		}(),
	})
	if errors.Is(err, context.Canceled) || errors.Is(err, http.ErrServerClosed) || errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	return err
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// listen takes the listeners of o, or opens HTTP_ADDR, OPS_ADDR and, for
// a service that serves gRPC, GRPC_ADDR.
func listen(cfg Config, o RunOptions) (api, ops, grpcLn net.Listener, err error) {
	api, ops, grpcLn = o.Listener, o.OpsListener, o.GRPCListener
	open := func(ln *net.Listener, addr, env string) {
		if err == nil && *ln == nil {
			if *ln, err = net.Listen("tcp", addr); err != nil {
				err = fmt.Errorf("%s: %w", env, err)
			}
		}
	}
	open(&api, cfg.HTTPAddr, catalog.EnvHTTPAddr)
	open(&ops, cfg.OpsAddr, catalog.EnvOpsAddr)
	if cfg.Service.ServesGRPC() {
		open(&grpcLn, cfg.GRPCAddr, catalog.EnvGRPCAddr)
	} else if grpcLn != nil {
		err = fmt.Errorf("%s serves no gRPC, but was given a listener for it", cfg.Service.Name)
	}
	if err != nil {
		for _, ln := range []net.Listener{api, ops, grpcLn} {
			if ln != nil {
				ln.Close()
			}
		}
		return nil, nil, nil, err
	}
	return api, ops, grpcLn, nil
}

func build(ctx context.Context, def Definition, cfg Config, log *slog.Logger, m *Metrics, ident *Identity, c *closers, tr *Tracing) (Service, Deps, error) {
	d := Deps{Config: cfg, Log: log, Metrics: m, Signer: cfg.Signer, Identity: ident, Tracing: tr, closers: c}
	if NeedsNATS(cfg.Service) {
		b, err := ConnectBus(ctx, cfg, log, m)
		if err != nil {
			return nil, Deps{}, err
		}
		b.SetTracing(tr)
		d.Bus = b
	}
	fail := func(err error) (Service, Deps, error) {
		if d.Bus != nil {
			d.Bus.Close()
		}
		return nil, Deps{}, fmt.Errorf("%s: %w", def.Name, err)
	}
	if d.Bus != nil && cfg.Service.UsesBucket(catalog.TokenRevocations) {
		r, err := WatchRevocations(ctx, d.Bus.Bucket(catalog.TokenRevocations), log)
		if err != nil {
			return fail(err)
		}
		d.Revocations = r
	}
	if cfg.TokenKeys != nil {
		d.Tokens = NewVerifier(cfg.TokenKeys, d.Revocations)
	}
	svc, err := def.New(ctx, d)
	if err != nil {
		return fail(err)
	}
	return svc, d, nil
}

func ready(ctx context.Context, stopped, built bool, b *Bus, needsBus bool, revoked *Revocations) error {
	if stopped {
		return errors.New("shutting down")
	}
	if !built {
		return errors.New("starting")
	}
	if needsBus {
		if b == nil {
			return errors.New("connecting to NATS")
		}
		if err := b.Ready(ctx); err != nil {
			return err
		}
	}
	if revoked != nil {
		return revoked.Ready()
	}
	return nil
}
