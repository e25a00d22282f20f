package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

func TestDLQUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no subcommand", []string{"dlq"}, nil, "dlq needs a subcommand"},
		{"an unknown subcommand", []string{"dlq", "purge"}, nil, `unknown dlq subcommand "purge"`},
		{"replay without ids", []string{"dlq", "replay"}, nil, "either ids or --all"},
		{"replay with ids and --all", []string{"dlq", "replay", "--all", "3"}, nil, "either ids or --all"},
		{"a bad id", []string{"dlq", "replay", "x7"}, nil, `"x7" is not a dead letter id`},
		{"an unknown consumer", []string{"dlq", "list", "--consumer", "nobody"}, nil, `--consumer "nobody" is no consumer`},
		{"arguments to list", []string{"dlq", "list", "7"}, nil, "dlq list takes no arguments"},
		{"no broker", []string{"dlq", "list"}, map[string]string{"NATS_URL": ""}, "NATS_URL is required"},
		{"a malformed broker URL", []string{"dlq", "list"}, map[string]string{"NATS_URL": "nats://"}, "NATS_URL="},
		{"a user without a password", []string{"dlq", "list"}, map[string]string{"NATS_URL": "nats://127.0.0.1:1", "NATS_USER": "u", "NATS_PASSWORD": ""}, "must be set together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			err := run(context.Background(), tt.args, io.Discard, io.Discard)
			if err == nil || !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a usage error saying %q", err, tt.want)
			}
		})
	}
}

// An operator lists the dead letters, fixes the cause, and replays them.
func TestDLQListAndReplay(t *testing.T) {
	ctx := context.Background()
	b := kittest.StartNATS(t, "")
	for k, v := range b.Env() {
		t.Setenv(k, v)
	}
	var fixed atomic.Bool
	var handled atomic.Int32
	bus := b.Bus(t, "user")
	err := bus.Consume(ctx, kit.ConsumerSpec{Durable: "user-points", MaxDeliver: 1, Handler: func(context.Context, kit.Event) error {
		if !fixed.Load() {
			return errors.New("points bucket full")
		}
		handled.Add(1)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ev := events.OrderConfirmed{OrderOutcome: events.OrderOutcome{ID: "o1", UserID: "ada", Total: 100}}
	if err := b.Bus(t, "order").Publish(ctx, kit.EventID(catalog.OrderConfirmed, "o1"), "orders/o1", ev); err != nil {
		t.Fatal(err)
	}
	list := func(args ...string) string {
		var out bytes.Buffer
		if err := run(ctx, append([]string{"dlq", "list"}, args...), &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	kittest.Eventually(t, 10*time.Second, "a dead letter", func() bool { return strings.Contains(list(), "user-points") })
	out := list()
	for _, want := range []string{"ID", "CONSUMER", "SUBJECT", "ERROR", "TIME", "1 ", "user-points", catalog.OrderConfirmed, "exhausted", "points bucket full"} {
		if !strings.Contains(out, want) {
			t.Errorf("dlq list does not show %q:\n%s", want, out)
		}
	}
	if got := list("--consumer", "notification-order-confirmed"); !strings.Contains(got, "no dead letters") {
		t.Errorf("another consumer's list:\n%s", got)
	}
	if got := list("--json"); !strings.Contains(got, `"consumer":"user-points"`) {
		t.Errorf("dlq list --json:\n%s", got)
	}
	if err := run(ctx, []string{"dlq", "replay", "99"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "no dead letter 99") {
		t.Errorf("replaying a missing id: %v", err)
	}

	fixed.Store(true)
	var replayed bytes.Buffer
	if err := run(ctx, []string{"dlq", "replay", "--all"}, &replayed, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(replayed.String(), "replayed 1 (user-points") {
		t.Errorf("replay said %q", replayed.String())
	}
	kittest.Eventually(t, 10*time.Second, "the replayed event handled", func() bool { return handled.Load() == 1 })
	if got := list(); !strings.Contains(got, "no dead letters") {
		t.Errorf("after the replay:\n%s", got)
	}
}
