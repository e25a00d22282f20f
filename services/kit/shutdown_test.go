package kit_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// testService is a service built by the test: its routes and its Run.
type testService struct {
	routes func(mux *http.ServeMux)
	run    func(ctx context.Context) error
}

func (s testService) Routes(mux *http.ServeMux) {
	if s.routes != nil {
		s.routes(mux)
	}
}

func (s testService) Run(ctx context.Context) error {
	if s.run != nil {
		return s.run(ctx)
	}
	<-ctx.Done()
	return nil
}

// started is a service run by start: its API and ops URLs, the cancel
// that plays SIGTERM, and Run's return.
type started struct {
	URL, OpsURL string
	cancel      context.CancelFunc
	done        chan error
}

// start runs a service named name (its catalog row applies) built by
// newSvc, and waits until it is ready.
func start(t *testing.T, name string, env map[string]string, newSvc func(d kit.Deps) kit.Service) *started {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ops, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env = with(with(env, catalog.EnvHTTPAddr, ln.Addr().String()), catalog.EnvOpsAddr, ops.Addr().String())
	if _, ok := env[catalog.EnvShutdownDrain]; !ok {
		env[catalog.EnvShutdownDrain] = "0s"
	}
	def := kit.Definition{Name: name, New: func(_ context.Context, d kit.Deps) (kit.Service, error) { return newSvc(d), nil }}
	cfg, err := kit.LoadConfig(name, def.Needs, kit.MapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{URL: "https://" + ln.Addr().String(), OpsURL: "http://" + ops.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	ident := kittest.Platform(t).Identity(t, name)
	freshOnce.Do(func() {
		gw := kittest.Platform(t).Identity(t, catalog.Gateway)
		fresh = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			TLSClientConfig: kit.ClientTLSConfig(gw, kit.AuthorizeMemberOf(gw.ID()))}}
	})
	go func() {
		s.done <- kit.Run(ctx, def, cfg, kit.RunOptions{Listener: ln, OpsListener: ops, Identity: ident, Log: quiet, ShutdownGrace: 5 * time.Second})
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	if err := kittest.WaitReady(context.Background(), s.OpsURL, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	return s
}

// fresh is a client that opens a new connection for every request, as
// the gateway (whose certificate the API ports admit); start makes it.
var (
	fresh     *http.Client
	freshOnce sync.Once
)

// probeUntilNotReady polls /readyz on new connections until it answers
// anything but 200, and returns that status, or the error of the first
// probe that could not connect (0).
func probeUntilNotReady(t *testing.T, url string) (int, error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := fresh.Get(url + "/readyz")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("readiness never failed after the stop")
	return 0, nil
}

// On SIGTERM, readiness fails first while the service keeps serving, on
// new connections too, for the drain; a request in flight then completes.
func TestShutdownDrainsBeforeClosing(t *testing.T) {
	env := with(kittest.StartNATS(t, "").Env(), catalog.EnvShutdownDrain, "3s")
	entered, release := make(chan struct{}), make(chan struct{})
	s := start(t, "notification", env, func(kit.Deps) kit.Service {
		return testService{routes: func(mux *http.ServeMux) {
			mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
				close(entered)
				<-release
				kit.WriteJSON(w, http.StatusOK, map[string]string{"status": "done"})
			})
			mux.HandleFunc("GET /fast", func(w http.ResponseWriter, r *http.Request) {
				kit.WriteJSON(w, http.StatusOK, map[string]string{"status": "done"})
			})
		}}
	})

	type answer struct {
		status int
		err    error
	}
	inflight := make(chan answer, 1)
	go func() {
		resp, err := fresh.Get(s.URL + "/slow")
		if err != nil {
			inflight <- answer{err: err}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		inflight <- answer{status: resp.StatusCode}
	}()
	<-entered
	s.cancel() // SIGTERM

	status, err := probeUntilNotReady(t, s.OpsURL)
	if err != nil {
		t.Fatalf("a readiness probe on a new connection during the drain could not connect: %v", err)
	}
	if status != http.StatusServiceUnavailable {
		t.Fatalf("readiness during the drain answered %d, want 503", status)
	}
	// The API takes new connections too: callers that chose this instance
	// before it left the load balancer are served.
	resp, err := fresh.Get(s.URL + "/fast")
	if err != nil {
		t.Fatalf("a new API connection during the drain: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a request on a new connection during the drain answered %d", resp.StatusCode)
	}
	close(release)
	if a := <-inflight; a.err != nil || a.status != http.StatusOK {
		t.Fatalf("the request in flight at SIGTERM: %d %v", a.status, a.err)
	}
	if err := <-s.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	s.done <- nil // for the cleanup
}

// Messages a consumer holds when the service stops are handled with a live
// context, before anything is cancelled: every one is acked on its first
// delivery, and none comes back.
func TestShutdownSpendsNoDeliveries(t *testing.T) {
	b := kittest.StartNATS(t, "")
	env := b.Env()
	pub := b.Bus(t, "order")
	ctx := context.Background()
	const n = 20
	for i := range n {
		ev := confirmed
		ev.ID = fmt.Sprint(i)
		if err := pub.Publish(ctx, fmt.Sprintf("e%d", i), "orders/"+ev.ID, ev); err != nil {
			t.Fatal(err)
		}
	}
	first, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var bus *kit.Bus
	s := start(t, "notification", env, func(d kit.Deps) kit.Service {
		bus = d.Bus
		return testService{run: func(ctx context.Context) error {
			err := d.Bus.Consume(ctx, kit.ConsumerSpec{Durable: "notification-order-confirmed", Handler: func(ctx context.Context, ev kit.Event) error {
				if ev.ID == "e0" {
					once.Do(func() { close(first) })
					select {
					case <-release:
					case <-ctx.Done():
					}
				}
				// A real handler's store call fails once the context is
				// cancelled.
				return ctx.Err()
			}})
			if err != nil {
				return err
			}
			<-ctx.Done()
			return nil
		}}
	})
	<-first // e0 is in its handler and the rest are buffered
	s.cancel()
	if _, err := probeUntilNotReady(t, s.OpsURL); err != nil {
		t.Logf("readiness probe: %v", err)
	}
	close(release)
	if err := <-s.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	s.done <- nil
	// The acks are written before Run returns, and the process may exit:
	// its connection has drained and closed.
	if !bus.NC.IsClosed() {
		t.Fatal("Run returned with the bus connection still open: acks in its buffer would be lost with the process")
	}

	cons, err := pub.JS.Consumer(ctx, "ORDERS", "notification-order-confirmed")
	if err != nil {
		t.Fatal(err)
	}
	// The broker applies acks on a queue of its own: wait, well within the
	// ack wait (30 s), for the last of them. A delivery whose ack was never
	// sent stays pending and fails below.
	var info *jetstream.ConsumerInfo
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if info, err = cons.Info(ctx); err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 || time.Now().After(deadline) {
			break
		}
	}
	if info.NumRedelivered != 0 || info.NumAckPending != 0 || info.AckFloor.Consumer != n || info.Delivered.Consumer != n {
		t.Fatalf("after the stop: %d delivered, %d acked, %d awaiting an ack, %d redelivered; want each of the %d delivered once and acked",
			info.Delivered.Consumer, info.AckFloor.Consumer, info.NumAckPending, info.NumRedelivered, n)
	}
}

// Streaming answers outlive the server's write timeout as long as they
// keep flushing; an ordinary answer that takes longer is cut.
func TestServerTimeoutsSpareStreams(t *testing.T) {
	env := with(with(kittest.StartNATS(t, "").Env(), catalog.EnvHTTPWriteTimeout, "1s"), catalog.EnvHTTPReadTimeout, "1s")
	const events = 25
	s := start(t, "notification", env, func(kit.Deps) kit.Service {
		return testService{routes: func(mux *http.ServeMux) {
			mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
				rc := http.NewResponseController(w)
				w.Header().Set("Content-Type", "text/event-stream")
				for i := range events {
					if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
						return
					}
					if rc.Flush() != nil {
						return
					}
					select {
					case <-r.Context().Done():
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
			})
			mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(2500 * time.Millisecond)
				kit.WriteJSON(w, http.StatusOK, map[string]string{"status": "late"})
			})
		}}
	})
	resp, err := fresh.Get(s.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			got++
		}
	}
	resp.Body.Close()
	if got != events {
		t.Fatalf("the stream delivered %d of %d events over %s with a 1s write timeout (%v)", got, events, events*100*time.Millisecond, sc.Err())
	}

	resp, err = fresh.Get(s.URL + "/slow")
	if err == nil {
		body, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil {
			t.Fatalf("an answer written after the write timeout arrived: %d %s", resp.StatusCode, body)
		}
	}
}

// Compare-and-set contention is a 503 the client may retry, never a 500.
func TestContentionIsRetryable(t *testing.T) {
	w := httptest.NewRecorder()
	kit.WriteError(w, httptest.NewRequest("POST", "/orders", nil), fmt.Errorf("update stock/p1: %w", kit.ErrContention))
	var body kit.ErrorBody
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	if w.Code != http.StatusServiceUnavailable || body.Error.Code != kit.CodeContention || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("contention answered %d %s with Retry-After %q, want 503 %s with Retry-After 1",
			w.Code, w.Body, w.Header().Get("Retry-After"), kit.CodeContention)
	}
}

// A consumer a service reads its own way is stopped with the others, and
// StopConsuming waits until it has handled what it held.
func TestStopConsumingWaitsForTrackedConsumers(t *testing.T) {
	bus := kittest.Bus(t, "analytics")
	stopped := make(chan struct{})
	done := bus.Track(func() { close(stopped) })
	finished := make(chan struct{})
	go func() {
		bus.StopConsuming(context.Background())
		close(finished)
	}()
	<-stopped
	select {
	case <-finished:
		t.Fatal("StopConsuming returned before the tracked consumer said it was done")
	case <-time.After(100 * time.Millisecond):
	}
	done()
	<-finished
	late := make(chan struct{})
	bus.Track(func() { close(late) })
	<-late // tracked after the stop: stopped at once
}

// A stream (server-sent events) ends when the service stops, instead of
// holding the stop for the whole grace period; requests that do not stream
// are still left to finish.
func TestStreamsEndOnShutdown(t *testing.T) {
	opened := make(chan struct{})
	s := start(t, "notification", kittest.StartNATS(t, "").Env(), func(kit.Deps) kit.Service {
		return testService{routes: func(mux *http.ServeMux) {
			mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprint(w, "data: hello\n\n")
				_ = http.NewResponseController(w).Flush()
				close(opened)
				<-r.Context().Done()
			})
		}}
	})
	resp, err := fresh.Get(s.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-opened
	s.cancel()
	// The server ends the stream properly; had it waited for the grace
	// period to run out, it would have cut the connection instead.
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("the stream did not end cleanly: %v", err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		s.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("Run was still stopping 30s after SIGTERM")
	}
}
