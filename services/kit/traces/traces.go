// Package traces keeps the spans of a service's most recent traces in
// memory and serves them on the ops port, so that a trace can be looked at
// with no collector: `switchboard dev` runs with none, and the gateway's
// console merges what every service's buffer holds.
//
// The HTTP contract, on each service's ops port:
//
//	GET /debug/traces?limit=N  → List: the most recent traces first
//	GET /debug/traces/{traceId} → Trace: every span this service holds
//
// A service holds only its own spans of a trace; Merge and MergeLists put
// several services' answers together.
package traces

import (
	"cmp"
	"slices"
	"time"
)

// Summary is one trace in a List.
type Summary struct {
	TraceID string `json:"traceId"`
	// RootName is the name of the trace's first span: the root where the
	// buffer holds it, else the earliest span this service saw.
	RootName   string    `json:"rootName"`
	Start      time.Time `json:"start"`
	DurationMs float64   `json:"durationMs"`
	// Services are those whose spans the summary was made from.
	Services []string `json:"services"`
}

// List answers GET /debug/traces.
type List struct {
	Traces []Summary `json:"traces"`
}

// Trace answers GET /debug/traces/{traceId}: spans in start order.
type Trace struct {
	TraceID string `json:"traceId"`
	Spans   []Span `json:"spans"`
}

// Span is one finished span.
type Span struct {
	SpanID string `json:"spanId"`
	// ParentSpanID is "" for a root span.
	ParentSpanID string `json:"parentSpanId"`
	Name         string `json:"name"`
	Service      string `json:"service"`
	// Kind is internal, server, client, producer or consumer.
	Kind  string    `json:"kind"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Status is "unset", "ok" or "error"; StatusMessage says why for an
	// error.
	Status        string         `json:"status"`
	StatusMessage string         `json:"statusMessage,omitempty"`
	Attributes    map[string]any `json:"attributes"`
	// Links name other spans this one follows from: a consumer's link is
	// the span that published the message.
	Links []Link `json:"links"`
}

// Link points at another span, possibly of another trace.
type Link struct {
	TraceID string `json:"traceId"`
	SpanID  string `json:"spanId"`
}

// Summarize describes the spans of one trace.
func Summarize(traceID string, spans []Span) Summary {
	s := Summary{TraceID: traceID, Services: []string{}}
	if len(spans) == 0 {
		return s
	}
	ids := make(map[string]bool, len(spans))
	for _, sp := range spans {
		ids[sp.SpanID] = true
	}
	var end time.Time
	// The root is the span without a parent; failing that (this service
	// holds only its part of the trace), the earliest whose parent is
	// elsewhere.
	root, rank := -1, 0
	for i, sp := range spans {
		if i == 0 || sp.Start.Before(s.Start) {
			s.Start = sp.Start
		}
		if sp.End.After(end) {
			end = sp.End
		}
		if !slices.Contains(s.Services, sp.Service) {
			s.Services = append(s.Services, sp.Service)
		}
		r := 0
		switch {
		case sp.ParentSpanID == "":
			r = 2
		case !ids[sp.ParentSpanID]:
			r = 1
		}
		if r > rank || (r == rank && r > 0 && sp.Start.Before(spans[root].Start)) {
			root, rank = i, r
		}
	}
	if root >= 0 {
		s.RootName = spans[root].Name
	}
	slices.Sort(s.Services)
	s.DurationMs = float64(end.Sub(s.Start).Microseconds()) / 1000
	return s
}

// Merge puts together the spans several services hold of one trace, each
// span once, in start order.
func Merge(parts ...Trace) Trace {
	var out Trace
	seen := map[string]bool{}
	for _, p := range parts {
		if out.TraceID == "" {
			out.TraceID = p.TraceID
		}
		for _, sp := range p.Spans {
			if !seen[sp.SpanID] {
				seen[sp.SpanID] = true
				out.Spans = append(out.Spans, sp)
			}
		}
	}
	sortSpans(out.Spans)
	if out.Spans == nil {
		out.Spans = []Span{}
	}
	return out
}

// MergeLists puts together several services' lists: one summary per
// trace, spanning what each saw, its root name that of the earliest start,
// the most recent first, at most limit (0: no limit).
func MergeLists(limit int, lists ...List) List {
	by := map[string]*Summary{}
	var ends = map[string]time.Time{}
	for _, l := range lists {
		for _, s := range l.Traces {
			end := s.Start.Add(time.Duration(s.DurationMs * float64(time.Millisecond)))
			m, ok := by[s.TraceID]
			if !ok {
				c := s
				c.Services = slices.Clone(s.Services)
				by[s.TraceID], ends[s.TraceID] = &c, end
				continue
			}
			if s.Start.Before(m.Start) {
				m.Start, m.RootName = s.Start, s.RootName
			}
			if end.After(ends[s.TraceID]) {
				ends[s.TraceID] = end
			}
			for _, svc := range s.Services {
				if !slices.Contains(m.Services, svc) {
					m.Services = append(m.Services, svc)
				}
			}
		}
	}
	out := List{Traces: make([]Summary, 0, len(by))}
	for id, s := range by {
		s.DurationMs = float64(ends[id].Sub(s.Start).Microseconds()) / 1000
		slices.Sort(s.Services)
		out.Traces = append(out.Traces, *s)
	}
	sortRecentFirst(out.Traces)
	if limit > 0 && len(out.Traces) > limit {
		out.Traces = out.Traces[:limit]
	}
	return out
}

func sortSpans(spans []Span) {
	slices.SortStableFunc(spans, func(a, b Span) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.SpanID, b.SpanID)
	})
}

func sortRecentFirst(s []Summary) {
	slices.SortFunc(s, func(a, b Summary) int {
		if c := b.Start.Compare(a.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.TraceID, b.TraceID)
	})
}
