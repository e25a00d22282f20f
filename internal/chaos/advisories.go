package chaos

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/nats-io/nats.go"
)

// terminations counts the deliveries the broker announced as terminated,
// by consumer and reason: the dead letters a consumer gave up on (the bus
// terminates with its own reason), and those the broker ended itself, such
// as a pending message it found gone from its stream. An event that no
// handler ever saw leaves no other trace.
type terminations struct {
	mu     sync.Mutex
	counts map[string]int // "consumer: reason"
	sub    *nats.Subscription
}

// watchTerminations subscribes to the broker's termination and
// max-deliveries advisories; the subscription lives through broker
// restarts with the connection.
func watchTerminations(nc *nats.Conn) (*terminations, error) {
	t := &terminations{counts: map[string]int{}}
	var err error
	t.sub, err = nc.Subscribe("$JS.EVENT.ADVISORY.CONSUMER.>", func(m *nats.Msg) {
		var a struct {
			Type     string `json:"type"`
			Stream   string `json:"stream"`
			Consumer string `json:"consumer"`
			Reason   string `json:"reason"`
		}
		if json.Unmarshal(m.Data, &a) != nil {
			return
		}
		var what string
		switch a.Type {
		case "io.nats.jetstream.advisory.v1.terminated":
			what = "terminated: " + a.Reason
		case "io.nats.jetstream.advisory.v1.max_deliver":
			what = "max deliveries"
		default:
			return
		}
		t.mu.Lock()
		t.counts[fmt.Sprintf("%s > %s %s", a.Stream, a.Consumer, what)]++
		t.mu.Unlock()
	})
	return t, err
}

// notes lists the counts, one line each.
func (t *terminations) notes() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, k := range slices.Sorted(maps.Keys(t.counts)) {
		out = append(out, fmt.Sprintf("broker advisories: %s ×%d", k, t.counts[k]))
	}
	return out
}

func (t *terminations) stop() { _ = t.sub.Unsubscribe() }
