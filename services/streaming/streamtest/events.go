package streamtest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// Events publishes event envelopes straight to JetStream, the way a service
// would, so consumers can be driven (and redelivery simulated) without the
// publishing service.
type Events struct {
	T  testing.TB
	NC *nats.Conn
	JS jetstream.JetStream
}

// ConnectEvents connects to b and closes the connection at the end of the
// test.
func ConnectEvents(t testing.TB, b *kittest.Broker) *Events {
	t.Helper()
	nc, err := nats.Connect(b.URL, nats.UserInfo(b.User, b.Password))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		t.Fatal(err)
	}
	return &Events{T: t, NC: nc, JS: js}
}

// Envelope marshals an event as kit.Bus.Publish would.
func Envelope(typ, id string, at time.Time, data any) []byte {
	raw, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	b, err := json.Marshal(kit.Event{ID: id, Type: typ, Source: "test", Time: at.UTC(), Data: raw})
	if err != nil {
		panic(err)
	}
	return b
}

// Publish sends one event and waits for the broker's ack. msgID is the
// Nats-Msg-Id: pass the event id for a normal publish, anything else to
// get past JetStream's duplicate window as a late republish would.
func (e *Events) Publish(typ, id, msgID string, at time.Time, data any) {
	e.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.JS.Publish(ctx, typ, Envelope(typ, id, at, data), jetstream.WithMsgID(msgID)); err != nil {
		e.T.Fatalf("publish %s: %v", id, err)
	}
}

// PublishAsync sends one event without waiting; call Wait after a batch.
func (e *Events) PublishAsync(typ, id, msgID string, at time.Time, data any) {
	e.T.Helper()
	if _, err := e.JS.PublishAsync(typ, Envelope(typ, id, at, data), jetstream.WithMsgID(msgID), jetstream.WithStallWait(30*time.Second)); err != nil {
		e.T.Fatalf("publish %s: %v", id, err)
	}
}

// Wait blocks until every async publish is acked.
func (e *Events) Wait() {
	e.T.Helper()
	select {
	case <-e.JS.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		e.T.Fatal("async publishes not acked within 60s")
	}
}
