package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/switchboard-dev/switchboard/services/kit/traces"
)

// The trace buffer every service serves on its ops port (services/kit/traces:
// GET /debug/traces and /debug/traces/{traceId}) holds the spans that
// service recorded; the console merges them by trace id with the same
// package, so a trace that crossed five services reads as one.
const tracesPath = "debug/traces"

// Trace list limits of GET /console/api/traces.
const (
	DefaultTraceLimit = 20
	MaxTraceLimit     = 100
	// orderSearchDepth is how many recent traces through order a search by
	// order id opens, newest first.
	orderSearchDepth = 50
)

// opsTargets are the ops base URLs of every instance the console reads:
// the gateway's own (all its peers' when it knows them) and each
// upstream's, each host resolved to all its addresses (one behind a
// Service's virtual IP, every pod behind a headless one).
func (c *console) opsTargets(ctx context.Context) []*url.URL {
	var bases []*url.URL
	switch {
	case c.opts.Peers != nil:
		bases = append(bases, c.opts.Peers)
	case c.opts.SelfOps != nil:
		bases = append(bases, c.opts.SelfOps)
	}
	for _, name := range c.names {
		bases = append(bases, c.g.upstreams[name].ops)
	}
	var out []*url.URL
	for _, b := range bases {
		out = append(out, c.g.instances(ctx, b)...)
	}
	return out
}

// fanOut GETs path (with query) from every target concurrently and hands
// each 200 answer's body to decode; other answers and errors are skipped,
// counted in the returned number of failures.
func (c *console) fanOut(ctx context.Context, targets []*url.URL, path, query string, decode func(json.RawMessage) error) int {
	var mu sync.Mutex
	var wg sync.WaitGroup
	failed := 0
	for _, t := range targets {
		wg.Go(func() {
			u := t.JoinPath(path)
			u.RawQuery = query
			body, err := c.getJSON(ctx, u.String())
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				err = decode(body)
			}
			if err != nil {
				failed++
			}
		})
	}
	wg.Wait()
	return failed
}

// traces lists recent traces, merged by id, newest first.
func (c *console) traces(ctx context.Context, limit int) []traces.Summary {
	var mu sync.Mutex
	var lists []traces.List
	c.fanOut(ctx, c.opsTargets(ctx), tracesPath, "limit="+strconv.Itoa(MaxTraceLimit), func(raw json.RawMessage) error {
		var l traces.List
		if err := json.Unmarshal(raw, &l); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		lists = append(lists, l)
		return nil
	})
	return traces.MergeLists(limit, lists...).Traces
}

// trace gathers one trace's spans from every service, each span once.
func (c *console) trace(ctx context.Context, id string) traces.Trace {
	return c.traceFrom(ctx, c.opsTargets(ctx), id)
}

func (c *console) traceFrom(ctx context.Context, targets []*url.URL, id string) traces.Trace {
	var mu sync.Mutex
	parts := []traces.Trace{{TraceID: id}}
	c.fanOut(ctx, targets, tracesPath+"/"+url.PathEscape(id), "", func(raw json.RawMessage) error {
		var t traces.Trace
		if err := json.Unmarshal(raw, &t); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		parts = append(parts, t)
		return nil
	})
	return traces.Merge(parts...)
}

// tracesOfOrder finds, among the most recent traces, those with a span
// whose attributes name orderID: the saga's spans carry the order's id.
func (c *console) tracesOfOrder(ctx context.Context, orderID string, limit int) []traces.Summary {
	targets := c.opsTargets(ctx)
	var recent []traces.Summary
	for _, t := range c.traces(ctx, MaxTraceLimit) {
		// The console's own reads name no order's saga.
		if !strings.Contains(t.RootName, "/console/") && slices.Contains(t.Services, "order") && len(recent) < orderSearchDepth {
			recent = append(recent, t)
		}
	}
	found := make([]bool, len(recent))
	var wg sync.WaitGroup
	for i, t := range recent {
		wg.Go(func() {
			found[i] = slices.ContainsFunc(c.traceFrom(ctx, targets, t.TraceID).Spans, func(s traces.Span) bool { return names(s, orderID) })
		})
	}
	wg.Wait()
	out := []traces.Summary{}
	for i, t := range recent {
		if found[i] && len(out) < limit {
			out = append(out, t)
		}
	}
	return out
}

// names reports whether one of the span's attribute values is id, or a
// string holding it (an URL path, a key such as "user.order").
func names(s traces.Span, id string) bool {
	for _, v := range s.Attributes {
		if str, ok := v.(string); ok && strings.Contains(str, id) {
			return true
		}
	}
	return false
}

// parseTraceLimit reads the limit of GET /console/api/traces.
func parseTraceLimit(s string) (int, error) {
	if s == "" {
		return DefaultTraceLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxTraceLimit {
		return 0, fmt.Errorf("limit must be between 1 and %d", MaxTraceLimit)
	}
	return n, nil
}

// getJSON GETs u on a plain (ops or monitor) port and answers the body of
// a 200.
func (c *console) getJSON(ctx context.Context, u string) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.plain.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %d", u, resp.StatusCode)
	}
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		return nil, err
	}
	return raw, nil
}
