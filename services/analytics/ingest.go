package analytics

import (
	"context"
	"encoding/json"
	"errors"
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
	js      jetstream.JetStream
	bus     *kit.Bus
	kv      jetstream.KeyValue
	view    *view
	metrics *kit.Metrics
	// subject is the bucket's write subject prefix ("$KV.<bucket>.").
	subject string
}

// batchMsg is one message of a batch with its decoded fact.
type batchMsg struct {
	msg  jetstream.Msg
	fact fact
}

// write is one session's pending compare-and-set.
type write struct {
	session string
	delta   stat
	next    stat
	msgs    []batchMsg
	ack     jetstream.PubAckFuture
}

// apply merges a batch: events are grouped by session, and each touched
// session record is written once, by compare-and-set against the revision
// the read model holds. The writes are pipelined (published asynchronously
// with Nats-Expected-Last-Subject-Sequence, exactly what KV Update sends),
// so a batch costs one round trip, not one per session. A message is acked
// only after its session's write is stored; a write that lost a race is
// redone with a fresh read; a write that failed is nak'ed and its events
// come back. Merging an event again changes nothing.
func (in *ingester) apply(ctx context.Context, msgs []jetstream.Msg) {
	groups := map[string]*write{}
	var order []*write
	for _, m := range msgs {
		f, err := decodeMsg(m.Data())
		if err != nil {
			// Nothing is dropped: the bus stores it as a dead letter.
			in.bus.DeadLetter(ctx, consumerName, m, kit.ReasonMalformed, err)
			continue
		}
		w := groups[f.session]
		if w == nil {
			w = &write{session: f.session}
			groups[f.session] = w
			order = append(order, w)
		}
		w.delta.merge(f.stat)
		w.msgs = append(w.msgs, batchMsg{msg: m, fact: f})
	}
	var retry []*write
	for _, w := range order {
		cur, known := in.view.cached(w.session)
		w.next = cur.stat
		w.next.Minutes = cloneMinutes(cur.stat.Minutes)
		w.next.merge(w.delta)
		if known && equalStat(w.next, cur.stat) {
			in.done(w, nil) // nothing new: a redelivery
			continue
		}
		b, err := json.Marshal(w.next)
		if err == nil {
			w.ack, err = in.js.PublishAsync(in.subject+sessionPrefix+w.session, b,
				jetstream.WithExpectLastSequencePerSubject(cur.rev), jetstream.WithStallWait(30*time.Second))
		}
		if err != nil {
			retry = append(retry, w)
		}
	}
	for _, w := range order {
		if w.ack == nil {
			continue
		}
		select {
		case ack := <-w.ack.Ok():
			in.view.apply(w.session, w.next, ack.Sequence)
			in.done(w, nil)
		case <-w.ack.Err():
			retry = append(retry, w) // most likely another replica wrote first
		case <-ctx.Done():
			in.done(w, ctx.Err())
		}
	}
	for _, w := range retry {
		in.done(w, in.write(ctx, w.session, w.delta))
	}
}

// done acks (err == nil) or naks the messages of a write.
func (in *ingester) done(w *write, err error) {
	for _, bm := range w.msgs {
		if err != nil {
			in.count(bm.msg.Subject(), "retry")
			_ = bm.msg.NakWithDelay(time.Second)
			continue
		}
		in.count(bm.msg.Subject(), "ack")
		_ = bm.msg.Ack()
	}
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
