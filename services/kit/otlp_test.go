package kit_test

import (
	"context"
	"net"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// collector is an OTLP/gRPC trace receiver on loopback.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans map[string]string // span name → service.name of its resource
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				c.spans[sp.GetName()] = service
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, spans reach the collector, named
// after their service; the buffer keeps them too.
func TestSpansAreExportedOverOTLP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{spans: map[string]string{}}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, col)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	c, err := kit.LoadTracingConfig(kit.MapEnv(map[string]string{catalog.EnvOTLPEndpoint: "http://" + ln.Addr().String()}))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := kit.NewTracing("payment", c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, root := tr.Provider().Tracer("t").Start(context.Background(), "Charge")
	_, done := kit.Step(ctx, "ledger.write")
	done(nil)
	root.End()
	// Shutdown flushes the batch.
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, name := range []string{"Charge", "ledger.write"} {
		if col.spans[name] != "payment" {
			t.Errorf("the collector got %v, want %s of payment", col.spans, name)
		}
	}
	if tr.Buffer().Len() != 1 {
		t.Errorf("the buffer holds %d traces, want the one exported", tr.Buffer().Len())
	}
}
