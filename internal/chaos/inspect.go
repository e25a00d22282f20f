package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/order"
)

// The records the checks read, decoded from the services' buckets. The
// API shapes (events.Order, events.Payment) are exported; the saga and
// stock bookkeeping is not, so it is decoded here into fields of our own,
// each a pointer or nil-able so a field the code does not have yet reads
// as missing rather than as zero.

// orderRec is a record of the orders bucket.
type orderRec struct {
	events.Order
	// Step is the saga's next step ("done" once nothing is left), Outbox
	// the events still to publish; Owed is the compensation still to do
	// on records from before the saga had steps.
	Step   string          `json:"step"`
	Owed   []string        `json:"owed"`
	Outbox json.RawMessage `json:"outbox"`
	raw    json.RawMessage
}

// settled: final, its saga done, nothing owed and nothing left to publish.
// A status is final as soon as the saga decides it; the compensation after
// a cancellation (release, refund) and its order.cancelled come later, so
// the status alone does not say the saga has finished.
func (o orderRec) settled() bool {
	return finalStatus(o.Status) && (o.Step == "" || o.Step == order.StepDone) && len(o.Owed) == 0 && emptyJSON(o.Outbox)
}

func emptyJSON(r json.RawMessage) bool {
	s := strings.TrimSpace(string(r))
	return s == "" || s == "null" || s == "[]" || s == "{}"
}

// stockRec is a product's record of the stock bucket.
type stockRec struct {
	Available *int64           `json:"available"`
	Reserved  *int64           `json:"reserved"`
	Sold      *int64           `json:"sold"`
	Restocked *int64           `json:"restocked"`
	Active    map[string]int64 `json:"active"`
	raw       json.RawMessage
}

// reservationRec is a reservation record of the stock bucket
// (res.<product>.<order>), while product keeps them apart.
type reservationRec struct {
	ProductID string `json:"productId"`
	OrderID   string `json:"orderId"`
	Quantity  int64  `json:"quantity"`
	State     string `json:"state"`
}

// pointsRec is a balance of the user-points bucket; Applied holds the ids
// of the order.confirmed events credited.
type pointsRec struct {
	UserID  string   `json:"userId"`
	Points  int64    `json:"points"`
	Applied []string `json:"applied"`
}

// UnmarshalJSON reads the credits as user stores them, {"id", "at"}
// each, or as bare ids (balances written before credits had a time).
func (p *pointsRec) UnmarshalJSON(b []byte) error {
	var raw struct {
		UserID  string            `json:"userId"`
		Points  int64             `json:"points"`
		Applied []json.RawMessage `json:"applied"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*p = pointsRec{UserID: raw.UserID, Points: raw.Points}
	for _, c := range raw.Applied {
		var id string
		if json.Unmarshal(c, &id) != nil {
			var obj struct{ ID string }
			if err := json.Unmarshal(c, &obj); err != nil {
				return fmt.Errorf("credit %s: %w", c, err)
			}
			id = obj.ID
		}
		p.Applied = append(p.Applied, id)
	}
	return nil
}

// notificationRec is a record of the notifications bucket.
type notificationRec struct {
	ID      string `json:"id"`
	UserID  string `json:"userId"`
	Event   string `json:"event"`
	EventID string `json:"eventId"`
	Status  string `json:"status"` // absent before records had one: sent
}

// consumerLag is a durable consumer's backlog, and where it stands in its
// stream: the last message it was given and the floor below which every
// one is acknowledged.
type consumerLag struct {
	Pending, AckPending int
	Delivered, AckFloor uint64 // stream sequences
	Err                 string
}

func (l consumerLag) String() string {
	if l.Err != "" {
		return "error: " + l.Err
	}
	return fmt.Sprintf("delivered up to %d, acknowledged up to %d, %d not delivered yet, %d awaiting an ack",
		l.Delivered, l.AckFloor, l.Pending, l.AckPending)
}

// snapshot is every store the checks read, at one moment.
type snapshot struct {
	Orders        map[string]orderRec       // by order id
	Payments      map[string]events.Payment // by key (the order id)
	Stock         map[string]stockRec       // by product id
	Reservations  map[string]reservationRec // by key
	Points        map[string]pointsRec      // by user id
	Notifications []notificationRec
	Consumers     map[string]consumerLag // by durable
	// DeadLetters are the events commerce consumers gave up on; nil when
	// the code has no dead-letter stream.
	DeadLetters []string
	// Consistent: nothing was written to the streams and buckets read, and
	// no consumer moved, while the snapshot was taken, so it shows one
	// moment and not a mix of two.
	Consistent bool
}

// readBuckets are the buckets a snapshot reads.
var readBuckets = []string{"orders", "payments", "stock", "user-points", "notifications"}

// stores reads the buckets as the broker's administrative user, which
// every rendered nats.conf has (the single user today; the route
// credentials beside the per-service users once those land).
type stores struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func connectStores(url, user, password string) (*stores, error) {
	nc, err := nats.Connect(url, nats.UserInfo(user, password), nats.Name("chaos-harness"),
		nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &stores{nc: nc, js: js}, nil
}

func (s *stores) Close() { s.nc.Close() }

// entries returns the latest value of every key of a catalog bucket.
func (s *stores) entries(ctx context.Context, bucket string) (map[string][]byte, error) {
	b, err := catalog.BucketFor(bucket)
	if err != nil {
		return nil, err
	}
	kv, err := s.js.KeyValue(ctx, b.Name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return map[string][]byte{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", bucket, err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", bucket, err)
	}
	defer func() { _ = w.Stop() }()
	out := map[string][]byte{}
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("bucket %s: watcher closed", bucket)
			}
			if e == nil {
				return out, nil // the initial values are in
			}
			out[e.Key()] = e.Value()
		case <-ctx.Done():
			return nil, fmt.Errorf("bucket %s: %w", bucket, ctx.Err())
		}
	}
}

// read takes a snapshot of every store, retrying while the broker is
// coming back.
func (s *stores) read(ctx context.Context) (*snapshot, error) {
	var last error
	for range 20 {
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		snap, err := s.readOnce(rctx)
		cancel()
		if err == nil {
			return snap, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, last
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil, last
}

// version is where every stream and consumer a snapshot reads stands.
func (s *stores) version(ctx context.Context) (string, error) {
	var b strings.Builder
	names := []string{catalog.DeadLetterStream}
	for _, st := range catalog.Streams {
		names = append(names, st.Name)
	}
	for _, bk := range readBuckets {
		names = append(names, "KV_"+bk)
	}
	for _, name := range names {
		st, err := s.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		info, err := st.Info(ctx)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s:%d ", name, info.State.LastSeq)
	}
	for _, svc := range catalog.ForWorkloads(catalog.Commerce) {
		for _, c := range svc.Consumers {
			st, err := catalog.StreamFor(c.Subjects[0])
			if err != nil {
				return "", err
			}
			cons, err := s.js.Consumer(ctx, st.Name, c.Durable)
			if err != nil {
				fmt.Fprintf(&b, "%s:%v ", c.Durable, err)
				continue
			}
			info, err := cons.Info(ctx)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "%s:%d/%d/%d/%d ", c.Durable, info.Delivered.Stream, info.AckFloor.Stream, info.NumAckPending, info.NumPending)
		}
	}
	return b.String(), nil
}

func (s *stores) readOnce(ctx context.Context) (*snapshot, error) {
	before, err := s.version(ctx)
	if err != nil {
		return nil, err
	}
	snap, err := s.readAll(ctx)
	if err != nil {
		return nil, err
	}
	after, err := s.version(ctx)
	if err != nil {
		return nil, err
	}
	snap.Consistent = before == after
	return snap, nil
}

func (s *stores) readAll(ctx context.Context) (*snapshot, error) {
	snap := &snapshot{Orders: map[string]orderRec{}, Payments: map[string]events.Payment{}, Stock: map[string]stockRec{},
		Reservations: map[string]reservationRec{}, Points: map[string]pointsRec{}, Consumers: map[string]consumerLag{}}
	decode := func(bucket, key string, raw []byte, v any) error {
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("%s/%s: %w", bucket, key, err)
		}
		return nil
	}
	es, err := s.entries(ctx, "orders")
	if err != nil {
		return nil, err
	}
	for k, raw := range es {
		var o orderRec
		if err := decode("orders", k, raw, &o); err != nil {
			return nil, err
		}
		o.raw = raw
		snap.Orders[o.ID] = o
	}
	if es, err = s.entries(ctx, "payments"); err != nil {
		return nil, err
	}
	for k, raw := range es {
		var p events.Payment
		if err := decode("payments", k, raw, &p); err != nil {
			return nil, err
		}
		snap.Payments[k] = p
	}
	if es, err = s.entries(ctx, "stock"); err != nil {
		return nil, err
	}
	for k, raw := range es {
		if strings.HasPrefix(k, "res.") {
			var r reservationRec
			if err := decode("stock", k, raw, &r); err != nil {
				return nil, err
			}
			snap.Reservations[k] = r
			continue
		}
		var st stockRec
		if err := decode("stock", k, raw, &st); err != nil {
			return nil, err
		}
		st.raw = raw
		snap.Stock[k] = st
	}
	if es, err = s.entries(ctx, "user-points"); err != nil {
		return nil, err
	}
	for k, raw := range es {
		var p pointsRec
		if err := decode("user-points", k, raw, &p); err != nil {
			return nil, err
		}
		snap.Points[k] = p
	}
	if es, err = s.entries(ctx, "notifications"); err != nil {
		return nil, err
	}
	for k, raw := range es {
		var n notificationRec
		if err := decode("notifications", k, raw, &n); err != nil {
			return nil, err
		}
		snap.Notifications = append(snap.Notifications, n)
	}
	for _, svc := range catalog.ForWorkloads(catalog.Commerce) {
		for _, c := range svc.Consumers {
			snap.Consumers[c.Durable] = s.lag(ctx, c)
		}
	}
	if snap.DeadLetters, err = s.deadLetters(ctx); err != nil {
		return nil, err
	}
	return snap, nil
}

// deadLetters lists the dead-letter stream's messages: the original
// event id, the consumer that gave up, why and the last error.
func (s *stores) deadLetters(ctx context.Context) ([]string, error) {
	st, err := s.js.Stream(ctx, catalog.DeadLetterStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", catalog.DeadLetterStream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	out := []string{}
	if info.State.Msgs == 0 {
		return out, nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		h := m.Header
		out = append(out, fmt.Sprintf("%s: event %s (%s from %s) %s after %s deliveries: %s", m.Subject,
			h.Get("Dlq-Msg-Id"), h.Get("Dlq-Subject"), h.Get("Dlq-Stream"), h.Get("Dlq-Reason"), h.Get("Dlq-Deliveries"), h.Get("Dlq-Error")))
	}
	return out, nil
}

func (s *stores) lag(ctx context.Context, c catalog.Consumer) consumerLag {
	st, err := catalog.StreamFor(c.Subjects[0])
	if err != nil {
		return consumerLag{Err: err.Error()}
	}
	cons, err := s.js.Consumer(ctx, st.Name, c.Durable)
	if err != nil {
		return consumerLag{Err: err.Error()}
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return consumerLag{Err: err.Error()}
	}
	return consumerLag{Pending: int(info.NumPending), AckPending: info.NumAckPending,
		Delivered: info.Delivered.Stream, AckFloor: info.AckFloor.Stream}
}

// stockWatch checks the stock invariant at every revision of a product's
// stock record it sees while the run goes on, not only at the end.
type stockWatch struct {
	initial map[string]int64 // by product id

	mu         sync.Mutex
	revisions  int
	violations []string
}

// watch follows the stock bucket's product records until ctx ends,
// starting over whenever the watch breaks (a broker restart).
func (w *stockWatch) watch(ctx context.Context, s *stores) {
	b, _ := catalog.BucketFor("stock")
	for ctx.Err() == nil {
		w.follow(ctx, s, b.Name)
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (w *stockWatch) follow(ctx context.Context, s *stores, bucket string) {
	kv, err := s.js.KeyValue(ctx, bucket)
	if err != nil {
		return
	}
	// Product records are single-token keys; reservations are res.<p>.<o>.
	kw, err := kv.Watch(ctx, "*", jetstream.IgnoreDeletes())
	if err != nil {
		return
	}
	defer func() { _ = kw.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-kw.Updates():
			if !ok {
				return
			}
			if e != nil {
				w.check(e.Key(), e.Revision(), e.Value())
			}
		}
	}
}

func (w *stockWatch) check(key string, rev uint64, raw []byte) {
	initial, ours := w.initial[key]
	if !ours {
		return
	}
	var st stockRec
	if err := json.Unmarshal(raw, &st); err != nil {
		w.note(fmt.Sprintf("product %s rev %d: undecodable stock record: %v", key, rev, err))
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.revisions++
	if msg := conservation(key, st, initial); msg != "" {
		w.violations = append(w.violations, fmt.Sprintf("rev %d: %s", rev, msg))
	}
}

func (w *stockWatch) note(s string) {
	w.mu.Lock()
	w.violations = append(w.violations, s)
	w.mu.Unlock()
}

// conservation checks available + reserved + sold = initial + restocked on
// one stock record; it returns the violation, or "" when it holds or a
// field it needs is missing (see conservationCheckable).
func conservation(productID string, st stockRec, initial int64) string {
	if st.Available == nil || st.Reserved == nil || st.Sold == nil {
		return ""
	}
	var restocked int64
	if st.Restocked != nil {
		restocked = *st.Restocked
	}
	if got, want := *st.Available+*st.Reserved+*st.Sold, initial+restocked; got != want {
		return fmt.Sprintf("product %s: available %d + reserved %d + sold %d = %d, want initial %d + restocked %d = %d",
			productID, *st.Available, *st.Reserved, *st.Sold, got, initial, restocked, want)
	}
	return ""
}

func (w *stockWatch) result() (int, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.revisions, append([]string(nil), w.violations...)
}

// eventLine is one event about an order, for evidence.
type eventLine struct {
	Time    time.Time
	Type    string
	Source  string
	Status  string // the status the event's data carries, if any
	ErrCode string
	Stream  string // where it is stored, at sequence Seq
	Seq     uint64
}

func (e eventLine) String() string {
	out := fmt.Sprintf("%s %s from %s, %s #%d", e.Time.Format("15:04:05.000"), e.Type, e.Source, e.Stream, e.Seq)
	if e.Status != "" {
		out += " status=" + e.Status
	}
	if e.ErrCode != "" {
		out += " error=" + e.ErrCode
	}
	return out
}

// events reads the order and payment streams whole and indexes their
// events by order id: what was announced, when, and by which service.
func (s *stores) events(ctx context.Context) (map[string][]eventLine, error) {
	out := map[string][]eventLine{}
	for _, name := range []string{"ORDERS", "PAYMENTS"} {
		st, err := s.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		info, err := st.Info(ctx)
		if err != nil {
			return nil, err
		}
		if info.State.Msgs == 0 {
			continue
		}
		cons, err := s.js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return nil, err
		}
		for seen := uint64(0); seen < info.State.Msgs; {
			batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
			if err != nil {
				return nil, err
			}
			n := 0
			for m := range batch.Messages() {
				n++
				var ev struct {
					Type   string    `json:"type"`
					Source string    `json:"source"`
					Time   time.Time `json:"time"`
					Data   struct {
						ID      string `json:"id"`
						OrderID string `json:"orderId"`
						Status  string `json:"status"`
						Error   *struct {
							Code string `json:"code"`
						} `json:"error"`
					} `json:"data"`
				}
				if json.Unmarshal(m.Data(), &ev) != nil {
					continue
				}
				id := ev.Data.OrderID
				if id == "" {
					id = ev.Data.ID
				}
				l := eventLine{Time: ev.Time, Type: ev.Type, Source: ev.Source, Status: ev.Data.Status, Stream: name}
				if md, err := m.Metadata(); err == nil {
					l.Seq = md.Sequence.Stream
				}
				if ev.Data.Error != nil {
					l.ErrCode = ev.Data.Error.Code
				}
				out[id] = append(out[id], l)
			}
			if batch.Error() != nil && !errors.Is(batch.Error(), nats.ErrTimeout) {
				return nil, batch.Error()
			}
			if n == 0 {
				break
			}
			seen += uint64(n)
		}
	}
	for id := range out {
		slices.SortFunc(out[id], func(a, b eventLine) int { return a.Time.Compare(b.Time) })
	}
	return out, nil
}
