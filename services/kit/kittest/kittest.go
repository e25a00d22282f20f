// Package kittest starts what service tests need: an embedded NATS server
// with JetStream that requires credentials, like the platform's broker, and
// a running service on a loopback port.
package kittest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Broker is a running embedded NATS server.
type Broker struct {
	Server         *server.Server
	URL            string
	User, Password string
}

// StartNATS starts a JetStream server on a random port, storing in dir (a
// temp dir when ""), and stops it at the end of the test.
func StartNATS(t testing.TB, dir string) *Broker {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	b, err := NewBroker(dir, "test", "test-password")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Server.Shutdown)
	return b
}

// NewBroker starts an embedded broker on 127.0.0.1 with a random port.
func NewBroker(dir, user, password string) (*Broker, error) {
	opts := &server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir,
		Username: user, Password: password, NoSigs: true, NoLog: true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, io.ErrUnexpectedEOF
	}
	return &Broker{Server: s, URL: s.ClientURL(), User: user, Password: password}, nil
}

// Env returns the env a service reads to reach this broker, plus the test
// token keys (TOKEN_KEYS, and TOKEN_SIGNING_KEY, which only the issuing
// services read).
func (b *Broker) Env() map[string]string {
	return map[string]string{
		catalog.EnvNATSURL: b.URL, catalog.EnvNATSUser: b.User, catalog.EnvNATSPassword: b.Password,
		catalog.EnvTokenKeys: TokenKeysPEM(), catalog.EnvTokenSigningKey: SigningKeyPEM(),
	}
}

// Running is a service started by Serve.
type Running struct {
	// URL is the API's base URL: https, except the gateway's. OpsURL
	// serves /healthz, /readyz and /metrics, plain.
	URL, OpsURL string
	// HTTP calls the API as the gateway does: with the gateway's
	// certificate, expecting the service's (plain for the gateway itself).
	HTTP *http.Client
	// GRPCAddr is the internal gRPC API's address, "" for a service that
	// serves none: the value of <SERVICE>_GRPC for its callers.
	GRPCAddr string
	stop     context.CancelFunc
	done     chan struct{} // closed when the service has returned
	err      error         // what it returned; read after done
}

// Stop ends the service and waits for it. It may be called any number of
// times, and the test's cleanup calls it too.
func (r *Running) Stop() error {
	r.stop()
	<-r.done
	return r.err
}

// Serve runs def on loopback ports with env (HTTP_ADDR, OPS_ADDR and, for
// a service that serves gRPC, GRPC_ADDR are filled in, and SHUTDOWN_DRAIN
// is 0s unless env sets it) and waits until /readyz answers 200. Unless env
// sets TLS_DIR, the service's identity is issued in memory by Platform, as
// on a Platform: its API port then admits the gateway's certificate only
// (Running.HTTP has one) and its gRPC port the callers the catalog lists.
// The service stops at the end of the test.
func Serve(t testing.TB, def kit.Definition, env map[string]string) *Running {
	t.Helper()
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	ln, ops := listen(), listen()
	// No drain by default: a test's service has no load balancer to leave.
	e := map[string]string{catalog.EnvHTTPAddr: ln.Addr().String(), catalog.EnvOpsAddr: ops.Addr().String(), catalog.EnvShutdownDrain: "0s"}
	var grpcLn net.Listener
	if row, ok := catalog.Lookup(def.Name); ok && row.ServesGRPC() {
		grpcLn = listen()
		e[catalog.EnvGRPCAddr] = grpcLn.Addr().String()
	}
	for k, v := range env {
		e[k] = v
	}
	cfg, err := kit.LoadConfig(def.Name, def.Needs, kit.MapEnv(e))
	if err != nil {
		t.Fatal(err)
	}
	o := kit.RunOptions{Listener: ln, OpsListener: ops, GRPCListener: grpcLn, ShutdownGrace: 2 * time.Second}
	if cfg.Identity == nil {
		o.Identity = Platform(t).Identity(t, def.Name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{URL: "https://" + ln.Addr().String(), OpsURL: "http://" + ops.Addr().String(), stop: cancel, done: make(chan struct{})}
	if def.Name == catalog.Gateway {
		r.URL, r.HTTP = "http://"+ln.Addr().String(), &http.Client{Timeout: 20 * time.Second}
	} else {
		r.HTTP = Platform(t).HTTPClient(t, catalog.Gateway, def.Name)
	}
	if grpcLn != nil {
		r.GRPCAddr = grpcLn.Addr().String()
	}
	o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		o.Log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	go func() {
		r.err = kit.Run(ctx, def, cfg, o)
		close(r.done)
	}()
	t.Cleanup(func() { _ = r.Stop() })
	if err := WaitReady(ctx, r.OpsURL, 20*time.Second); err != nil {
		t.Fatalf("%s: %v (run: %v)", def.Name, err, r.Stop())
	}
	return r
}

// WaitReady polls /readyz on an ops base URL until it answers 200 or the
// deadline passes.
func WaitReady(ctx context.Context, url string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Eventually polls cond every 20ms until it holds or within passes.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// Bus connects to a fresh embedded broker as service name would, with its
// streams and buckets created.
func Bus(t testing.TB, name string) *kit.Bus {
	t.Helper()
	return StartNATS(t, "").Bus(t, name)
}

// Bus connects to b as service name would, with its streams and buckets
// created, and closes the connection at the end of the test.
func (b *Broker) Bus(t testing.TB, name string) *kit.Bus {
	t.Helper()
	env := b.Env()
	if svc, ok := catalog.Lookup(name); ok {
		for _, up := range svc.Upstreams {
			env[catalog.EnvURL(up)] = "https://" + up + ".invalid"
			env[catalog.EnvGRPC(up)] = up + ".invalid:9090"
		}
	}
	cfg, err := kit.LoadConfig(name, kit.Needs{}, kit.MapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	bus, err := kit.ConnectBus(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), kit.NewMetrics(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	return bus
}

// Published records events instead of sending them.
type Published struct {
	mu     sync.Mutex
	Events []kit.Event
	Err    error
}

// Publish records one event, or fails with p.Err.
func (p *Published) Publish(_ context.Context, id, subject string, data kit.Payload) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Err != nil {
		return p.Err
	}
	raw, _ := json.Marshal(data)
	p.Events = append(p.Events, kit.Event{ID: id, Type: data.EventType(), Subject: subject, Data: raw, Time: time.Now()})
	return nil
}

// Types lists the types of the recorded events.
func (p *Published) Types() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, len(p.Events))
	for i, e := range p.Events {
		out[i] = e.Type
	}
	return out
}
