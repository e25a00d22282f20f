package kit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// deadLetters waits until the dead-letter stream holds n messages and
// returns them, read as JetStream stores them.
func deadLetters(t *testing.T, js jetstream.JetStream, n int) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	var st jetstream.Stream
	kittest.Eventually(t, 20*time.Second, fmt.Sprintf("%d message(s) in the dead-letter stream", n), func() bool {
		var err error
		if st, err = js.Stream(ctx, "DLQ"); err != nil {
			return false
		}
		info, err := st.Info(ctx)
		return err == nil && info.State.Msgs == uint64(n)
	})
	var out []*jetstream.RawStreamMsg
	info, _ := st.Info(ctx)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		if m, err := st.GetMsg(ctx, seq); err == nil {
			out = append(out, m)
		}
	}
	return out
}

// A message whose every delivery fails is not dropped: it lands in the
// dead-letter stream with its subject, headers, data and last error, the
// original is terminated, and once the handler is fixed a replay delivers
// it again, once.
func TestExhaustedMessagesAreDeadLetteredAndReplayed(t *testing.T) {
	ctx := context.Background()
	b := kittest.StartNATS(t, "")
	pub := b.Bus(t, "order")
	cfg, _ := kit.LoadConfig("notification", kit.Needs{}, kit.MapEnv(b.Env()))
	m := kit.NewMetrics("notification")
	bus, err := kit.ConnectBus(ctx, cfg, quiet, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)

	var fixed atomic.Bool
	var mu sync.Mutex
	handled := map[string]int{}
	err = bus.Consume(ctx, kit.ConsumerSpec{Durable: "notification-order-confirmed", MaxDeliver: 2, AckWait: 5 * time.Second,
		Handler: func(_ context.Context, ev kit.Event) error {
			mu.Lock()
			defer mu.Unlock()
			handled[ev.ID]++
			if !fixed.Load() {
				return errors.New("mail relay refused: 554 no")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: catalog.OrderConfirmed, Header: nats.Header{"Traceparent": []string{"00-abc-def-01"}},
		Data: []byte(`{"id":"order.confirmed:o1","type":"order.confirmed","source":"order","data":{"id":"o1"}}`)}
	if _, err := pub.JS.PublishMsg(ctx, msg, jetstream.WithMsgID("order.confirmed:o1")); err != nil {
		t.Fatal(err)
	}

	raw := deadLetters(t, pub.JS, 1)[0]
	if raw.Subject != "dlq.notification.notification-order-confirmed" || string(raw.Data) != string(msg.Data) {
		t.Fatalf("dead letter on %s with %s", raw.Subject, raw.Data)
	}
	for k, want := range map[string]string{
		"Traceparent": "00-abc-def-01", kit.HeaderDLQSubject: catalog.OrderConfirmed, kit.HeaderDLQMsgID: "order.confirmed:o1",
		kit.HeaderDLQConsumer: "notification-order-confirmed", kit.HeaderDLQService: "notification", kit.HeaderDLQReason: kit.ReasonExhausted,
		kit.HeaderDLQError: "mail relay refused: 554 no", kit.HeaderDLQDeliveries: "2", kit.HeaderDLQStream: "ORDERS",
	} {
		if got := raw.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	cons, _ := pub.JS.Consumer(ctx, "ORDERS", "notification-order-confirmed")
	kittest.Eventually(t, 10*time.Second, "the original to be terminated", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	var counted dto.Metric
	_ = m.DeadLetters.WithLabelValues("notification-order-confirmed", catalog.OrderConfirmed, kit.ReasonExhausted).Write(&counted)
	if n := counted.GetCounter().GetValue(); n != 1 {
		t.Errorf("dead letters counted: %v, want 1", n)
	}

	list, err := kit.DeadLetters(ctx, pub.JS, "")
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %+v %v", list, err)
	}
	dl := list[0]
	if dl.Consumer != "notification-order-confirmed" || dl.Subject != catalog.OrderConfirmed || !strings.Contains(dl.Error, "554") || dl.Time.IsZero() {
		t.Fatalf("listed %+v", dl)
	}
	if other, _ := kit.DeadLetters(ctx, pub.JS, "user-points"); len(other) != 0 {
		t.Fatalf("user-points' dead letters: %+v", other)
	}

	fixed.Store(true)
	if err := kit.Replay(ctx, pub.JS, dl); err != nil {
		t.Fatal(err)
	}
	// Replaying it again (a retry after a lost answer) publishes nothing new.
	if err := kit.Replay(ctx, pub.JS, dl); err != nil {
		t.Fatal(err)
	}
	kittest.Eventually(t, 10*time.Second, "the replayed event to be handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return handled["order.confirmed:o1"] == 3
	})
	kittest.Eventually(t, 10*time.Second, "the replay to be acked", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	if left, err := kit.DeadLetters(ctx, pub.JS, ""); err != nil || len(left) != 0 {
		t.Fatalf("after the replay the dead-letter stream holds %+v (%v)", left, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if handled["order.confirmed:o1"] != 3 {
		t.Fatalf("handled %d times, want 2 failures and 1 replay", handled["order.confirmed:o1"])
	}
}

// Nothing undecodable or permanently refused is dropped with a log line:
// both go to the dead-letter stream at once.
func TestMalformedAndPermanentFailuresAreDeadLettered(t *testing.T) {
	ctx := context.Background()
	b := kittest.StartNATS(t, "")
	pub, bus := b.Bus(t, "order"), b.Bus(t, "notification")
	err := bus.Consume(ctx, kit.ConsumerSpec{Durable: "notification-order-confirmed", Handler: func(_ context.Context, ev kit.Event) error {
		return fmt.Errorf("%w: no template for %s", kit.ErrPermanent, ev.Type)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.JS.Publish(ctx, catalog.OrderConfirmed, []byte("not json"), jetstream.WithMsgID("junk-1")); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, "order.confirmed:o2", "orders/o2", confirmed); err != nil {
		t.Fatal(err)
	}
	got := deadLetters(t, pub.JS, 2)
	reasons := map[string]string{}
	for _, m := range got {
		reasons[m.Header.Get(kit.HeaderDLQMsgID)] = m.Header.Get(kit.HeaderDLQReason) + ": " + m.Header.Get(kit.HeaderDLQError)
	}
	if r := reasons["junk-1"]; !strings.HasPrefix(r, kit.ReasonMalformed+": malformed event") {
		t.Errorf("the malformed message: %q", r)
	}
	if r := reasons["order.confirmed:o2"]; !strings.HasPrefix(r, kit.ReasonPermanent+": permanent: no template") {
		t.Errorf("the refused event: %q", r)
	}
	if d, err := kit.DeadLetters(ctx, pub.JS, "notification-order-confirmed"); err != nil || len(d) != 2 || string(d[0].Data) != "not json" {
		t.Fatalf("listed %+v (%v)", d, err)
	}
}

// A consumer's error count is exported at zero from its start, before any
// handler fails: a rate over it reads 0 on a healthy platform, not no data.
func TestAConsumersErrorCountStartsAtZero(t *testing.T) {
	ctx := context.Background()
	b := kittest.StartNATS(t, "")
	cfg, _ := kit.LoadConfig("notification", kit.Needs{}, kit.MapEnv(b.Env()))
	m := kit.NewMetrics("notification")
	bus, err := kit.ConnectBus(ctx, cfg, quiet, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	err = bus.Consume(ctx, kit.ConsumerSpec{Durable: "notification-order-confirmed",
		Handler: func(context.Context, kit.Event) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var series []string
	for _, f := range families {
		if f.GetName() != "switchboard_consumer_errors_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "consumer" {
					series = append(series, fmt.Sprintf("%s=%v", l.GetValue(), s.GetCounter().GetValue()))
				}
			}
		}
	}
	if len(series) != 1 || series[0] != "notification-order-confirmed=0" {
		t.Fatalf("switchboard_consumer_errors_total by consumer: %v, want notification-order-confirmed=0", series)
	}
}
