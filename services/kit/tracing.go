package kit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit/traces"
)

// TracerName is the instrumentation scope of the kit's own spans (saga
// steps, publishes, consumers).
const TracerName = "github.com/switchboard-dev/switchboard/services/kit"

// TracingConfig is what a service reads about tracing from its env (see
// catalog.EnvOTLPEndpoint and the names beside it).
type TracingConfig struct {
	// Endpoint is the OTLP/gRPC collector's URL; "" exports nothing.
	Endpoint string
	// Sampler decides which new traces are recorded.
	Sampler sdktrace.Sampler
	// BufferTraces is how many recent traces the service keeps for
	// GET /debug/traces.
	BufferTraces int
}

// LoadTracingConfig reads the tracing env. Every error names the variable
// at fault.
func LoadTracingConfig(env Getenv) (TracingConfig, error) {
	get := func(k string) string {
		if env == nil {
			return ""
		}
		return strings.TrimSpace(env(k))
	}
	var t TracingConfig
	if v := get(catalog.EnvOTLPEndpoint); v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return t, fmt.Errorf("%s=%q: want the collector's OTLP/gRPC URL, such as http://collector.observability:4317", catalog.EnvOTLPEndpoint, v)
		}
		t.Endpoint = v
	}
	s, err := ParseSampler(get(catalog.EnvTracesSampler), get(catalog.EnvTracesSamplerArg))
	if err != nil {
		return t, err
	}
	t.Sampler = s
	t.BufferTraces = traces.DefaultTraces
	if v := get(catalog.EnvTraceBuffer); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 100000 {
			return t, fmt.Errorf("%s=%q: want a number of traces from 1 to 100000", catalog.EnvTraceBuffer, v)
		}
		t.BufferTraces = n
	}
	return t, nil
}

// ParseSampler reads OpenTelemetry's OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG: "" is parentbased_always_on; the ratio samplers
// take a number in [0, 1], default 1.
func ParseSampler(name, arg string) (sdktrace.Sampler, error) {
	ratio := 1.0
	if arg != "" {
		r, err := ParseRatio(arg)
		if err != nil {
			return nil, fmt.Errorf("%s=%q: %v", catalog.EnvTracesSamplerArg, arg, err)
		}
		ratio = r
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	}
	return nil, fmt.Errorf("%s=%q: want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
		catalog.EnvTracesSampler, name)
}

// ParseRatio reads a sampling ratio: a decimal number from 0 to 1.
func ParseRatio(s string) (float64, error) {
	r, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || r != r || r < 0 || r > 1 {
		return 0, errors.New("want a sampling ratio from 0 to 1, such as 0.01")
	}
	return r, nil
}

// Tracing is a service's OpenTelemetry tracing: a tracer provider of its
// own (so that `switchboard dev` runs several services in one process,
// each naming itself), the W3C trace-context propagator, the buffer of
// recent traces and, when configured, an OTLP exporter. A nil *Tracing
// traces nothing, so constructors built without one (tests) still work.
type Tracing struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	buffer   *traces.Buffer
}

// NewTracing starts service's tracing. The OTLP exporter dials lazily: a
// collector that is down loses spans, never requests.
func NewTracing(service string, c TracingConfig) (*Tracing, error) {
	if c.Sampler == nil {
		c.Sampler = sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
	buf := traces.NewBuffer(c.BufferTraces, 0)
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))),
		sdktrace.WithSampler(c.Sampler),
		sdktrace.WithSpanProcessor(buf),
	}
	if c.Endpoint != "" {
		exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpointURL(c.Endpoint))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", catalog.EnvOTLPEndpoint, err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	return &Tracing{provider: tp, tracer: tp.Tracer(TracerName), buffer: buf,
		prop: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})}, nil
}

// Provider is the service's tracer provider.
func (t *Tracing) Provider() trace.TracerProvider {
	if t == nil {
		return tracenoop.NewTracerProvider()
	}
	return t.provider
}

// Propagator carries trace context across calls: W3C traceparent and
// baggage.
func (t *Tracing) Propagator() propagation.TextMapPropagator {
	if t == nil {
		return propagation.NewCompositeTextMapPropagator()
	}
	return t.prop
}

// Buffer holds the service's recent traces; nil for a nil Tracing.
func (t *Tracing) Buffer() *traces.Buffer {
	if t == nil {
		return nil
	}
	return t.buffer
}

// Shutdown exports what is pending and stops.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

func (t *Tracing) tracerOrNoop() trace.Tracer {
	if t == nil {
		return noopTracer
	}
	return t.tracer
}

var noopTracer = tracenoop.NewTracerProvider().Tracer(TracerName)

// HTTPHandler serves h inside a server span, continuing the trace of the
// request's traceparent. Middleware names the span after the route and
// records the status. It is leaner than otelhttp's handler: a request that
// is not sampled costs the extraction and a non-recording span only,
// which matters at a sampling ratio of 1 %.
func (t *Tracing) HTTPHandler(h http.Handler) http.Handler {
	if t == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, sp := t.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer))
		defer sp.End()
		if sp.IsRecording() {
			sp.SetAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
				attribute.String("client.address", r.RemoteAddr), attribute.String("user_agent.original", r.UserAgent()))
		}
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// HTTPTransport sends each request to the service peer in a client span
// ("POST order") and passes the trace on in its headers.
func (t *Tracing) HTTPTransport(rt http.RoundTripper, peer string) http.RoundTripper {
	if t == nil {
		return rt
	}
	return otelhttp.NewTransport(rt, otelhttp.WithTracerProvider(t.provider), otelhttp.WithPropagators(t.prop),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithSpanOptions(trace.WithAttributes(attribute.String("peer.service", peer))),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + peer }))
}

func (t *Tracing) grpcOptions() []otelgrpc.Option {
	return []otelgrpc.Option{otelgrpc.WithTracerProvider(t.provider), otelgrpc.WithPropagators(t.prop),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		// Health checks are probes, not work: they would bury the traces.
		otelgrpc.WithFilter(filters.Not(filters.HealthCheck()))}
}

// GRPCServerOptions trace every call served; none for a nil Tracing.
func (t *Tracing) GRPCServerOptions() []grpc.ServerOption {
	if t == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(t.grpcOptions()...))}
}

// GRPCDialOptions trace every call (each attempt) made; none for a nil
// Tracing.
func (t *Tracing) GRPCDialOptions() []grpc.DialOption {
	if t == nil {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(t.grpcOptions()...))}
}

// withTracing lets StartSpan find the service's tracer in contexts that
// carry no span yet (a consumer's, a background sweep's).
func withTracing(ctx context.Context, t *Tracing) context.Context {
	if t == nil {
		return ctx
	}
	return context.WithValue(ctx, ctxTracing, t)
}

// StartSpan starts a span of the service's trace: a child of the span in
// ctx, else the root of a new trace of the service whose Run made ctx.
// End it, with EndSpan to record an error.
func StartSpan(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return tracerFrom(ctx).Start(ctx, name, opts...)
}

func tracerFrom(ctx context.Context) trace.Tracer {
	if t, ok := ctx.Value(ctxTracing).(*Tracing); ok {
		return t.tracer
	}
	// A local span (an extracted, remote one has no provider of ours)
	// knows the provider that made it.
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && !sc.IsRemote() {
		return trace.SpanFromContext(ctx).TracerProvider().Tracer(TracerName)
	}
	return noopTracer
}

// EndSpan ends sp, marking it failed with err unless err is nil.
func EndSpan(sp trace.Span, err error) {
	if err != nil {
		sp.RecordError(err)
		sp.SetStatus(codes.Error, err.Error())
	}
	sp.End()
}

// Step starts the span of one step of a longer operation (a saga's
// reserve, charge, commit…) and returns the context to run it in and the
// function that ends it with the step's error:
//
//	ctx, done := kit.Step(ctx, "saga.reserve", attribute.String("order.id", id))
//	res, err := stock.Reserve(ctx, …)
//	done(err)
func Step(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, func(error)) {
	ctx, sp := StartSpan(ctx, name, trace.WithAttributes(attrs...))
	return ctx, func(err error) { EndSpan(sp, err) }
}
