package analytics

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// view is this replica's read model of the analytics bucket, fed by a KV
// watch. It holds nothing the bucket does not: a new replica rebuilds it
// from the bucket at start, and two replicas that have caught up hold the
// same figures. It also caches each record's revision so ingest can
// compare-and-set without reading first.
type view struct {
	mu        sync.RWMutex
	sessions  map[string]entry
	watchtime map[string]float64 // account → seconds
	beats     int
	watched   float64
	version   uint64
	changed   chan struct{} // closed and replaced on every change
	synced    chan struct{} // closed once the initial values are in
}

type entry struct {
	stat stat
	rev  uint64
}

func newView() *view {
	return &view{
		sessions: map[string]entry{}, watchtime: map[string]float64{},
		changed: make(chan struct{}), synced: make(chan struct{}),
	}
}

// follow applies the bucket's updates until ctx ends.
func (v *view) follow(ctx context.Context, kv jetstream.KeyValue) error {
	w, err := kv.Watch(ctx, sessionPrefix+"*")
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("analytics: bucket watch ended")
			}
			if e == nil { // end of the initial values
				v.markSynced()
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			session := e.Key()[len(sessionPrefix):]
			if c, ok := v.cached(session); ok && c.rev >= e.Revision() {
				continue // this replica's own write, already applied
			}
			var s stat
			if err := json.Unmarshal(e.Value(), &s); err != nil {
				continue
			}
			v.apply(session, s, e.Revision())
		}
	}
}

func (v *view) markSynced() {
	v.mu.Lock()
	defer v.mu.Unlock()
	select {
	case <-v.synced:
	default:
		close(v.synced)
	}
}

// apply records a session's stat at rev unless a newer one is known.
func (v *view) apply(session string, s stat, rev uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	old, ok := v.sessions[session]
	if ok && old.rev >= rev {
		return
	}
	if ok {
		v.watchtime[old.stat.Account] -= old.stat.Watched
		v.beats -= old.stat.Seq
		v.watched -= old.stat.Watched
	}
	v.sessions[session] = entry{stat: s, rev: rev}
	v.watchtime[s.Account] += s.Watched
	v.beats += s.Seq
	v.watched += s.Watched
	v.version++
	close(v.changed)
	v.changed = make(chan struct{})
}

// cached returns the last known stat and revision of a session.
func (v *view) cached(session string) (entry, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	e, ok := v.sessions[session]
	return e, ok
}

// Changes returns a channel closed at the next change.
func (v *view) changes() <-chan struct{} {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.changed
}

// Live is the answer of GET /live.
type Live struct {
	Total  int            `json:"total"`
	Videos map[string]int `json:"videos"`
}

func (v *view) live(now time.Time, staleAfter time.Duration) Live {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := Live{Videos: map[string]int{}}
	for _, e := range v.sessions {
		if e.stat.live(now, staleAfter) {
			out.Videos[e.stat.Video]++
			out.Total++
		}
	}
	return out
}

// TopItem is one entry of GET /top.
type TopItem struct {
	ContentID  string  `json:"contentId"`
	WatchedSec float64 `json:"watchedSec"`
	Viewers    int     `json:"viewers"`
}

func (v *view) top(now time.Time, window time.Duration, limit int) []TopItem {
	from := now.Add(-window)
	v.mu.RLock()
	byVideo := map[string]*TopItem{}
	for _, e := range v.sessions {
		w := e.stat.watchedIn(from)
		if e.stat.Last < from.UnixMilli() {
			continue
		}
		it := byVideo[e.stat.Video]
		if it == nil {
			it = &TopItem{ContentID: e.stat.Video}
			byVideo[e.stat.Video] = it
		}
		it.WatchedSec += w
		it.Viewers++
	}
	v.mu.RUnlock()
	out := make([]TopItem, 0, len(byVideo))
	for _, it := range byVideo {
		it.WatchedSec = round(it.WatchedSec)
		out = append(out, *it)
	}
	slices.SortFunc(out, func(a, b TopItem) int {
		return cmp.Or(cmp.Compare(b.WatchedSec, a.WatchedSec), cmp.Compare(b.Viewers, a.Viewers), cmp.Compare(a.ContentID, b.ContentID))
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// WatchTime is the answer of GET /accounts/{id}/watchtime.
type WatchTime struct {
	AccountID  string  `json:"accountId"`
	WatchedSec float64 `json:"watchedSec"`
}

func (v *view) watchTime(account string) WatchTime {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return WatchTime{AccountID: account, WatchedSec: round(v.watchtime[account])}
}

// Stats is the answer of GET /stats: totals over every session the bucket
// holds, exact under redelivery.
type Stats struct {
	Sessions   int     `json:"sessions"`
	Heartbeats int     `json:"heartbeats"`
	WatchedSec float64 `json:"watchedSec"`
}

func (v *view) stats() Stats {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return Stats{Sessions: len(v.sessions), Heartbeats: v.beats, WatchedSec: round(v.watched)}
}

// round keeps sums of fractional seconds from showing float noise.
func round(x float64) float64 { return math.Round(x*1000) / 1000 }
