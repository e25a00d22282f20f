package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// A delivery a consumer terminates is counted by consumer and reason.
func TestTerminationsAreCounted(t *testing.T) {
	b := kittest.StartNATS(t, "")
	nc, err := nats.Connect(b.URL, nats.UserInfo(b.User, b.Password))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	terms, err := watchTerminations(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer terms.stop()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"order.>"}}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateConsumer(ctx, "ORDERS", jetstream.ConsumerConfig{Durable: "mailer", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "order.cancelled", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.TermWithReason("exhausted"); err != nil {
		t.Fatal(err)
	}
	want := "broker advisories: ORDERS > mailer terminated: exhausted ×1"
	kittest.Eventually(t, 5*time.Second, want, func() bool {
		n := terms.notes()
		return len(n) == 1 && n[0] == want
	})
}
