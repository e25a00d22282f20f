package analytics

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// sessionPrefix starts every session record's key in the bucket.
const sessionPrefix = "s."

// ingester applies batches of playback events to the bucket. It reads from
// the shared durable consumer; each replica runs one, and JetStream hands
// every message to one of them at a time.
type ingester struct {
	kv      jetstream.KeyValue
	view    *view
	metrics *kit.Metrics
	// writers bounds the compare-and-set writes in flight per batch.
	writers int
}

// batchMsg is one message of a batch with its decoded fact.
type batchMsg struct {
	msg  jetstream.Msg
	fact fact
}

// apply merges a batch: events are grouped by session, each touched
// session record is written once by compare-and-set, and a message is
// acked only after its session's write succeeded. A message whose write
// failed is nak'ed and comes back; merging it again changes nothing.
func (in *ingester) apply(ctx context.Context, msgs []jetstream.Msg) {
	groups := map[string][]batchMsg{}
	for _, m := range msgs {
		var ev kit.Event
		if err := json.Unmarshal(m.Data(), &ev); err != nil || ev.ID == "" {
			in.count(m.Subject(), "dropped")
			_ = m.Term()
			continue
		}
		f, err := decode(ev)
		if err != nil {
			in.count(m.Subject(), "dropped")
			_ = m.TermWithReason(err.Error())
			continue
		}
		groups[f.session] = append(groups[f.session], batchMsg{msg: m, fact: f})
	}

	work := make(chan string)
	var wg sync.WaitGroup
	for range min(in.writers, len(groups)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for session := range work {
				g := groups[session]
				var delta stat
				for _, bm := range g {
					delta.merge(bm.fact.stat)
				}
				err := in.write(ctx, session, delta)
				for _, bm := range g {
					if err != nil {
						in.count(bm.msg.Subject(), "retry")
						_ = bm.msg.NakWithDelay(time.Second)
						continue
					}
					in.count(bm.msg.Subject(), "ack")
					_ = bm.msg.Ack()
				}
			}
		}()
	}
	for session := range groups {
		work <- session
	}
	close(work)
	wg.Wait()
}

func (in *ingester) count(subject, result string) {
	in.metrics.EventsIn.WithLabelValues(consumerName, subject, result).Inc()
}

// write merges delta into the session's record with compare-and-set,
// starting from the view's cached revision so an uncontended write costs
// one round trip.
func (in *ingester) write(ctx context.Context, session string, delta stat) error {
	key := sessionPrefix + session
	cur, known := in.view.cached(session)
	for attempt := 0; attempt < 20; attempt++ {
		next := cur.stat
		next.Minutes = cloneMinutes(cur.stat.Minutes)
		next.merge(delta)
		if known && equalStat(next, cur.stat) {
			return nil // nothing new: a redelivery
		}
		b, err := json.Marshal(next)
		if err != nil {
			return err
		}
		var rev uint64
		if known {
			rev, err = in.kv.Update(ctx, key, b, cur.rev)
		} else {
			rev, err = in.kv.Create(ctx, key, b)
		}
		if err == nil {
			in.view.apply(session, next, rev)
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return err
		}
		// Another replica wrote first: read its record and merge again.
		e, gerr := in.kv.Get(ctx, key)
		if gerr != nil {
			return gerr
		}
		var s stat
		if err := json.Unmarshal(e.Value(), &s); err != nil {
			return err
		}
		cur, known = entry{stat: s, rev: e.Revision()}, true
	}
	return kit.ErrContention
}

func cloneMinutes(m map[int64]float64) map[int64]float64 {
	if m == nil {
		return nil
	}
	out := make(map[int64]float64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func equalStat(a, b stat) bool {
	if a.Video != b.Video || a.Account != b.Account || a.State != b.State || a.Watched != b.Watched ||
		a.Seq != b.Seq || a.First != b.First || a.Last != b.Last || len(a.Minutes) != len(b.Minutes) {
		return false
	}
	for k, v := range a.Minutes {
		if w, ok := b.Minutes[k]; !ok || w != v {
			return false
		}
	}
	return true
}
