package order

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// Limits of GET /admin/orders.
const (
	DefaultRecentLimit = 20
	MaxRecentLimit     = 200
)

// hiddenFromStaff are fields of an order's record that the staff's list
// leaves out: the customer's e-mail (personal data the list does not need),
// the outbox (events not yet published, whose data carries that e-mail for
// notification) and the hash that guards the Idempotency-Key.
var hiddenFromStaff = []string{"email", "outbox", "requestHash"}

// Recent follows the most recently changed orders of every customer, for
// the staff's list: a watch of the orders bucket, which delivers each
// order's latest value in the order they were last written and then every
// change. Keys carry no time, so listing the bucket could not tell the
// newest orders without reading them all on every call.
//
// The watch starts with the first call and stops after idle without one,
// so a platform nobody looks at pays nothing for it.
type Recent struct {
	kv   jetstream.KeyValue
	idle time.Duration
	keep int

	mu      sync.Mutex
	watch   *recentWatch
	lastUse time.Time
}

type recentWatch struct {
	stop   context.CancelFunc
	synced chan struct{} // closed once the bucket's current values are in
	err    error         // set before done is closed
	done   chan struct{}

	mu      sync.Mutex
	entries map[string]recentEntry
}

type recentEntry struct {
	rev uint64
	raw []byte
}

// NewRecent follows kv's orders; the watch stops after idle without a call.
func NewRecent(kv jetstream.KeyValue, idle time.Duration) *Recent {
	return &Recent{kv: kv, idle: idle, keep: MaxRecentLimit}
}

// List answers the limit most recently changed orders, newest first, each
// as the record's JSON fields less hiddenFromStaff: whatever steps the saga
// records show up as they are.
func (r *Recent) List(ctx context.Context, limit int) ([]map[string]any, error) {
	w, err := r.watching()
	if err != nil {
		return nil, err
	}
	select {
	case <-w.synced:
	case <-w.done:
		return nil, w.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	w.mu.Lock()
	all := make([]recentEntry, 0, len(w.entries))
	for _, e := range w.entries {
		all = append(all, e)
	}
	w.mu.Unlock()
	slices.SortFunc(all, func(a, b recentEntry) int { return cmp.Compare(b.rev, a.rev) })
	out := make([]map[string]any, 0, min(limit, len(all)))
	for _, e := range all[:min(limit, len(all))] {
		var m map[string]any
		if err := json.Unmarshal(e.raw, &m); err != nil {
			continue // not an order; nothing staff can act on
		}
		for _, k := range hiddenFromStaff {
			delete(m, k)
		}
		out = append(out, m)
	}
	return out, nil
}

// watching returns the running watch, starting one if none runs.
func (r *Recent) watching() (*recentWatch, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastUse = time.Now()
	if r.watch != nil {
		select {
		case <-r.watch.done:
			r.watch = nil // it failed: try again
		default:
			return r.watch, nil
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	kw, err := r.kv.WatchAll(ctx)
	if err != nil {
		stop()
		return nil, err
	}
	w := &recentWatch{stop: stop, synced: make(chan struct{}), done: make(chan struct{}), entries: map[string]recentEntry{}}
	r.watch = w
	go r.run(ctx, w, kw)
	return w, nil
}

// run feeds w from kw until ctx ends, the watch fails, or nobody has asked
// for idle.
func (r *Recent) run(ctx context.Context, w *recentWatch, kw jetstream.KeyWatcher) {
	defer close(w.done)
	defer func() { _ = kw.Stop() }()
	check := time.NewTicker(max(r.idle/4, 10*time.Millisecond))
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			w.err = ctx.Err()
			return
		case <-check.C:
			r.mu.Lock()
			idle := time.Since(r.lastUse) > r.idle
			if idle && r.watch == w {
				r.watch = nil
			}
			r.mu.Unlock()
			if idle {
				w.err = errors.New("order: the recent orders' watch stopped, idle")
				w.stop()
				return
			}
		case e, ok := <-kw.Updates():
			if !ok {
				w.err = errors.New("order: the orders bucket's watch ended")
				return
			}
			if e == nil { // every current value is in
				close(w.synced)
				continue
			}
			w.mu.Lock()
			if e.Operation() == jetstream.KeyValuePut {
				w.entries[e.Key()] = recentEntry{rev: e.Revision(), raw: e.Value()}
				if len(w.entries) > 2*r.keep {
					w.trim(r.keep)
				}
			} else {
				delete(w.entries, e.Key())
			}
			w.mu.Unlock()
		}
	}
}

// trim keeps the keep newest entries. The caller holds w.mu.
func (w *recentWatch) trim(keep int) {
	revs := make([]uint64, 0, len(w.entries))
	for _, e := range w.entries {
		revs = append(revs, e.rev)
	}
	slices.Sort(revs)
	oldest := revs[len(revs)-keep]
	for k, e := range w.entries {
		if e.rev < oldest {
			delete(w.entries, k)
		}
	}
}

// ParseRecentLimit reads GET /admin/orders' limit.
func ParseRecentLimit(s string) (int, error) {
	if s == "" {
		return DefaultRecentLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxRecentLimit {
		return 0, kit.Invalid("limit", "limit must be between 1 and %d", MaxRecentLimit)
	}
	return n, nil
}

func (s *service) adminOrders(w http.ResponseWriter, r *http.Request) {
	limit, err := ParseRecentLimit(r.URL.Query().Get("limit"))
	if err != nil {
		kit.WriteError(w, r, err)
		return
	}
	items, err := s.recent.List(r.Context(), limit)
	kit.Reply(w, r, http.StatusOK, map[string]any{"items": items}, err)
}
