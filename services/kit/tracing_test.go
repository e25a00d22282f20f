package kit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	productv1 "github.com/switchboard-dev/switchboard/gen/switchboard/product/v1"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/kit/traces"
)

func newTracing(t *testing.T, service string, env map[string]string) *kit.Tracing {
	t.Helper()
	c, err := kit.LoadTracingConfig(kit.MapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := kit.NewTracing(service, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr
}

// logSink is a log sink read while services write to it.
type logSink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// records are the JSON log records written so far.
func (s *logSink) records(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// spanNamed finds the one span called name.
func spanNamed(t *testing.T, tr traces.Trace, name string) traces.Span {
	t.Helper()
	return spanOf(t, tr, "", name)
}

// spanOf finds the one span of service ("": any) called name.
func spanOf(t *testing.T, tr traces.Trace, service, name string) traces.Span {
	t.Helper()
	var found []traces.Span
	for _, sp := range tr.Spans {
		if sp.Name == name && (service == "" || sp.Service == service) {
			found = append(found, sp)
		}
	}
	if len(found) != 1 {
		var names []string
		for _, sp := range tr.Spans {
			names = append(names, sp.Service+":"+sp.Name)
		}
		t.Fatalf("%d spans named %q in %v", len(found), name, names)
	}
	return found[0]
}

// A request arrives with a W3C traceparent at an HTTP service (order),
// which calls a gRPC server (product) whose handler publishes an event,
// which a consumer (notification) handles: every span lands in the
// caller's trace, each child of the one before, the consumer's linked to
// the publisher's; logs written along the way carry the ids, and the
// latency histogram the trace as its exemplar.
func TestTraceCrossesHTTPGRPCAndNATS(t *testing.T) {
	ctx := context.Background()
	shop := kittest.NewPKI(t)
	b := kittest.StartNATS(t, "")
	trOrder, trProduct, trNote := newTracing(t, "order", nil), newTracing(t, "product", nil), newTracing(t, "notification", nil)
	logs := &logSink{}
	log := slog.New(kit.TraceHandler(slog.NewJSONHandler(logs, nil)))

	// notification consumes order.confirmed.
	handled := make(chan struct{}, 1)
	sub := b.Bus(t, "notification")
	sub.SetTracing(trNote)
	if err := sub.Consume(kit.WithLogger(ctx, log), kit.ConsumerSpec{Durable: "notification-order-confirmed", Handler: func(ctx context.Context, ev kit.Event) error {
		kit.Logger(ctx).Info("notified", "event", ev.ID)
		handled <- struct{}{}
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	// product's gRPC handler publishes the event (on a bus of order's
	// row, the one allowed to publish it).
	pub := b.Bus(t, "order")
	pub.SetTracing(trProduct)
	srv := serveStock(t, shop, &stock{reserve: func(ctx context.Context, _ int32, req *productv1.ReserveRequest) (*productv1.ReserveResponse, error) {
		if err := pub.Publish(ctx, kit.EventID(catalog.OrderConfirmed, req.OrderId), "orders/"+req.OrderId, confirmed); err != nil {
			return nil, err
		}
		return &productv1.ReserveResponse{Reservation: &productv1.Reservation{UnitPrice: 100}}, nil
	}}, trProduct.GRPCServerOptions()...)
	o := testOptions()
	o.DialOptions = trOrder.GRPCDialOptions()
	stockClient, _, _ := dialStock(t, shop, "order", srv.addr, o)

	// order's HTTP API.
	m := kit.NewMetrics("order")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		kit.Logger(r.Context()).Info("placing")
		if _, err := stockClient.Reserve(r.Context(), &productv1.ReserveRequest{ProductId: "keyboard", OrderId: r.PathValue("id"), Quantity: 1}); err != nil {
			kit.WriteError(w, r, err)
			return
		}
		kit.WriteJSON(w, http.StatusCreated, map[string]string{"status": "confirmed"})
	})
	api := httptest.NewServer(trOrder.HTTPHandler(kit.Middleware(log, m, mux)))
	defer api.Close()

	const (
		callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		callerSpan  = "00f067aa0ba902b7"
	)
	req, _ := http.NewRequest(http.MethodPost, api.URL+"/orders/o1", nil)
	req.Header.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST = %d", resp.StatusCode)
	}
	select {
	case <-handled:
	case <-time.After(20 * time.Second):
		t.Fatal("the event was not consumed")
	}
	// The consumer's span ends once its handler returns.
	var got traces.Trace
	kittest.Eventually(t, 10*time.Second, "the consumer's span", func() bool {
		var parts []traces.Trace
		for _, tr := range []*kit.Tracing{trOrder, trProduct, trNote} {
			if p, ok := tr.Buffer().Trace(callerTrace); ok {
				parts = append(parts, p)
			}
		}
		got = traces.Merge(parts...)
		for _, sp := range got.Spans {
			if sp.Kind == "consumer" {
				return true
			}
		}
		return false
	})

	server := spanNamed(t, got, "POST /orders/{id}")
	client := spanOf(t, got, "order", productv1.Stock_Reserve_FullMethodName[1:])
	grpcServer := spanOf(t, got, "product", productv1.Stock_Reserve_FullMethodName[1:])
	publish := spanNamed(t, got, "publish "+catalog.OrderConfirmed)
	consume := spanNamed(t, got, "process "+catalog.OrderConfirmed)
	for _, c := range []struct {
		what           string
		sp             traces.Span
		service, kind  string
		parent         string
		parentNamedFor string
	}{
		{"the HTTP server span continues the caller's", server, "order", "server", callerSpan, "the traceparent's span"},
		{"the gRPC client span", client, "order", "client", server.SpanID, "the HTTP server span"},
		{"the gRPC server span", grpcServer, "product", "server", client.SpanID, "the client span"},
		{"the publish", publish, "product", "producer", grpcServer.SpanID, "the gRPC server span"},
		{"the consumer", consume, "notification", "consumer", publish.SpanID, "the publish"},
	} {
		if c.sp.Service != c.service || c.sp.Kind != c.kind || c.sp.ParentSpanID != c.parent {
			t.Errorf("%s: %s %s, parent %s; want %s %s, child of %s (%s)", c.what, c.sp.Service, c.sp.Kind, c.sp.ParentSpanID,
				c.service, c.kind, c.parent, c.parentNamedFor)
		}
	}
	if len(consume.Links) != 1 || consume.Links[0].SpanID != publish.SpanID || consume.Links[0].TraceID != callerTrace {
		t.Errorf("the consumer's links = %+v, want the publisher's span %s", consume.Links, publish.SpanID)
	}
	if consume.Attributes["messaging.consumer.group.name"] != "notification-order-confirmed" {
		t.Errorf("consumer attributes = %v", consume.Attributes)
	}

	// Logs: the request's and the consumer's records name their spans.
	want := map[string]string{"placing": server.SpanID, "notified": consume.SpanID}
	for _, r := range logs.records(t) {
		if span, ok := want[r["msg"].(string)]; ok {
			if r[kit.LogTraceID] != callerTrace || r[kit.LogSpanID] != span {
				t.Errorf("log %q: trace_id %v span_id %v, want %s %s", r["msg"], r[kit.LogTraceID], r[kit.LogSpanID], callerTrace, span)
			}
			delete(want, r["msg"].(string))
		}
	}
	if len(want) > 0 {
		t.Errorf("no log records %v", want)
	}

	// The latency histogram carries the trace, in OpenMetrics.
	ex := scrape(t, m, "application/openmetrics-text; version=1.0.0")
	if !strings.Contains(ex, `switchboard_http_request_duration_seconds_bucket{`) || !strings.Contains(ex, `# {trace_id="`+callerTrace+`"}`) {
		t.Errorf("OpenMetrics output has no exemplar of trace %s:\n%s", callerTrace, grepLines(ex, "request_duration_seconds_bucket"))
	}
	if plain := scrape(t, m, ""); strings.Contains(plain, "# {trace_id") {
		t.Error("the Prometheus text format carries exemplars, which it cannot")
	}
}

// A caller that did not sample its trace gets no spans recorded and no
// exemplar: the sampler is parent-based.
func TestUnsampledTraceparentIsRespected(t *testing.T) {
	tr := newTracing(t, "order", nil)
	m := kit.NewMetrics("order")
	mux := http.NewServeMux()
	var seen trace.SpanContext
	mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {
		seen = trace.SpanContextFromContext(r.Context())
		w.WriteHeader(http.StatusNoContent)
	})
	api := httptest.NewServer(tr.HTTPHandler(kit.Middleware(quiet, m, mux)))
	defer api.Close()
	req, _ := http.NewRequest(http.MethodGet, api.URL+"/x", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if seen.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || seen.IsSampled() {
		t.Errorf("the handler's span context = %v sampled %v, want the caller's trace, unsampled", seen.TraceID(), seen.IsSampled())
	}
	if n := tr.Buffer().Len(); n != 0 {
		t.Errorf("the buffer holds %d traces of an unsampled request", n)
	}
	if ex := scrape(t, m, "application/openmetrics-text"); strings.Contains(ex, "# {trace_id") {
		t.Error("an unsampled request left an exemplar")
	}
}

func TestLoadTracingConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		env  map[string]string
		err  string
	}{
		{"nothing set: no exporter, every trace kept", nil, ""},
		{"the operator's ratio", map[string]string{catalog.EnvTracesSampler: "parentbased_traceidratio", catalog.EnvTracesSamplerArg: "0.01"}, ""},
		{"an endpoint", map[string]string{catalog.EnvOTLPEndpoint: "http://jaeger.observability:4317"}, ""},
		{"an endpoint that is no URL", map[string]string{catalog.EnvOTLPEndpoint: "jaeger:4317"}, catalog.EnvOTLPEndpoint},
		{"a ratio above 1", map[string]string{catalog.EnvTracesSampler: "traceidratio", catalog.EnvTracesSamplerArg: "1.5"}, "from 0 to 1"},
		{"a ratio that is no number", map[string]string{catalog.EnvTracesSamplerArg: "ten percent"}, catalog.EnvTracesSamplerArg},
		{"a NaN ratio", map[string]string{catalog.EnvTracesSamplerArg: "NaN"}, catalog.EnvTracesSamplerArg},
		{"an unknown sampler", map[string]string{catalog.EnvTracesSampler: "jaeger_remote"}, "parentbased_traceidratio"},
		{"a zero buffer", map[string]string{catalog.EnvTraceBuffer: "0"}, catalog.EnvTraceBuffer},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := kit.LoadTracingConfig(kit.MapEnv(c.env))
			if c.err == "" && err != nil {
				t.Fatalf("err = %v", err)
			}
			if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("err = %v, want one naming %q", err, c.err)
			}
		})
	}
}

// A step is a child span of the service's, failed with its error; with
// no span and no service in ctx, StartSpan records nothing.
func TestStepRecordsErrors(t *testing.T) {
	tr := newTracing(t, "order", nil)
	ctx, root := tr.Provider().Tracer("t").Start(context.Background(), "POST /orders")
	_, done := kit.Step(ctx, "saga.charge")
	done(io.ErrUnexpectedEOF)
	root.End()
	got, ok := tr.Buffer().Trace(root.SpanContext().TraceID().String())
	if !ok {
		t.Fatal("no trace")
	}
	step := spanNamed(t, got, "saga.charge")
	if step.Status != "error" || step.StatusMessage != io.ErrUnexpectedEOF.Error() || step.Service != "order" {
		t.Errorf("step = %+v", step)
	}
	_, sp := kit.StartSpan(context.Background(), "nowhere")
	if sp.SpanContext().IsValid() {
		t.Error("a span started outside any service was recorded")
	}
}

func scrape(t *testing.T, m *kit.Metrics, accept string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	m.Handler().ServeHTTP(rec, req)
	return rec.Body.String()
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
