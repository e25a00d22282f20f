package kit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id. Consumers
// still drop duplicates by event id themselves, because a republish after
// this window (a saga resumed hours later) must not count twice.
const DuplicateWindow = 2 * time.Minute

// Bus is a service's connection to NATS: JetStream, its streams and its KV
// buckets. Each stream and bucket has one owner (catalog.StreamOwner,
// BucketOwner), which creates and updates it at start; the other services
// using it wait, not ready, until it exists, so start-up order does not
// matter and no other service may change it.
type Bus struct {
	NC      *nats.Conn
	JS      jetstream.JetStream
	svc     catalog.Service
	log     *slog.Logger
	metrics *Metrics
	limits  Limits
	// tracing traces publishes and consumers; nil traces nothing.
	tracing *Tracing
	// running are the platform's broker services (Config.BrokerServices);
	// nil means the service owns everything it uses.
	running []string
	streams []string
	buckets map[string]jetstream.KeyValue
	// owed are the config updates the broker refused so far (more replicas
	// than servers have joined, say), retried in the background.
	owed map[string]func(context.Context) error
	done chan struct{}

	mu        sync.Mutex
	readyAt   time.Time
	readyErr  error
	consumers []jetstream.ConsumeContext
	tracked   []tracked
	stopping  bool
	// abandoned is set when consumers did not drain in time: messages still
	// buffered are left for redelivery rather than handled with a
	// cancelled context.
	abandoned atomic.Bool
	closeOnce sync.Once
	// connClosed is closed once the connection is, its drain done.
	connClosed chan struct{}
}

// Limits are the broker-wide inputs of every stream's and bucket's config.
type Limits struct {
	// BrokerReplicas is the broker's server count; streams and buckets
	// keep catalog.StreamReplicas of it.
	BrokerReplicas int
	// StoreBytes is each server's JetStream store; 0 means no byte limits.
	StoreBytes int64
}

// ConnectBus connects to NATS with endless reconnects, creates or updates
// the streams and buckets the service owns, and waits for the others it
// uses (those holding every subject it publishes or consumes, and the
// buckets it writes or reads) to exist. It retries until ctx ends, so a
// service may start before the broker and before the owners of its
// streams; until it returns, the service is not ready.
func ConnectBus(ctx context.Context, cfg Config, log *slog.Logger, m *Metrics) (*Bus, error) {
	connClosed := make(chan struct{})
	var closeOnce sync.Once
	opts := []nats.Option{
		nats.ClosedHandler(func(*nats.Conn) { closeOnce.Do(func() { close(connClosed) }) }),
		nats.DrainTimeout(catalog.BrokerDrainTimeout),
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
	b := &Bus{NC: nc, JS: js, svc: cfg.Service, log: log, metrics: m, buckets: map[string]jetstream.KeyValue{},
		limits:  Limits{BrokerReplicas: cfg.BrokerReplicas, StoreBytes: cfg.BrokerStoreBytes},
		running: cfg.BrokerServices,
		owed:    map[string]func(context.Context) error{}, done: make(chan struct{}), connClosed: connClosed}
	// Services of a platform start together, and those waiting for an
	// owner's streams look again soon, then less often.
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		err = b.ensure(ctx, cfg.Service)
		if err == nil {
			if len(b.owed) > 0 {
				go b.settle(b.owed)
			}
			return b, nil
		}
		if errors.Is(err, errWaitingForOwners) {
			log.Info("waiting for the owners of its streams and buckets", "err", err)
		} else {
			log.Warn("waiting for JetStream", "err", err, "lastNATSError", nc.LastError())
		}
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, fmt.Errorf("nats: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

// errWaitingForOwners says that the streams and buckets the service owns
// exist, and some it does not own do not yet.
var errWaitingForOwners = errors.New("waiting for their owners to create")

// ownsStream and ownsBucket say whether the service creates and updates
// a stream or bucket, or only waits for it.
func (b *Bus) ownsStream(name string) bool {
	owner, _ := catalog.StreamOwner(name, b.running)
	return b.running == nil || owner == b.svc.Name
}

func (b *Bus) ownsBucket(name string) bool {
	owner, _ := catalog.BucketOwner(name, b.running)
	return b.running == nil || owner == b.svc.Name
}

// ensure makes what the service owns first, so that no two services wait
// for each other, then looks for the rest: a stream or bucket it does not
// own is only read (its info), never created or updated, and until it
// exists ensure fails, naming what it waits for.
func (b *Bus) ensure(ctx context.Context, svc catalog.Service) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	streams, err := svc.Streams()
	if err != nil {
		return err
	}
	buckets := slices.Concat(svc.Buckets, svc.Reads)
	for _, st := range streams {
		if slices.Contains(b.streams, st.Name) || !b.ownsStream(st.Name) {
			continue
		}
		if err := b.ensureStream(ctx, StreamConfig(st, b.limits)); err != nil {
			return err
		}
		b.streams = append(b.streams, st.Name)
	}
	for _, name := range buckets {
		if _, ok := b.buckets[name]; ok || !b.ownsBucket(name) {
			continue
		}
		cfg, err := BucketConfig(name, b.limits)
		if err != nil {
			return err
		}
		kv, err := b.ensureBucket(ctx, cfg)
		if err != nil {
			return err
		}
		b.buckets[name] = readFromLeader(b.NC, kv)
	}

	var missing []string
	for _, st := range streams {
		if slices.Contains(b.streams, st.Name) {
			continue
		}
		switch _, err := b.JS.Stream(ctx, st.Name); {
		case err == nil:
			b.streams = append(b.streams, st.Name)
		case errors.Is(err, jetstream.ErrStreamNotFound):
			owner, _ := catalog.StreamOwner(st.Name, b.running)
			missing = append(missing, fmt.Sprintf("stream %s (owner %s)", st.Name, owner))
		default:
			return fmt.Errorf("stream %s: %w", st.Name, err)
		}
	}
	for _, name := range buckets {
		if _, ok := b.buckets[name]; ok {
			continue
		}
		switch kv, err := b.JS.KeyValue(ctx, name); {
		case err == nil:
			b.buckets[name] = readFromLeader(b.NC, kv)
		case errors.Is(err, jetstream.ErrBucketNotFound):
			owner, _ := catalog.BucketOwner(name, b.running)
			missing = append(missing, fmt.Sprintf("bucket %s (owner %s)", name, owner))
		default:
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w %s", errWaitingForOwners, strings.Join(missing, ", "))
	}
	return nil
}

// ensureStream creates the stream, or updates it to cfg. When the broker
// refuses the update (more replicas than servers have joined yet, while
// the broker scales up) the stream as it is still serves: the update is
// owed and retried in the background, so the service starts and keeps
// working on the current replicas. A stream that does not exist yet and
// cannot have its replicas is created with one, and grown later.
func (b *Bus) ensureStream(ctx context.Context, cfg jetstream.StreamConfig) error {
	update := func(ctx context.Context) error {
		_, err := b.JS.CreateOrUpdateStream(ctx, cfg)
		return err
	}
	err := update(ctx)
	if err == nil {
		return nil
	}
	if _, serr := b.JS.Stream(ctx, cfg.Name); serr == nil {
		b.owe("stream "+cfg.Name, update, err)
		return nil
	}
	if cfg.Replicas > 1 {
		one := cfg
		one.Replicas = 1
		if _, cerr := b.JS.CreateStream(ctx, one); cerr == nil {
			b.owe("stream "+cfg.Name, update, err)
			return nil
		}
	}
	return fmt.Errorf("stream %s: %w", cfg.Name, err)
}

// ensureBucket is ensureStream for a bucket: its stream KV_<bucket> is
// updated in place the same way.
func (b *Bus) ensureBucket(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	update := func(ctx context.Context) error {
		_, err := b.JS.CreateOrUpdateKeyValue(ctx, cfg)
		return err
	}
	kv, err := b.JS.CreateOrUpdateKeyValue(ctx, cfg)
	if err == nil {
		return kv, nil
	}
	if kv, kerr := b.JS.KeyValue(ctx, cfg.Bucket); kerr == nil {
		b.owe("bucket "+cfg.Bucket, update, err)
		return kv, nil
	}
	if cfg.Replicas > 1 {
		one := cfg
		one.Replicas = 1
		if kv, cerr := b.JS.CreateKeyValue(ctx, one); cerr == nil {
			b.owe("bucket "+cfg.Bucket, update, err)
			return kv, nil
		}
	}
	return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
}

func (b *Bus) owe(what string, update func(context.Context) error, err error) {
	b.log.Warn("the broker refused a config update; serving on the current one and retrying in the background",
		"what", what, "replicas", catalog.StreamReplicas(b.limits.BrokerReplicas), "err", err)
	b.owed[what] = update
}

// settle retries the owed updates until each succeeds or the bus closes.
func (b *Bus) settle(owed map[string]func(context.Context) error) {
	wait := time.Second
	for len(owed) > 0 {
		select {
		case <-b.done:
			return
		case <-time.After(wait):
		}
		for what, update := range owed {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := update(ctx)
			cancel()
			if err != nil {
				b.log.Debug("config update still refused", "what", what, "err", err)
				continue
			}
			b.log.Info("config updated", "what", what, "replicas", catalog.StreamReplicas(b.limits.BrokerReplicas))
			delete(owed, what)
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// StreamConfig is the one definition of a catalog stream, which its owner
// creates or updates it to: the limits come from env vars the operator
// renders alike for every service of a platform, so an owner that changes
// (a service enabled or disabled) asks for the same thing.
func StreamConfig(st catalog.Stream, l Limits) jetstream.StreamConfig {
	discard := jetstream.DiscardOld
	if st.DiscardNew {
		discard = jetstream.DiscardNew
	}
	return jetstream.StreamConfig{
		Name:       st.Name,
		Subjects:   st.Subjects,
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		MaxAge:     st.MaxAge,
		MaxBytes:   catalog.MaxBytes(st.StoreShare, l.StoreBytes),
		Discard:    discard,
		Replicas:   catalog.StreamReplicas(l.BrokerReplicas),
		Duplicates: DuplicateWindow,
	}
}

// BucketConfig is the one definition of a catalog bucket, which its owner
// creates or updates it to.
func BucketConfig(name string, l Limits) (jetstream.KeyValueConfig, error) {
	bk, err := catalog.BucketFor(name)
	if err != nil {
		return jetstream.KeyValueConfig{}, err
	}
	return jetstream.KeyValueConfig{Bucket: bk.Name, History: 1, Storage: jetstream.FileStorage, TTL: bk.TTL,
		MaxBytes: catalog.MaxBytes(bk.StoreShare, l.StoreBytes), Replicas: catalog.StreamReplicas(l.BrokerReplicas)}, nil
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

// tracked is a consumer a service reads its own way (see Track).
type tracked struct {
	stop func()
	done chan struct{}
}

// Track registers a consumer the service reads its own way (Messages,
// Fetch) so that StopConsuming stops it with the others: stop must make it
// stop pulling (a MessagesContext's Drain, say), and the service calls the
// returned done once it has handled what it had received, before its
// context is cancelled.
func (b *Bus) Track(stop func()) (done func()) {
	t := tracked{stop: stop, done: make(chan struct{})}
	b.mu.Lock()
	stopping := b.stopping
	if !stopping {
		b.tracked = append(b.tracked, t)
	}
	b.mu.Unlock()
	if stopping {
		stop()
	}
	var once sync.Once
	return func() { once.Do(func() { close(t.done) }) }
}

// StopConsuming stops every consumer from pulling and waits until the
// messages already received are handled, or ctx ends. Handlers keep the
// context they run in meanwhile: cancel it only after this returns, so no
// delivery is spent on a handler that fails because the service is
// stopping. Messages still buffered when ctx ends are left, untouched, for
// redelivery.
func (b *Bus) StopConsuming(ctx context.Context) {
	b.mu.Lock()
	cs, ts := b.consumers, b.tracked
	b.consumers, b.tracked = nil, nil
	b.stopping = true
	b.mu.Unlock()
	var closed []<-chan struct{}
	for _, c := range cs {
		closed = append(closed, c.Closed())
		c.Drain()
	}
	for _, t := range ts {
		t.stop()
		closed = append(closed, t.done)
	}
	for _, ch := range closed {
		select {
		case <-ch:
		case <-ctx.Done():
			b.abandoned.Store(true)
			for _, c := range cs {
				c.Stop()
			}
			return
		}
	}
}

// Close stops consumers and drains the connection, and returns once it is
// closed: the acks and publishes still in its buffer are written before
// the process may exit, so no handled message comes back to another
// replica. Call StopConsuming first for a graceful stop.
func (b *Bus) Close() {
	b.closeOnce.Do(func() {
		close(b.done)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		b.StopConsuming(ctx)
		if err := b.NC.Drain(); err != nil {
			b.NC.Close()
		}
		// The drain ends by closing the connection, within
		// catalog.BrokerDrainTimeout.
		<-b.connClosed
	})
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
	ctx, sp := b.tracing.tracerOrNoop().Start(ctx, "publish "+typ, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", typ),
			attribute.String("messaging.message.id", id)))
	msg := &nats.Msg{Subject: typ, Data: body, Header: nats.Header{}}
	// The trace goes with the message: its consumers' spans follow on.
	b.tracing.Propagator().Inject(ctx, natsCarrier(msg.Header))
	_, err = b.JS.PublishMsg(ctx, msg, jetstream.WithMsgID(id))
	EndSpan(sp, err)
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
// message goes to the dead-letter stream at once instead of being retried.
var ErrPermanent = errors.New("permanent")

// ErrDuplicate is what a handler returns when it recognises an event it has
// already applied: the message is acked and counted as a duplicate.
var ErrDuplicate = errors.New("duplicate event")

// Handler processes one event. It must be idempotent by ev.ID: JetStream
// delivers at least once. Return nil to ack, an error to retry with backoff,
// ErrDuplicate when the event was already applied, or an error wrapping
// ErrPermanent to dead-letter the message at once.
type Handler func(ctx context.Context, ev Event) error

// ConsumerSpec runs one of the service's catalog consumers.
type ConsumerSpec struct {
	// Durable names the consumer in the service's catalog row, which
	// lists its subjects. Replicas of a service share it, so each event is
	// handled by one of them.
	Durable string
	Handler Handler
	// MaxDeliver bounds the deliveries of a message (default 8); a message
	// whose last delivery fails goes to the dead-letter stream. AckWait is
	// how long a handler may take before redelivery (default 30s).
	MaxDeliver int
	AckWait    time.Duration
}

// CreateConsumer creates (or updates) the service's catalog consumer named
// durable, with the settings of cfg. The name, subjects and stream come
// from the catalog row.
//
// The durable gets one filter subject (catalog.Consumer.Filter), which
// nats.go sends in the subject of the create call
// ($JS.API.CONSUMER.CREATE.<stream>.<durable>.<filter>): the broker
// refuses a request whose filter differs from that subject's, and the
// service's permissions name that subject only, so the service cannot
// re-create its durable reading more of the stream.
//
// Where a durable starts (cfg.DeliverPolicy and its start sequence or
// time) is fixed once it exists, as the broker refuses to change it; an
// existing durable keeps its own. A durable that replaces a former one
// (catalog.Consumer.Replaces) and does not exist yet starts where the
// former one's acknowledgements end, so that nothing it had not
// acknowledged is lost (what it had acknowledged past that point comes
// again, and handlers drop it by event id); once every durable replacing
// it exists, the former one is deleted.
func (b *Bus) CreateConsumer(ctx context.Context, durable string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, ok := b.svc.Consumer(durable)
	if !ok {
		return nil, fmt.Errorf("kit: consumer %q is not in the catalog entry of %s", durable, b.svc.Name)
	}
	st, err := catalog.StreamFor(c.Subjects[0])
	if err != nil {
		return nil, err
	}
	filter, err := c.Filter()
	if err != nil {
		return nil, err
	}
	// Replicas stays 0: a consumer follows its stream's.
	cfg.Name, cfg.Durable, cfg.FilterSubject, cfg.FilterSubjects = "", c.Durable, filter, nil
	var cons jetstream.Consumer
	for attempt := 0; ; attempt++ {
		create := b.JS.CreateOrUpdateConsumer
		cur, err := b.JS.Consumer(ctx, st.Name, c.Durable)
		switch {
		case err == nil:
			at := cur.CachedInfo().Config
			cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = at.DeliverPolicy, at.OptStartSeq, at.OptStartTime
		case !errors.Is(err, jetstream.ErrConsumerNotFound):
			return nil, fmt.Errorf("consumer %s: %w", durable, err)
		case c.Replaces != "":
			took, err := b.takeOver(ctx, st.Name, c, &cfg)
			if err != nil {
				return nil, err
			}
			if took {
				// Another replica taking over at the same time made it
				// with another start: create, never update, and look
				// again.
				create = b.JS.CreateConsumer
			}
		}
		cons, err = create(ctx, st.Name, cfg)
		if err == nil {
			break
		}
		if attempt == 0 && errors.Is(err, jetstream.ErrConsumerExists) {
			continue
		}
		return nil, fmt.Errorf("consumer %s: %w", durable, err)
	}
	if c.Replaces != "" {
		b.retire(ctx, st.Name, c.Replaces)
	}
	return cons, nil
}

// takeOver starts cfg where the former durable c replaces stopped
// acknowledging, if it still exists.
func (b *Bus) takeOver(ctx context.Context, stream string, c catalog.Consumer, cfg *jetstream.ConsumerConfig) (bool, error) {
	former, err := b.JS.Consumer(ctx, stream, c.Replaces)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false, nil // a new platform, or taken over long ago
	}
	if err != nil {
		return false, fmt.Errorf("consumer %s, replacing %s: %w", c.Durable, c.Replaces, err)
	}
	floor := former.CachedInfo().AckFloor.Stream
	cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartSequencePolicy, floor+1, nil
	b.log.Info("consumer takes over from a former durable", "consumer", c.Durable, "former", c.Replaces, "stream", stream,
		"startSequence", floor+1)
	return true, nil
}

// retire deletes the former durable once every consumer replacing it
// exists. Until then it stays, so a replica that starts later still finds
// where to begin; a failure is retried at the next start.
func (b *Bus) retire(ctx context.Context, stream, former string) {
	if _, err := b.JS.Consumer(ctx, stream, former); err != nil {
		return
	}
	for _, c := range b.svc.Consumers {
		if c.Replaces != former {
			continue
		}
		if _, err := b.JS.Consumer(ctx, stream, c.Durable); err != nil {
			return
		}
	}
	if err := b.JS.DeleteConsumer(ctx, stream, former); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		b.log.Warn("could not delete a former durable; trying again at the next start", "former", former, "stream", stream, "err", err)
		return
	}
	b.log.Info("deleted a former durable, taken over by its successors", "former", former, "stream", stream)
}

// Consume creates (or updates) one of the service's catalog consumers and
// handles its messages until StopConsuming or Close.
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
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   spec.AckWait,
		// The bus counts deliveries itself and dead-letters a message on
		// its last one. The server never gives up on a message on its own:
		// if it did, a message whose dead-lettering failed would be
		// skipped, unacknowledged and forgotten.
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 1024,
	})
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopping {
		return fmt.Errorf("consume %s: the bus is stopping", spec.Durable)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) { b.handle(ctx, spec, msg) },
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			b.log.Debug("consume", "consumer", spec.Durable, "err", err)
		}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", spec.Durable, err)
	}
	b.consumers = append(b.consumers, cc)
	// The consumer's error count exists, at zero, from its start: a rate of
	// it then reads 0 while no handler fails, where an absent series reads
	// as no data (the dashboard's Consumer errors panel, an alert on it).
	b.metrics.ConsumerErrors.WithLabelValues(spec.Durable)
	return nil
}

func (b *Bus) handle(ctx context.Context, spec ConsumerSpec, msg jetstream.Msg) {
	if b.abandoned.Load() {
		return // the service is stopping; the message will be redelivered
	}
	count := func(subject, result string) {
		b.metrics.EventsIn.WithLabelValues(spec.Durable, subject, result).Inc()
	}
	var ev Event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil || ev.ID == "" {
		if err == nil {
			err = errors.New("the event has no id")
		}
		b.metrics.ConsumerErrors.WithLabelValues(spec.Durable).Inc()
		b.DeadLetter(ctx, spec.Durable, msg, ReasonMalformed, fmt.Errorf("malformed event: %w", err))
		return
	}
	hctx, cancel := context.WithTimeout(ctx, spec.AckWait)
	hctx, sp := b.consumeSpan(hctx, spec.Durable, msg, ev)
	err := spec.Handler(hctx, ev)
	cancel()
	if err != nil && !errors.Is(err, ErrDuplicate) {
		EndSpan(sp, err)
	} else {
		sp.End()
	}
	switch {
	case err == nil:
		count(ev.Type, "ack")
		_ = msg.Ack()
	case errors.Is(err, ErrDuplicate):
		count(ev.Type, "duplicate")
		_ = msg.Ack()
	case errors.Is(err, ErrPermanent):
		b.metrics.ConsumerErrors.WithLabelValues(spec.Durable).Inc()
		b.DeadLetter(ctx, spec.Durable, msg, ReasonPermanent, err)
	default:
		b.metrics.ConsumerErrors.WithLabelValues(spec.Durable).Inc()
		delay := time.Second
		if md, merr := msg.Metadata(); merr == nil {
			if int(md.NumDelivered) >= spec.MaxDeliver {
				b.DeadLetter(ctx, spec.Durable, msg, ReasonExhausted, err)
				return
			}
			delay = min(time.Duration(md.NumDelivered)*time.Second, 15*time.Second)
		}
		count(ev.Type, "retry")
		b.log.Warn("event handler failed; will retry", "consumer", spec.Durable, "event", ev.ID, "err", err)
		_ = msg.NakWithDelay(delay)
	}
}

// SetTracing makes the bus trace its publishes and its consumers' work
// with t, passing the trace on in message headers. Run sets the service's;
// call it before publishing or consuming.
func (b *Bus) SetTracing(t *Tracing) { b.tracing = t }

// consumeSpan starts the span of one delivery of msg to a consumer. It
// continues the publisher's trace, so that an order's trace holds what its
// events caused, and links to the publisher's span, as a consumer's span
// does in OpenTelemetry's messaging conventions.
func (b *Bus) consumeSpan(ctx context.Context, durable string, msg jetstream.Msg, ev Event) (context.Context, trace.Span) {
	if b.tracing == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	ctx = b.tracing.Propagator().Extract(ctx, natsCarrier(msg.Headers()))
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", msg.Subject()),
			attribute.String("messaging.consumer.group.name", durable), attribute.String("messaging.message.id", ev.ID))}
	if pub := trace.SpanContextFromContext(ctx); pub.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: pub}))
	}
	if md, err := msg.Metadata(); err == nil {
		opts = append(opts, trace.WithAttributes(attribute.Int64("messaging.nats.delivered", int64(md.NumDelivered))))
	}
	return b.tracing.tracer.Start(ctx, "process "+msg.Subject(), opts...)
}

// natsCarrier carries trace context in NATS message headers, keys as the
// propagator writes them (traceparent, tracestate, baggage): NATS headers
// are case-sensitive, and lowercase is what every W3C reader expects.
type natsCarrier nats.Header

func (c natsCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c natsCarrier) Set(key, value string) { c[key] = []string{value} }

func (c natsCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
