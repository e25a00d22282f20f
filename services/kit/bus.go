package kit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id. Consumers
// still drop duplicates by event id themselves, because a republish after
// this window (a saga resumed hours later) must not count twice.
const DuplicateWindow = 2 * time.Minute

// Bus is a service's connection to NATS: JetStream, its streams and its KV
// buckets, created idempotently at start so start-up order does not matter.
type Bus struct {
	NC      *nats.Conn
	JS      jetstream.JetStream
	svc     catalog.Service
	log     *slog.Logger
	metrics *Metrics
	streams []string
	buckets map[string]jetstream.KeyValue

	mu        sync.Mutex
	readyAt   time.Time
	readyErr  error
	consumers []jetstream.ConsumeContext
}

// ConnectBus connects to NATS with endless reconnects and ensures the
// streams holding every subject the service publishes or consumes, and its
// buckets. It retries until ctx ends, so a service may start before the
// broker.
func ConnectBus(ctx context.Context, cfg Config, log *slog.Logger, m *Metrics) (*Bus, error) {
	opts := []nats.Option{
		nats.Name("switchboard-" + cfg.Service.Name),
		// Replies come back below the service's own prefix, the only
		// inbox its broker user may subscribe to.
		nats.CustomInboxPrefix(catalog.InboxPrefix(cfg.Service.Name)),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
		// A refused connection (wrong credentials, say) is retried forever;
		// say why each time, or the log shows only "connection closed".
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) { log.Error("nats connection failed", "err", err) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { log.Error("nats error", "err", err) }),
	}
	if cfg.NATSUser != "" {
		opts = append(opts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
	}
	nc, err := nats.Connect(cfg.NATSURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	b := &Bus{NC: nc, JS: js, svc: cfg.Service, log: log, metrics: m, buckets: map[string]jetstream.KeyValue{}}
	for {
		err = b.ensure(ctx, cfg.Service)
		if err == nil {
			return b, nil
		}
		log.Warn("waiting for JetStream", "err", err, "lastNATSError", nc.LastError())
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, fmt.Errorf("nats: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
}

func (b *Bus) ensure(ctx context.Context, svc catalog.Service) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, subj := range slices.Concat(svc.Publishes, svc.Consumes()) {
		st, err := catalog.StreamFor(subj)
		if err != nil {
			return err
		}
		if slices.Contains(b.streams, st.Name) {
			continue
		}
		if _, err := b.JS.CreateOrUpdateStream(ctx, StreamConfig(st)); err != nil {
			return fmt.Errorf("stream %s: %w", st.Name, err)
		}
		b.streams = append(b.streams, st.Name)
	}
	// A bucket the service only reads is created too, with the same
	// settings, so no start-up order between writer and readers matters.
	for _, name := range slices.Concat(svc.Buckets, svc.Reads) {
		if _, ok := b.buckets[name]; ok {
			continue
		}
		cfg, err := BucketConfig(name)
		if err != nil {
			return err
		}
		kv, err := b.JS.CreateOrUpdateKeyValue(ctx, cfg)
		if err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
		b.buckets[name] = kv
	}
	return nil
}

// StreamConfig is the one definition of a catalog stream, so every service
// creating it asks for the same thing and CreateOrUpdate never flip-flops.
func StreamConfig(st catalog.Stream) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       st.Name,
		Subjects:   st.Subjects,
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		MaxAge:     7 * 24 * time.Hour,
		Duplicates: DuplicateWindow,
	}
}

// BucketConfig is the one definition of a catalog bucket, so every service
// using it asks for the same thing.
func BucketConfig(name string) (jetstream.KeyValueConfig, error) {
	bk, err := catalog.BucketFor(name)
	if err != nil {
		return jetstream.KeyValueConfig{}, err
	}
	return jetstream.KeyValueConfig{Bucket: bk.Name, History: 1, Storage: jetstream.FileStorage, TTL: bk.TTL}, nil
}

// Bucket returns one of the service's buckets. It panics on a name missing
// from the catalog entry: that is a programming error caught by any test.
func (b *Bus) Bucket(name string) jetstream.KeyValue {
	kv, ok := b.buckets[name]
	if !ok {
		panic(fmt.Sprintf("kit: bucket %q is not in the catalog entry of %s (Buckets or Reads)", name, b.svc.Name))
	}
	return kv
}

// Ready reports whether NATS is connected and the streams and buckets answer.
// Results are cached for a second so probes stay cheap.
func (b *Bus) Ready(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if time.Since(b.readyAt) < time.Second {
		return b.readyErr
	}
	b.readyErr = b.check(ctx)
	b.readyAt = time.Now()
	return b.readyErr
}

func (b *Bus) check(ctx context.Context) error {
	if !b.NC.IsConnected() {
		return fmt.Errorf("nats %s", b.NC.Status())
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for _, s := range b.streams {
		if _, err := b.JS.Stream(ctx, s); err != nil {
			return fmt.Errorf("stream %s: %w", s, err)
		}
	}
	for name, kv := range b.buckets {
		if _, err := kv.Status(ctx); err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	return nil
}

// Close stops consumers and drains the connection.
func (b *Bus) Close() {
	b.mu.Lock()
	cs := b.consumers
	b.consumers = nil
	b.mu.Unlock()
	for _, c := range cs {
		c.Stop()
	}
	_ = b.NC.Drain()
}

// Event is the envelope of every message on the bus. Type is the NATS
// subject (a catalog constant); Subject, as in CloudEvents, names the entity
// the event is about ("orders/1f3a…").
type Event struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Source  string          `json:"source"`
	Time    time.Time       `json:"time"`
	Subject string          `json:"subject,omitempty"`
	Data    json.RawMessage `json:"data"`
}

// EventID derives a deterministic id, so that a step redone after a crash
// republishes the same event and every dedupe layer recognises it.
func EventID(typ, entity string) string { return typ + ":" + entity }

// Payload is the data of an event: one of the structs of services/events,
// each of which names the subject it is published on.
type Payload interface {
	EventType() string
}

// Publisher sends events; *Bus is one.
type Publisher interface {
	Publish(ctx context.Context, id, subject string, data Payload) error
}

// Publish sends data as an event of its type about subject, with
// Nats-Msg-Id = id. Pass a deterministic id (see EventID). It refuses a type
// missing from the service's catalog row, so the row stays the whole truth
// about what the service publishes.
func (b *Bus) Publish(ctx context.Context, id, subject string, data Payload) error {
	typ := data.EventType()
	if !slices.Contains(b.svc.Publishes, typ) {
		return fmt.Errorf("kit: %s does not publish %s: it is not in its catalog row", b.svc.Name, typ)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	ev := Event{ID: id, Type: typ, Source: b.svc.Name, Time: time.Now().UTC(), Subject: subject, Data: raw}
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = b.JS.Publish(ctx, typ, body, jetstream.WithMsgID(id))
	result := "ok"
	if err != nil {
		result = "error"
	}
	b.metrics.EventsOut.WithLabelValues(typ, result).Inc()
	if err != nil {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	return nil
}

// ErrPermanent marks a handler error that no redelivery can fix; the
// message is terminated instead of retried.
var ErrPermanent = errors.New("permanent")

// ErrDuplicate is what a handler returns when it recognises an event it has
// already applied: the message is acked and counted as a duplicate.
var ErrDuplicate = errors.New("duplicate event")

// Handler processes one event. It must be idempotent by ev.ID: JetStream
// delivers at least once. Return nil to ack, an error to retry with backoff,
// ErrDuplicate when the event was already applied, or an error wrapping
// ErrPermanent to drop the message.
type Handler func(ctx context.Context, ev Event) error

// ConsumerSpec runs one of the service's catalog consumers.
type ConsumerSpec struct {
	// Durable names the consumer in the service's catalog row, which
	// lists its subjects. Replicas of a service share it, so each event is
	// handled by one of them.
	Durable string
	Handler Handler
	// MaxDeliver bounds redelivery (default 8). AckWait is how long a
	// handler may take before redelivery (default 30s).
	MaxDeliver int
	AckWait    time.Duration
}

// CreateConsumer creates (or updates) the service's catalog consumer named
// durable, with the settings of cfg. The name and subjects come from the
// catalog row, the stream from the subjects.
func (b *Bus) CreateConsumer(ctx context.Context, durable string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, ok := b.svc.Consumer(durable)
	if !ok {
		return nil, fmt.Errorf("kit: consumer %q is not in the catalog entry of %s", durable, b.svc.Name)
	}
	st, err := catalog.StreamFor(c.Subjects[0])
	if err != nil {
		return nil, err
	}
	cfg.Durable, cfg.FilterSubjects = c.Durable, c.Subjects
	cons, err := b.JS.CreateOrUpdateConsumer(ctx, st.Name, cfg)
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", durable, err)
	}
	return cons, nil
}

// Consume creates (or updates) one of the service's catalog consumers and
// handles its messages until Close.
func (b *Bus) Consume(ctx context.Context, spec ConsumerSpec) error {
	if spec.Handler == nil {
		return fmt.Errorf("kit: consumer %q needs a handler", spec.Durable)
	}
	if spec.MaxDeliver == 0 {
		spec.MaxDeliver = 8
	}
	if spec.AckWait == 0 {
		spec.AckWait = 30 * time.Second
	}
	cons, err := b.CreateConsumer(ctx, spec.Durable, jetstream.ConsumerConfig{
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       spec.AckWait,
		MaxDeliver:    spec.MaxDeliver,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 1024,
	})
	if err != nil {
		return err
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) { b.handle(ctx, spec, msg) },
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			b.log.Debug("consume", "consumer", spec.Durable, "err", err)
		}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", spec.Durable, err)
	}
	b.mu.Lock()
	b.consumers = append(b.consumers, cc)
	b.mu.Unlock()
	return nil
}

func (b *Bus) handle(ctx context.Context, spec ConsumerSpec, msg jetstream.Msg) {
	count := func(subject, result string) {
		b.metrics.EventsIn.WithLabelValues(spec.Durable, subject, result).Inc()
	}
	var ev Event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil || ev.ID == "" {
		b.log.Error("dropping malformed event", "consumer", spec.Durable, "subject", msg.Subject(), "err", err)
		b.metrics.ConsumerErrors.WithLabelValues(spec.Durable).Inc()
		count(msg.Subject(), "dropped")
		_ = msg.Term()
		return
	}
	hctx, cancel := context.WithTimeout(ctx, spec.AckWait)
	err := spec.Handler(hctx, ev)
	cancel()
	switch {
	case err == nil:
		count(ev.Type, "ack")
		_ = msg.Ack()
	case errors.Is(err, ErrDuplicate):
		count(ev.Type, "duplicate")
		_ = msg.Ack()
	case errors.Is(err, ErrPermanent):
		b.log.Error("dropping event", "consumer", spec.Durable, "event", ev.ID, "err", err)
		b.metrics.ConsumerErrors.WithLabelValues(spec.Durable).Inc()
		count(ev.Type, "dropped")
		_ = msg.TermWithReason(err.Error())
	default:
		b.metrics.ConsumerErrors.WithLabelValues(spec.Durable).Inc()
		count(ev.Type, "retry")
		delay := time.Second
		if md, merr := msg.Metadata(); merr == nil {
			delay = min(time.Duration(md.NumDelivered)*time.Second, 15*time.Second)
			if int(md.NumDelivered) >= spec.MaxDeliver {
				b.log.Error("event exhausted its deliveries", "consumer", spec.Durable, "event", ev.ID, "err", err)
			}
		}
		b.log.Warn("event handler failed; will retry", "consumer", spec.Durable, "event", ev.ID, "err", err)
		_ = msg.NakWithDelay(delay)
	}
}
