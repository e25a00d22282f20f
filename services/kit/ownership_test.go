package kit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// syncBuffer is a log a test reads while a service writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// commerce are the broker services of a commerce platform.
var commerce = catalog.BrokerServices(catalog.ForWorkloads(catalog.Commerce))

// connectAs connects service name to b as a member of a platform running
// the broker services running, in the background.
func connectAs(t *testing.T, b *kittest.Broker, name string, running []string, log *syncBuffer) <-chan *kit.Bus {
	t.Helper()
	env := b.Env()
	env[catalog.EnvBrokerServices] = strings.Join(running, ",")
	svc, _ := catalog.Lookup(name)
	for _, up := range svc.Upstreams {
		env[catalog.EnvGRPC(up)] = "dns:///" + up + ".invalid:9090"
	}
	cfg, err := kit.LoadConfig(name, kit.Needs{}, kit.MapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out, done := make(chan *kit.Bus, 1), make(chan struct{})
	var bus *kit.Bus
	go func() {
		defer close(done)
		defer close(out)
		var err error
		if bus, err = kit.ConnectBus(ctx, cfg, slog.New(slog.NewTextHandler(log, nil)), kit.NewMetrics(name)); err == nil {
			out <- bus
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if bus != nil {
			bus.Close()
		}
	})
	return out
}

func admin(t *testing.T, b *kittest.Broker) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(b.URL, nats.UserInfo(b.User, b.Password))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// A service that starts before the owners of its streams and buckets
// waits for them, not ready, creating and changing nothing; it connects
// once they have made them. Start-up order does not matter, and no one but
// the owner writes a stream's config.
func TestANonOwnerWaitsForTheOwner(t *testing.T) {
	b := kittest.StartNATS(t, "")
	js := admin(t, b)
	ctx := context.Background()
	// A PAYMENTS left with another config: only its owner may change it.
	odd := kit.StreamConfig(mustStream(t, "PAYMENTS"), kit.Limits{})
	odd.MaxAge = time.Hour
	if _, err := js.CreateStream(ctx, odd); err != nil {
		t.Fatal(err)
	}

	log := &syncBuffer{}
	waiting := connectAs(t, b, "notification", commerce, log)
	kittest.Eventually(t, 20*time.Second, "notification to say what it waits for", func() bool {
		return strings.Contains(log.String(), "stream ORDERS (owner order)") && strings.Contains(log.String(), "bucket token-revocations (owner user)")
	})
	for _, missing := range []string{"ORDERS", catalog.DeadLetterStream, "KV_" + catalog.TokenRevocations} {
		if _, err := js.Stream(ctx, missing); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("stream %s exists before its owner started (%v)", missing, err)
		}
	}
	if _, err := js.Stream(ctx, "KV_notifications"); err != nil {
		t.Errorf("notification did not make the bucket it owns while it waited: %v", err)
	}
	st, _ := js.Stream(ctx, "PAYMENTS")
	if info, _ := st.Info(ctx); info.Config.MaxAge != time.Hour {
		t.Errorf("notification changed PAYMENTS, which it does not own: max age %s", info.Config.MaxAge)
	}
	select {
	case <-waiting:
		t.Fatal("notification connected without its streams")
	default:
	}

	var owners []<-chan *kit.Bus
	for _, name := range []string{"order", "payment", "user"} {
		owners = append(owners, connectAs(t, b, name, commerce, &syncBuffer{}))
	}
	for _, ch := range append(owners, waiting) {
		select {
		case bus := <-ch:
			if bus == nil {
				t.Fatal("a service did not connect")
			}
			if err := bus.Ready(ctx); err != nil {
				t.Errorf("not ready: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("a service is still waiting:\n%s", log)
		}
	}
	st, _ = js.Stream(ctx, "PAYMENTS")
	if info, _ := st.Info(ctx); info.Config.MaxAge != mustStream(t, "PAYMENTS").MaxAge {
		t.Errorf("PAYMENTS keeps max age %s after its owner started", info.Config.MaxAge)
	}
	if strings.Contains(log.String(), "level=ERROR") {
		t.Errorf("notification logged errors:\n%s", log)
	}
}

func mustStream(t *testing.T, name string) catalog.Stream {
	t.Helper()
	i := slices.IndexFunc(catalog.Streams, func(s catalog.Stream) bool { return s.Name == name })
	if i < 0 {
		t.Fatalf("no stream %s", name)
	}
	return catalog.Streams[i]
}

func TestBrokerServicesSetting(t *testing.T) {
	b := kittest.StartNATS(t, "")
	for _, tt := range []struct {
		name, value, wantErr string
	}{
		{"unset, the service owns what it uses", "", ""},
		{"the platform's broker services", strings.Join(commerce, ","), ""},
		{"a service that is not in the catalog", "order,notification,nobody", `"nobody" is no service`},
		{"the gateway, which has no broker user", "gateway,notification", `"gateway" is no service`},
		{"a list without the service itself", "order,user", "does not name notification itself"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := b.Env()
			env[catalog.EnvBrokerServices] = tt.value
			cfg, err := kit.LoadConfig("notification", kit.Needs{}, kit.MapEnv(env))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if want := strings.Split(tt.value, ","); tt.value != "" && !slices.Equal(cfg.BrokerServices, want) {
					t.Errorf("BrokerServices = %v, want %v", cfg.BrokerServices, want)
				}
				if tt.value == "" && cfg.BrokerServices != nil {
					t.Errorf("BrokerServices = %v, want nil", cfg.BrokerServices)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), catalog.EnvBrokerServices) {
				t.Errorf("err = %v, want one naming %s and saying %q", err, catalog.EnvBrokerServices, tt.wantErr)
			}
		})
	}
}

// Each durable has one filter subject, which the broker can check against
// the permission: its one subject, or its stream's wildcard when it reads
// every subject published there.
func TestDurablesHaveOneFilter(t *testing.T) {
	b := kittest.StartNATS(t, "")
	ctx := context.Background()
	b.Bus(t, "playback")
	for _, tt := range []struct{ service, durable, filter string }{
		{"user", "user-points", catalog.OrderConfirmed},
		{"notification", "notification-order-refunded", catalog.OrderRefunded},
		{"analytics", "analytics", "playback.>"},
	} {
		t.Run(tt.durable, func(t *testing.T) {
			cons, err := b.Bus(t, tt.service).CreateConsumer(ctx, tt.durable, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
			if err != nil {
				t.Fatal(err)
			}
			info, err := cons.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.Config.FilterSubject != tt.filter || len(info.Config.FilterSubjects) != 0 {
				t.Errorf("filter %q and filters %v, want the one filter %s", info.Config.FilterSubject, info.Config.FilterSubjects, tt.filter)
			}
		})
	}
}

// publishOrders publishes n events of each subject, round robin, as order
// would, and returns their ids in stream order.
func publishOrders(t *testing.T, js jetstream.JetStream, n int, subjects ...string) []string {
	t.Helper()
	var ids []string
	for i := range n {
		for _, subj := range subjects {
			id := fmt.Sprintf("%s:%d", subj, i)
			if _, err := js.Publish(context.Background(), subj, []byte(`{"id":"`+id+`","type":"`+subj+`"}`), jetstream.WithMsgID(id)); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
	}
	return ids
}

// fetchIDs pulls until the consumer has nothing more to give, and acks.
func fetchIDs(t *testing.T, cons jetstream.Consumer) []string {
	t.Helper()
	var ids []string
	for {
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			ids = append(ids, strings.Split(string(m.Data()), `"`)[3])
			if err := m.DoubleAck(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if n == 0 {
			return ids
		}
	}
}

// A single-subject durable of an earlier release, created with
// FilterSubjects, is updated in place: same durable, same progress.
func TestAnEarlierSingleFilterDurableIsUpdatedInPlace(t *testing.T) {
	b := kittest.StartNATS(t, "")
	ctx := context.Background()
	js := admin(t, b)
	b.Bus(t, "order")
	old, err := js.CreateOrUpdateConsumer(ctx, "ORDERS", jetstream.ConsumerConfig{Durable: "user-points",
		FilterSubjects: []string{catalog.OrderConfirmed}, AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: -1})
	if err != nil {
		t.Fatal(err)
	}
	ids := publishOrders(t, js, 3, catalog.OrderConfirmed, catalog.OrderCreated)
	batch, err := old.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for m := range batch.Messages() {
		if i == 0 {
			if err := m.DoubleAck(ctx); err != nil { // the first is done; the second stays unacknowledged
				t.Fatal(err)
			}
		}
		i++
	}

	cons, err := b.Bus(t, "user").CreateConsumer(ctx, "user-points", jetstream.ConsumerConfig{
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute, MaxDeliver: -1})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := cons.Info(ctx)
	if info.Config.FilterSubject != catalog.OrderConfirmed || len(info.Config.FilterSubjects) != 0 || info.AckFloor.Consumer != 1 {
		t.Fatalf("after the update: filter %q %v, ack floor %d", info.Config.FilterSubject, info.Config.FilterSubjects, info.AckFloor.Consumer)
	}
	// A pull gets the one never delivered; the unacknowledged one is
	// still pending, and comes again when its ack wait has passed.
	want := []string{ids[4]}
	if got := fetchIDs(t, cons); !slices.Equal(got, want) {
		t.Errorf("pulled %v, want %v", got, want)
	}
	if info, _ := cons.Info(ctx); info.NumAckPending != 1 {
		t.Errorf("%d unacknowledged, want the one delivered before the update", info.NumAckPending)
	}
}

// notification's two durables of an earlier release, reading several
// subjects each, are split into one durable per subject: each starts where
// the former one's acknowledgements end, so nothing unacknowledged is lost,
// and the former durable is deleted once all its successors exist.
func TestAnEarlierMultiFilterDurableIsTakenOverWithoutLoss(t *testing.T) {
	b := kittest.StartNATS(t, "")
	ctx := context.Background()
	js := admin(t, b)
	b.Bus(t, "order")
	b.Bus(t, "payment")
	orderSubjects := []string{catalog.OrderConfirmed, catalog.OrderCancelled, catalog.OrderRefunded}
	former, err := js.CreateOrUpdateConsumer(ctx, "ORDERS", jetstream.ConsumerConfig{Durable: "notification-orders",
		FilterSubjects: orderSubjects, AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: -1, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		t.Fatal(err)
	}
	ids := publishOrders(t, js, 3, append([]string{catalog.OrderCreated}, orderSubjects...)...)
	// The former durable handled the first two of its events and holds the
	// third unacknowledged (its pod stopped mid-handling).
	batch, err := former.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var handled []string
	for m := range batch.Messages() {
		id := strings.Split(string(m.Data()), `"`)[3]
		if len(handled) < 2 {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
		handled = append(handled, id)
	}
	if len(handled) != 3 {
		t.Fatalf("the former durable got %v", handled)
	}
	finfo, _ := former.Info(ctx)
	floor := finfo.AckFloor.Stream

	bus := b.Bus(t, "notification")
	got := map[string][]string{}
	for i, subj := range orderSubjects {
		durable := "notification-" + strings.ReplaceAll(subj, ".", "-")
		cons, err := bus.CreateConsumer(ctx, durable, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: -1})
		if err != nil {
			t.Fatal(err)
		}
		info, _ := cons.Info(ctx)
		if info.Config.DeliverPolicy != jetstream.DeliverByStartSequencePolicy || info.Config.OptStartSeq != floor+1 {
			t.Errorf("%s starts %v at %d, want at the former ack floor %d + 1", durable, info.Config.DeliverPolicy, info.Config.OptStartSeq, floor)
		}
		_, ferr := js.Consumer(ctx, "ORDERS", "notification-orders")
		if last := i == len(orderSubjects)-1; last != errors.Is(ferr, jetstream.ErrConsumerNotFound) {
			t.Errorf("after %d of %d successors the former durable: %v", i+1, len(orderSubjects), ferr)
		}
		got[subj] = fetchIDs(t, cons)
	}
	// Every event of the three subjects that the former durable had not
	// acknowledged comes, each to its own durable; order.created to none.
	for _, subj := range orderSubjects {
		var want []string
		for _, id := range ids {
			if strings.HasPrefix(id, subj+":") && !slices.Contains(handled[:2], id) {
				want = append(want, id)
			}
		}
		if !slices.Equal(got[subj], want) {
			t.Errorf("%s: pulled %v, want %v", subj, got[subj], want)
		}
	}

	// A replica starting later keeps the successors' start, though the
	// former durable is gone and the broker refuses to change a start.
	for _, subj := range orderSubjects {
		durable := "notification-" + strings.ReplaceAll(subj, ".", "-")
		if _, err := b.Bus(t, "notification").CreateConsumer(ctx, durable, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Errorf("a second replica creating %s: %v", durable, err)
		}
	}
}
