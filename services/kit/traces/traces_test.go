package traces_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-dev/switchboard/services/kit/traces"
)

// provider is a real SDK tracer provider of service feeding buf.
func provider(t *testing.T, service string, buf *traces.Buffer, sampler sdktrace.Sampler) trace.Tracer {
	t.Helper()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(buf), sdktrace.WithSampler(sampler),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp.Tracer("test")
}

func TestBufferKeepsTheLastTracesOnly(t *testing.T) {
	buf := traces.NewBuffer(3, 0)
	tr := provider(t, "order", buf, sdktrace.AlwaysSample())
	var ids []string
	for i := range 5 {
		ctx, root := tr.Start(context.Background(), fmt.Sprintf("root %d", i))
		_, child := tr.Start(ctx, "child")
		child.End()
		root.End()
		ids = append(ids, root.SpanContext().TraceID().String())
	}
	if buf.Len() != 3 {
		t.Fatalf("the buffer holds %d traces, want its bound 3", buf.Len())
	}
	for i, id := range ids {
		_, ok := buf.Trace(id)
		if want := i >= 2; ok != want {
			t.Errorf("trace %d held = %v, want %v (the two oldest make room)", i, ok, want)
		}
	}
	l := buf.List(0)
	if len(l.Traces) != 3 || l.Traces[0].RootName != "root 4" || l.Traces[2].RootName != "root 2" {
		t.Errorf("list = %+v, want roots 4, 3, 2: the most recent first", l.Traces)
	}
	if got := buf.List(1); len(got.Traces) != 1 || got.Traces[0].TraceID != ids[4] {
		t.Errorf("List(1) = %+v, want the most recent trace only", got.Traces)
	}
}

func TestBufferBoundsTheSpansOfOneTrace(t *testing.T) {
	buf := traces.NewBuffer(2, 4)
	tr := provider(t, "order", buf, sdktrace.AlwaysSample())
	ctx, root := tr.Start(context.Background(), "root")
	for range 10 {
		_, sp := tr.Start(ctx, "step", trace.WithAttributes(attribute.String("long", strings.Repeat("é", 1000))))
		sp.End()
	}
	root.End()
	got, ok := buf.Trace(root.SpanContext().TraceID().String())
	if !ok || len(got.Spans) != 4 {
		t.Fatalf("the trace holds %d spans, want its bound 4", len(got.Spans))
	}
	if buf.Dropped() != 7 {
		t.Errorf("dropped = %d, want 7 (10 steps and the root, 4 kept)", buf.Dropped())
	}
	v, _ := got.Spans[0].Attributes["long"].(string)
	if len(v) > traces.MaxValueLen || !strings.HasPrefix(v, "éé") || strings.ContainsRune(v, '\uFFFD') {
		t.Errorf("a long attribute is kept as %d bytes %q, want at most %d bytes of whole characters", len(v), v[:10], traces.MaxValueLen)
	}
}

func TestBufferIgnoresUnsampledSpans(t *testing.T) {
	buf := traces.NewBuffer(2, 0)
	tr := provider(t, "order", buf, sdktrace.NeverSample())
	_, sp := tr.Start(context.Background(), "root")
	sp.End()
	if buf.Len() != 0 {
		t.Errorf("the buffer holds %d traces of a sampler that samples none", buf.Len())
	}
}

func TestSpanFields(t *testing.T) {
	buf := traces.NewBuffer(2, 0)
	tr := provider(t, "order", buf, sdktrace.AlwaysSample())
	ctx, root := tr.Start(context.Background(), "POST /orders", trace.WithSpanKind(trace.SpanKindServer))
	other := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	_, child := tr.Start(ctx, "process order.confirmed", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(trace.Link{SpanContext: other}), trace.WithAttributes(attribute.Int64("n", 3), attribute.Bool("ok", true)))
	child.SetStatus(codes.Error, "declined")
	child.End()
	root.End()
	got, _ := buf.Trace(root.SpanContext().TraceID().String())
	if len(got.Spans) != 2 {
		t.Fatalf("spans = %+v", got.Spans)
	}
	r, c := got.Spans[0], got.Spans[1]
	if r.Name != "POST /orders" || r.ParentSpanID != "" || r.Kind != "server" || r.Service != "order" || r.Status != "unset" {
		t.Errorf("root = %+v", r)
	}
	if c.ParentSpanID != r.SpanID || c.Kind != "consumer" || c.Status != "error" || c.StatusMessage != "declined" ||
		c.Attributes["n"] != int64(3) || c.Attributes["ok"] != true {
		t.Errorf("child = %+v", c)
	}
	if len(c.Links) != 1 || c.Links[0].TraceID != other.TraceID().String() || c.Links[0].SpanID != other.SpanID().String() {
		t.Errorf("links = %+v, want the linked span", c.Links)
	}
	if c.End.Before(c.Start) || r.End.Before(c.End) {
		t.Errorf("times: root %v–%v, child %v–%v", r.Start, r.End, c.Start, c.End)
	}
}

func TestRoutes(t *testing.T) {
	buf := traces.NewBuffer(4, 0)
	tr := provider(t, "payment", buf, sdktrace.AlwaysSample())
	ctx, root := tr.Start(context.Background(), "Charge")
	_, child := tr.Start(ctx, "kv put")
	time.Sleep(time.Millisecond)
	child.End()
	root.End()
	mux := http.NewServeMux()
	traces.Routes(mux, buf)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	var l traces.List
	get(t, srv.URL+"/debug/traces?limit=5", http.StatusOK, &l)
	id := root.SpanContext().TraceID().String()
	if len(l.Traces) != 1 || l.Traces[0].TraceID != id || l.Traces[0].RootName != "Charge" ||
		len(l.Traces[0].Services) != 1 || l.Traces[0].Services[0] != "payment" || l.Traces[0].DurationMs <= 0 {
		t.Errorf("list = %+v", l)
	}
	var raw struct {
		TraceID string           `json:"traceId"`
		Spans   []map[string]any `json:"spans"`
	}
	get(t, srv.URL+"/debug/traces/"+id, http.StatusOK, &raw)
	if raw.TraceID != id || len(raw.Spans) != 2 {
		t.Errorf("trace = %+v", raw)
	}
	for _, sp := range raw.Spans {
		for _, k := range []string{"spanId", "parentSpanId", "name", "service", "kind", "start", "end", "status", "attributes", "links"} {
			if _, ok := sp[k]; !ok {
				t.Errorf("a span lacks %q: %v", k, sp)
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, sp["start"].(string)); err != nil {
			t.Errorf("start %v is not RFC 3339: %v", sp["start"], err)
		}
	}
	var e struct{ Error struct{ Code, Field string } }
	get(t, srv.URL+"/debug/traces/"+strings.Repeat("0", 31)+"1", http.StatusNotFound, &e)
	if e.Error.Code != "not_found" || e.Error.Field != "traceId" {
		t.Errorf("unknown trace: %+v", e)
	}
	get(t, srv.URL+"/debug/traces/nonsense", http.StatusNotFound, &e)
	get(t, srv.URL+"/debug/traces?limit=-1", http.StatusBadRequest, &e)
	if e.Error.Field != "limit" {
		t.Errorf("bad limit: %+v", e)
	}
}

func get(t *testing.T, url string, status int, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("GET %s = %d, want %d", url, resp.StatusCode, status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestMerge(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	gw := traces.Trace{TraceID: "t", Spans: []traces.Span{
		{SpanID: "a", Name: "POST /api/order/orders", Service: "gateway", Start: t0, End: t0.Add(50 * time.Millisecond)},
		{SpanID: "b", ParentSpanID: "a", Name: "POST", Service: "gateway", Start: t0.Add(time.Millisecond), End: t0.Add(49 * time.Millisecond)},
	}}
	order := traces.Trace{TraceID: "t", Spans: []traces.Span{
		{SpanID: "c", ParentSpanID: "b", Name: "POST /orders", Service: "order", Start: t0.Add(2 * time.Millisecond), End: t0.Add(48 * time.Millisecond)},
		{SpanID: "d", ParentSpanID: "c", Name: "publish order.confirmed", Service: "order", Start: t0.Add(40 * time.Millisecond), End: t0.Add(41 * time.Millisecond)},
	}}
	note := traces.Trace{TraceID: "t", Spans: []traces.Span{
		{SpanID: "e", ParentSpanID: "d", Name: "process order.confirmed", Service: "notification", Start: t0.Add(45 * time.Millisecond), End: t0.Add(60 * time.Millisecond)},
	}}
	m := traces.Merge(note, order, gw, order)
	if len(m.Spans) != 5 || m.Spans[0].SpanID != "a" || m.Spans[4].SpanID != "e" {
		t.Fatalf("merged = %+v, want a…e once each in start order", m.Spans)
	}
	s := traces.Summarize("t", m.Spans)
	if s.RootName != "POST /api/order/orders" || s.DurationMs != 60 || strings.Join(s.Services, ",") != "gateway,notification,order" {
		t.Errorf("summary = %+v", s)
	}
	// Each service's own summary names its local root.
	if s := traces.Summarize("t", note.Spans); s.RootName != "process order.confirmed" {
		t.Errorf("notification's summary = %+v", s)
	}
	l := traces.MergeLists(0,
		traces.List{Traces: []traces.Summary{traces.Summarize("t", order.Spans)}},
		traces.List{Traces: []traces.Summary{traces.Summarize("t", gw.Spans), {TraceID: "older", Start: t0.Add(-time.Second), Services: []string{"user"}}}},
		traces.List{Traces: []traces.Summary{traces.Summarize("t", note.Spans)}})
	if len(l.Traces) != 2 || l.Traces[0].TraceID != "t" || l.Traces[1].TraceID != "older" {
		t.Fatalf("merged lists = %+v", l.Traces)
	}
	if got := l.Traces[0]; got.RootName != "POST /api/order/orders" || got.DurationMs != 60 || !got.Start.Equal(t0) ||
		strings.Join(got.Services, ",") != "gateway,notification,order" {
		t.Errorf("merged summary = %+v, want the whole trace's", got)
	}
	if l := traces.MergeLists(1, l); len(l.Traces) != 1 {
		t.Errorf("limit 1 kept %d", len(l.Traces))
	}
}
