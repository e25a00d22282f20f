package traces

import (
	"context"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Bounds of a Buffer.
const (
	// DefaultTraces is how many traces a buffer keeps.
	DefaultTraces = 512
	// DefaultSpansPerTrace is how many spans of one trace it keeps; the
	// rest are counted in Dropped.
	DefaultSpansPerTrace = 256
	// MaxValueLen bounds a string attribute kept (longer ones are cut).
	MaxValueLen = 256
)

// Buffer is a span processor keeping the finished spans of the last
// Traces traces, each at most SpansPerTrace spans: its memory is bounded
// whatever the load. The oldest trace (by its first span to finish) makes
// room for a new one. It sees sampled spans only: the sampler decides
// before any processor runs.
type Buffer struct {
	mu            sync.Mutex
	spansPerTrace int
	traces        map[trace.TraceID][]Span
	// ring holds the buffered trace ids in arrival order; next is where
	// the next new trace goes, evicting the one there.
	ring    []trace.TraceID
	next    int
	dropped uint64
	stopped bool
}

// NewBuffer keeps traces traces of at most spansPerTrace spans each; zero
// or less takes the defaults.
func NewBuffer(traces, spansPerTrace int) *Buffer {
	if traces <= 0 {
		traces = DefaultTraces
	}
	if spansPerTrace <= 0 {
		spansPerTrace = DefaultSpansPerTrace
	}
	return &Buffer{spansPerTrace: spansPerTrace, traces: make(map[trace.TraceID][]Span, traces),
		ring: make([]trace.TraceID, traces)}
}

var _ sdktrace.SpanProcessor = (*Buffer)(nil)

// OnStart does nothing: a span is kept once it ends.
func (b *Buffer) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd keeps s.
func (b *Buffer) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	sp := convert(s)
	id := s.SpanContext().TraceID()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	spans, ok := b.traces[id]
	if !ok {
		if old := b.ring[b.next]; old.IsValid() {
			delete(b.traces, old)
		}
		b.ring[b.next] = id
		b.next = (b.next + 1) % len(b.ring)
	}
	if len(spans) >= b.spansPerTrace {
		b.dropped++
		return
	}
	b.traces[id] = append(spans, sp)
}

// Shutdown stops taking spans; what is held stays readable.
func (b *Buffer) Shutdown(context.Context) error {
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
	return nil
}

// ForceFlush has nothing to flush.
func (b *Buffer) ForceFlush(context.Context) error { return nil }

// Len is the number of traces held.
func (b *Buffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.traces)
}

// Dropped counts the spans refused because their trace was full.
func (b *Buffer) Dropped() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}

// List summarizes the traces held, the most recent first, at most limit
// (0: all).
func (b *Buffer) List(limit int) List {
	b.mu.Lock()
	out := List{Traces: make([]Summary, 0, len(b.traces))}
	for id, spans := range b.traces {
		out.Traces = append(out.Traces, Summarize(id.String(), spans))
	}
	b.mu.Unlock()
	sortRecentFirst(out.Traces)
	if limit > 0 && len(out.Traces) > limit {
		out.Traces = out.Traces[:limit]
	}
	return out
}

// Trace returns the spans held of one trace, in start order; false when
// none is held (an id that does not parse included).
func (b *Buffer) Trace(traceID string) (Trace, bool) {
	id, err := trace.TraceIDFromHex(traceID)
	if err != nil {
		return Trace{}, false
	}
	b.mu.Lock()
	spans, ok := b.traces[id]
	spans = append([]Span(nil), spans...)
	b.mu.Unlock()
	if !ok {
		return Trace{}, false
	}
	sortSpans(spans)
	return Trace{TraceID: id.String(), Spans: spans}, true
}

func convert(s sdktrace.ReadOnlySpan) Span {
	sp := Span{
		SpanID:     s.SpanContext().SpanID().String(),
		Name:       s.Name(),
		Kind:       s.SpanKind().String(),
		Start:      s.StartTime(),
		End:        s.EndTime(),
		Attributes: make(map[string]any, len(s.Attributes())),
		Links:      make([]Link, 0, len(s.Links())),
	}
	if p := s.Parent(); p.IsValid() {
		sp.ParentSpanID = p.SpanID().String()
	}
	if r := s.Resource(); r != nil {
		if v, ok := r.Set().Value("service.name"); ok {
			sp.Service = v.AsString()
		}
	}
	switch st := s.Status(); st.Code {
	case codes.Error:
		sp.Status, sp.StatusMessage = "error", cut(st.Description)
	case codes.Ok:
		sp.Status = "ok"
	default:
		sp.Status = "unset"
	}
	for _, kv := range s.Attributes() {
		sp.Attributes[string(kv.Key)] = value(kv.Value)
	}
	for _, l := range s.Links() {
		sp.Links = append(sp.Links, Link{TraceID: l.SpanContext.TraceID().String(), SpanID: l.SpanContext.SpanID().String()})
	}
	return sp
}

func value(v attribute.Value) any {
	switch v.Type() {
	case attribute.STRING:
		return cut(v.AsString())
	case attribute.STRINGSLICE:
		ss := v.AsStringSlice()
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = cut(s)
		}
		return out
	}
	return v.AsInterface()
}

func cut(s string) string {
	if len(s) <= MaxValueLen {
		return s
	}
	s = s[:MaxValueLen]
	// Do not leave half a UTF-8 sequence at the end.
	return strings.ToValidUTF8(s, "")
}
