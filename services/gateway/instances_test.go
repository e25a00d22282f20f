package gateway

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/traces"
)

// Ops hosts as the operator names them: headless Services, which resolve
// to each of their pods.
const (
	opsHost        = "shop-order-ops.demo.svc.cluster.local"
	gatewayOpsHost = "shop-gateway-ops.demo.svc.cluster.local"
)

// instance is one pod of a service behind its ops host: its own loopback
// address, the port every instance shares, as pods do, and a real ops
// port (its readiness, its registry, its trace buffer).
type instance struct {
	addr    string
	ready   atomic.Bool
	metrics *kit.Metrics
	tracer  trace.Tracer
}

// twoInstances starts two instances of service on 127.0.0.1 and
// 127.0.0.2 at one port. Linux routes all of 127.0.0.0/8 to loopback.
func twoInstances(t *testing.T, service string) (port string, a, b *instance) {
	t.Helper()
	var lns []net.Listener
	for range 20 {
		first, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ = net.SplitHostPort(first.Addr().String())
		second, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", port))
		if err != nil {
			// Taken on the second address: another port.
			first.Close()
			continue
		}
		lns = []net.Listener{first, second}
		break
	}
	if lns == nil {
		t.Skip("no port free on both 127.0.0.1 and 127.0.0.2")
	}
	var out []*instance
	for _, ln := range lns {
		in := &instance{addr: ln.Addr().(*net.TCPAddr).IP.String(), metrics: kit.NewMetrics(service)}
		in.ready.Store(true)
		buf := traces.NewBuffer(0, 0)
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(buf), sdktrace.WithSampler(sdktrace.AlwaysSample()),
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		in.tracer = tp.Tracer(service)
		mux := http.NewServeMux()
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
			if !in.ready.Load() {
				kit.WriteError(w, r, kit.Unavailable("not ready: nats: connection closed"))
				return
			}
			kit.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		})
		mux.Handle("GET /metrics", in.metrics.Handler())
		traces.Routes(mux, buf)
		srv := &http.Server{Handler: mux}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		out = append(out, in)
	}
	return port, out[0], out[1]
}

// Order runs three pods behind its headless ops Service, which lists
// them ready or not: a ready one, one not ready and one starting, whose
// ops port does not answer yet. The console counts all three, adds up the
// rates of those that answer, and merges the halves of a trace the first
// two hold; /health finds order ready while any pod is.
func TestConsoleReadsEveryInstanceBehindTheOpsHost(t *testing.T) {
	r := newConsoleRig(t, ConsoleOptions{})
	port, a, b := twoInstances(t, "order")
	const starting = "127.0.0.3" // nothing listens there
	r.g.upstreams["order"].ops = &url.URL{Scheme: "http", Host: net.JoinHostPort(opsHost, port)}
	r.g.resolve = func(_ context.Context, host string) ([]string, error) {
		if host == opsHost {
			return []string{a.addr, b.addr, starting}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	clock := r.g.console.now()
	r.g.console.now = func() time.Time { return clock }

	// One order's trace: the request on a, the saga's step on b (say,
	// resumed there after a restarted a's lease ran out).
	ctx, root := a.tracer.Start(context.Background(), "POST /orders", trace.WithSpanKind(trace.SpanKindServer))
	_, step := b.tracer.Start(ctx, "saga reserve", trace.WithAttributes(attribute.String("order.id", recordedOrder)))
	step.End()
	root.End()
	id := root.SpanContext().TraceID().String()

	b.ready.Store(false)
	first := decode[Snapshot](t, r.do("GET", "/console/api/snapshot", staff))
	if o := statusOf(first, "order"); o.Instances != 3 || o.Ready != 1 {
		t.Errorf("order's instances: %d, ready %d; want 3, 1", o.Instances, o.Ready)
	}

	// Two seconds of traffic, split between the instances that answer: 9
	// orders placed and a 503.
	for range 4 {
		a.metrics.HTTPRequests.WithLabelValues("POST /orders", "POST", "201").Inc()
	}
	for range 5 {
		b.metrics.HTTPRequests.WithLabelValues("POST /orders", "POST", "201").Inc()
	}
	b.metrics.HTTPRequests.WithLabelValues("POST /orders", "POST", "503").Inc()
	a.metrics.EventsOut.WithLabelValues("order.confirmed", "ok").Add(2)
	b.metrics.EventsOut.WithLabelValues("order.confirmed", "ok").Add(4)
	clock = clock.Add(2 * time.Second)
	second := decode[Snapshot](t, r.do("GET", "/console/api/snapshot", staff))
	if o := statusOf(second, "order"); !near(o.RequestsPerSec, 5) || !near(o.ErrorsPerSec, 0.5) {
		t.Errorf("order's rates over both instances: %s", mustJSON(o.Rates))
	}
	if !near(second.Flow.ConfirmedPerSec, 3) {
		t.Errorf("confirmed per second over both instances: %s", mustJSON(second.Flow.ConfirmedPerSec))
	}

	tr := decode[traces.Trace](t, r.do("GET", "/console/api/traces/"+id, staff))
	var names []string
	for _, s := range tr.Spans {
		names = append(names, s.Name)
	}
	if want := []string{"POST /orders", "saga reserve"}; !slices.Equal(names, want) {
		t.Errorf("trace %s has spans %v, want both halves %v", id, names, want)
	}
	list := decode[struct{ Traces []traces.Summary }](t, r.do("GET", "/console/api/traces?orderId="+recordedOrder, staff))
	if len(list.Traces) != 1 || list.Traces[0].TraceID != id || list.Traces[0].RootName != "POST /orders" {
		t.Errorf("traces of %s: %+v, want %s rooted at POST /orders", recordedOrder, list.Traces, id)
	}

	// Readiness is any instance's, as a Service in front would route.
	d := r.g.Health(context.Background())
	if o := d.Services["order"]; !o.Ready || o.Instances != 3 || o.ReadyInstances != 1 {
		t.Errorf("order with one of three ready: %+v", o)
	}
	a.ready.Store(false)
	d = r.g.Health(context.Background())
	if o := d.Services["order"]; o.Ready || o.Status != http.StatusServiceUnavailable || o.ReadyInstances != 0 {
		t.Errorf("order with none ready: %+v", o)
	}
	if d.Status != StatusDegraded {
		t.Errorf("health %s with order down", d.Status)
	}
}

// The gateway runs two pods too, and the order began on the other one:
// with GATEWAY_OPS_URL the console reads both gateways' buffers, so the
// trace keeps its root, and counts both on the gateway's line.
func TestConsoleReadsEveryGatewayInstance(t *testing.T) {
	port, here, there := twoInstances(t, "gateway")
	peers := &url.URL{Scheme: "http", Host: net.JoinHostPort(gatewayOpsHost, port)}
	r := newConsoleRig(t, ConsoleOptions{Peers: peers})
	r.g.resolve = func(_ context.Context, host string) ([]string, error) {
		if host == gatewayOpsHost {
			return []string{here.addr, there.addr}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	ctx, root := there.tracer.Start(context.Background(), "POST /api/order/orders", trace.WithSpanKind(trace.SpanKindServer))
	_, call := here.tracer.Start(ctx, "GET /readyz")
	call.End()
	root.End()
	id := root.SpanContext().TraceID().String()

	s := decode[Snapshot](t, r.do("GET", "/console/api/snapshot", staff))
	if g := statusOf(s, "gateway"); g.Instances != 2 || g.Ready != 2 {
		t.Errorf("gateway's instances: %d, ready %d; want 2, 2", g.Instances, g.Ready)
	}
	tr := decode[traces.Trace](t, r.do("GET", "/console/api/traces/"+id, staff))
	if len(tr.Spans) != 2 || tr.Spans[0].Name != "POST /api/order/orders" || tr.Spans[0].ParentSpanID != "" {
		t.Errorf("trace %s: %s, want its root from the other gateway and the span from this one", id, mustJSON(tr.Spans))
	}
}
