// Package analytics turns playback events into live figures: concurrent
// viewers per video, the most watched videos in a sliding window, watch
// time per account, pushed as Server-Sent Events and exposed to Prometheus.
//
// # How replicas share the work and agree
//
// Every replica pulls from one shared durable consumer ("analytics") on the
// PLAYBACK stream, so JetStream hands each event to one replica at a time;
// an unacked event (its replica died) is redelivered to whichever pulls
// next. A replica applies events in batches: it groups a batch by session,
// merges each group into that session's record in the analytics bucket
// ("s.<sessionId>") with one compare-and-set write, and acks the group's
// messages after the write.
//
// A session record is a small state that merges by max: state (active <
// ended), cumulative watch time, highest heartbeat number, last event time,
// and cumulative watch time per minute. Merging is idempotent and
// commutative, so a redelivered or republished event, or two replicas
// writing the same session in either order, can never count twice: the
// record simply does not change (and the write is skipped). No event-id
// table is needed, and the records are the only state.
//
// Each replica follows the bucket with a KV watch and derives its answers
// from the records: /live counts active sessions heard from within
// LIVE_STALE_AFTER (default 45s, a safety net should a stop never be
// published), /top sums the watch time each session accrued in the window,
// watch time sums an account's sessions. Two replicas that have caught up
// with the bucket — milliseconds behind — give the same answers; a new
// replica loads every record before it reports ready. The watch also feeds
// /live/stream, so figures are pushed from events, not polled.
//
// Known limit: session records are kept forever; a compaction folding
// finished sessions into per-account totals is future work.
package analytics

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// consumerName is the catalog consumer all replicas share.
const consumerName = "analytics"

// Options tune the ingest loop.
type Options struct {
	// Batch is the most messages applied together; BatchWait how long to
	// wait for a batch to fill once it has one message.
	Batch     int
	BatchWait time.Duration
	// StaleAfter drops an active session from /live when it has been
	// silent this long.
	StaleAfter time.Duration
}

// Analytics is the service's logic: the ingest loop and the read model.
type Analytics struct {
	bus  *kit.Bus
	kv   jetstream.KeyValue
	view *view
	in   *ingester
	opts Options
	now  func() time.Time
}

// NewAnalytics refuses nil dependencies.
func NewAnalytics(bus *kit.Bus, m *kit.Metrics, o Options) (*Analytics, error) {
	if bus == nil || m == nil {
		return nil, errors.New("analytics: NewAnalytics needs the bus and metrics")
	}
	kv := bus.Bucket("analytics")
	if o.Batch <= 0 || o.BatchWait <= 0 || o.StaleAfter <= 0 {
		return nil, errors.New("analytics: options must be positive")
	}
	v := newView()
	a := &Analytics{bus: bus, kv: kv, view: v, opts: o, now: time.Now,
		in: &ingester{js: bus.JS, bus: bus, kv: kv, view: v, metrics: m, subject: "$KV." + kv.Bucket() + "."}}
	m.Registry.MustRegister(&liveCollector{a: a})
	return a, nil
}

// Follow starts the read model and waits until it holds every record.
func (a *Analytics) Follow(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- a.view.follow(ctx, a.kv) }()
	select {
	case <-a.view.synced:
		go func() {
			if err := <-errc; err != nil {
				kit.Logger(ctx).Error("analytics view stopped", "err", err)
			}
		}()
		return nil
	case err := <-errc:
		return fmt.Errorf("analytics: following the bucket: %v", err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ingest consumes playback events in batches until ctx ends.
func (a *Analytics) Ingest(ctx context.Context) error {
	cons, err := a.bus.CreateConsumer(ctx, consumerName, jetstream.ConsumerConfig{
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   30 * time.Second,
		// Never give up on an event: the figures must be exact, and a
		// write can only fail while the broker is unreachable.
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 16 * a.opts.Batch,
	})
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * a.opts.Batch))
	if err != nil {
		return err
	}
	// On shutdown the bus drains the iterator: no more pulls, and what it
	// holds is applied while ctx is still alive, so no delivery is spent.
	done := a.bus.Track(it.Drain)
	defer done()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	batch := make([]jetstream.Msg, 0, a.opts.Batch)
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			kit.Logger(ctx).Debug("analytics consume", "err", err)
			continue
		}
		batch = append(batch[:0], m)
		for len(batch) < a.opts.Batch {
			m, err := it.Next(jetstream.NextMaxWait(a.opts.BatchWait))
			if err != nil {
				break
			}
			batch = append(batch, m)
		}
		a.in.apply(ctx, batch)
	}
}

// Live is the current concurrent viewers per video.
func (a *Analytics) Live() Live { return a.view.live(a.now(), a.opts.StaleAfter) }

// Top is the most watched videos over the last window.
func (a *Analytics) Top(window time.Duration, limit int) []TopItem {
	return a.view.top(a.now(), window, limit)
}

// WatchTime is an account's total watch time.
func (a *Analytics) WatchTime(account string) WatchTime { return a.view.watchTime(account) }

// Stats are totals over every session.
func (a *Analytics) Stats() Stats { return a.view.stats() }

// liveCollector exposes the viewer gauges, computed at scrape time from the
// same read model /live answers from.
type liveCollector struct{ a *Analytics }

var (
	liveDesc  = prometheus.NewDesc("switchboard_analytics_live_viewers", "Concurrent viewers per video.", []string{"video"}, nil)
	totalDesc = prometheus.NewDesc("switchboard_analytics_live_viewers_total", "Concurrent viewers over all videos.", nil, nil)
)

func (c *liveCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- liveDesc
	ch <- totalDesc
}

func (c *liveCollector) Collect(ch chan<- prometheus.Metric) {
	l := c.a.Live()
	for v, n := range l.Videos {
		ch <- prometheus.MustNewConstMetric(liveDesc, prometheus.GaugeValue, float64(n), v)
	}
	ch <- prometheus.MustNewConstMetric(totalDesc, prometheus.GaugeValue, float64(l.Total))
}
