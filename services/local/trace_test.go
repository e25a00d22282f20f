package local_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/kit/traces"
	"github.com/switchboard-dev/switchboard/services/local"
	"github.com/switchboard-dev/switchboard/services/order"
)

// opsGet decodes GET <ops><path> into v and returns the status.
func opsGet(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// collect merges what every service's buffer holds of one trace.
func collect(t *testing.T, p *local.Platform, traceID string) traces.Trace {
	t.Helper()
	var parts []traces.Trace
	for _, svc := range p.Services() {
		var tr traces.Trace
		if opsGet(t, p.OpsURLs[svc]+"/debug/traces/"+traceID, &tr) == http.StatusOK {
			parts = append(parts, tr)
		}
	}
	return traces.Merge(parts...)
}

// An order placed through the gateway is one trace, with no collector:
// the gateway's span, the saga's steps and their gRPC calls to product and
// payment, the publish of order.confirmed, and the notification and points
// consumers, each in its service's buffer on its ops port.
func TestAnOrderIsOneTrace(t *testing.T) {
	ctx := context.Background()
	p, err := local.Start(ctx, local.Options{
		Addr:          "127.0.0.1:0",
		Workloads:     []catalog.Workload{catalog.Commerce},
		Env:           map[string]string{"BCRYPT_COST": "4", "RATE_LIMIT_RPS": "10000"},
		ShutdownGrace: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	anon := api{t: t, base: p.GatewayURL}
	var u struct{ ID string }
	anon.must(201, "POST", "/api/user/users", map[string]string{"email": "tess@example.com", "name": "Tess", "password": "correct-horse"}).json(t, &u)
	var tok struct{ Token string }
	anon.must(200, "POST", "/api/user/login", map[string]string{"email": "tess@example.com", "password": "correct-horse"}).json(t, &tok)
	a := api{t: t, base: p.GatewayURL, token: tok.Token}

	// The caller's trace: the gateway continues it.
	const traceID, callerSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	var o events.Order
	a.must(201, "POST", "/api/order/orders", map[string]any{
		"items": []map[string]any{{"productId": "monitor", "quantity": 1}}, "paymentMethod": "card", "shippingAddress": "1 Main St",
	}, kit.HeaderIdempotencyKey, "traced", "traceparent", "00-"+traceID+"-"+callerSpan+"-01").json(t, &o)
	if o.Status != order.Confirmed {
		t.Fatalf("order %+v", o)
	}

	want := []struct{ service, name string }{
		{"gateway", "POST /api/order/orders"},
		{"gateway", "POST order"},
		{"order", "POST /orders"},
		{"order", "saga.reserve"},
		{"order", "saga.charge"},
		{"order", "saga.commit"},
		{"product", "switchboard.product.v1.Stock/Reserve"},
		{"product", "switchboard.product.v1.Stock/Commit"},
		{"payment", "switchboard.payment.v1.Payments/Charge"},
		{"order", "publish " + catalog.OrderConfirmed},
		{"notification", "process " + catalog.OrderConfirmed},
		{"user", "process " + catalog.OrderConfirmed},
	}
	has := func(tr traces.Trace, service, name string) (traces.Span, bool) {
		i := slices.IndexFunc(tr.Spans, func(s traces.Span) bool { return s.Service == service && s.Name == name })
		if i < 0 {
			return traces.Span{}, false
		}
		return tr.Spans[i], true
	}
	var tr traces.Trace
	// The consumers run after the order's answer.
	kittest.Eventually(t, 15*time.Second, "the consumers' spans", func() bool {
		tr = collect(t, p, traceID)
		_, n := has(tr, "notification", "process "+catalog.OrderConfirmed)
		_, u := has(tr, "user", "process "+catalog.OrderConfirmed)
		return n && u
	})
	for _, s := range tr.Spans {
		t.Logf("%-12s %-8s %-45s %s", s.Service, s.Kind, s.Name, s.End.Sub(s.Start))
	}
	var missing []string
	for _, w := range want {
		if _, ok := has(tr, w.service, w.name); !ok {
			missing = append(missing, w.service+": "+w.name)
		}
	}
	if len(missing) > 0 {
		var got []string
		for _, s := range tr.Spans {
			got = append(got, s.Service+": "+s.Name)
		}
		t.Fatalf("the trace lacks\n  %s\nit holds\n  %s", strings.Join(missing, "\n  "), strings.Join(got, "\n  "))
	}

	// Every span but the gateway's has its parent in the trace: nothing
	// broke off into a trace of its own.
	ids := map[string]bool{}
	for _, s := range tr.Spans {
		ids[s.SpanID] = true
	}
	for _, s := range tr.Spans {
		if !ids[s.ParentSpanID] && s.ParentSpanID != callerSpan {
			t.Errorf("%s %q has parent %q, which is not in the trace", s.Service, s.Name, s.ParentSpanID)
		}
	}
	gw, _ := has(tr, "gateway", "POST /api/order/orders")
	if gw.ParentSpanID != callerSpan {
		t.Errorf("the gateway's span has parent %q, want the caller's %s", gw.ParentSpanID, callerSpan)
	}
	pub, _ := has(tr, "order", "publish "+catalog.OrderConfirmed)
	for _, svc := range []string{"notification", "user"} {
		c, _ := has(tr, svc, "process "+catalog.OrderConfirmed)
		if len(c.Links) != 1 || c.Links[0].SpanID != pub.SpanID {
			t.Errorf("%s's consumer links %+v, want the publish %s", svc, c.Links, pub.SpanID)
		}
	}
	reserve, _ := has(tr, "order", "saga.reserve")
	if reserve.Attributes["order.id"] != o.ID {
		t.Errorf("saga.reserve attributes %v, want order.id %s", reserve.Attributes, o.ID)
	}

	// The services' lists, merged, name the whole trace under the
	// gateway's span.
	var lists []traces.List
	for _, svc := range p.Services() {
		var l traces.List
		if opsGet(t, p.OpsURLs[svc]+"/debug/traces?limit=100", &l) != http.StatusOK {
			t.Fatalf("%s: GET /debug/traces failed", svc)
		}
		lists = append(lists, l)
	}
	merged := traces.MergeLists(0, lists...)
	i := slices.IndexFunc(merged.Traces, func(s traces.Summary) bool { return s.TraceID == traceID })
	if i < 0 {
		t.Fatalf("no summary of %s in %+v", traceID, merged.Traces)
	}
	s := merged.Traces[i]
	for _, svc := range []string{"gateway", "notification", "order", "payment", "product", "user"} {
		if !slices.Contains(s.Services, svc) {
			t.Errorf("the summary's services %v lack %s", s.Services, svc)
		}
	}
	if s.RootName != "POST /api/order/orders" {
		t.Errorf("the summary's root is %q, want the gateway's span", s.RootName)
	}
}
