package kit

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// Log fields naming the span a record was written in.
const (
	LogTraceID = "trace_id"
	LogSpanID  = "span_id"
)

// TraceHandler wraps h so that every record written inside a span carries
// trace_id and span_id: the span of the context the record is logged with
// (InfoContext and the like), else of the context the logger was bound to
// (see Logger). Run wraps every service's logger with it.
func TraceHandler(h slog.Handler) slog.Handler {
	if th, ok := h.(*traceHandler); ok {
		return th
	}
	return &traceHandler{inner: h}
}

type traceHandler struct {
	inner slog.Handler
	// bound is the context Logger bound the logger to; nil if none.
	bound context.Context
}

func (h *traceHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *traceHandler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() && h.bound != nil {
		sc = trace.SpanContextFromContext(h.bound)
	}
	if sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String(LogTraceID, sc.TraceID().String()), slog.String(LogSpanID, sc.SpanID().String()))
	}
	return h.inner.Handle(ctx, r)
}

func (h *traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &traceHandler{inner: h.inner.WithAttrs(as), bound: h.bound}
}

func (h *traceHandler) WithGroup(name string) slog.Handler {
	return &traceHandler{inner: h.inner.WithGroup(name), bound: h.bound}
}

// bindLogger returns l writing the span of ctx into its records, when ctx
// holds one and l's handler is a TraceHandler.
func bindLogger(l *slog.Logger, ctx context.Context) *slog.Logger {
	th, ok := l.Handler().(*traceHandler)
	if !ok || !trace.SpanContextFromContext(ctx).IsValid() {
		return l
	}
	return slog.New(&traceHandler{inner: th.inner, bound: ctx})
}

// observe records v in o, with the trace of ctx as the exemplar when the
// span is sampled: a latency on a dashboard then leads to its trace.
func observe(o prometheus.Observer, v float64, ctx context.Context) {
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(v, prometheus.Labels{LogTraceID: sc.TraceID().String()})
			return
		}
	}
	o.Observe(v)
}

// exemplarOf is the exemplar of ctx's sampled span, for collectors that
// take one (the gRPC metrics); nil without one.
func exemplarOf(ctx context.Context) prometheus.Labels {
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		return prometheus.Labels{LogTraceID: sc.TraceID().String()}
	}
	return nil
}
