package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
)

// Broker is the console's view of JetStream, read from the broker's
// monitoring endpoint (/jsz), which needs no broker credentials: the
// gateway has none, by design.
type Broker struct {
	// Storage and Memory are the bytes JetStream uses; MaxStorage is its
	// configured store.
	Storage    uint64         `json:"storage"`
	Memory     uint64         `json:"memory"`
	MaxStorage int64          `json:"maxStorage"`
	Messages   uint64         `json:"messages"`
	Bytes      uint64         `json:"bytes"`
	Streams    []BrokerStream `json:"streams"`
	Error      string         `json:"error,omitempty"`
}

// BrokerStream is one stream, its messages and its consumers' backlog.
type BrokerStream struct {
	Name      string           `json:"name"`
	Messages  uint64           `json:"messages"`
	Bytes     uint64           `json:"bytes"`
	Consumers []BrokerConsumer `json:"consumers"`
	// Watchers are the stream's ephemeral consumers: the KV watches and
	// key listings of the services, named at random.
	Watchers int `json:"watchers"`
}

// BrokerConsumer is one consumer's backlog: messages not yet delivered
// (pending) and delivered but not yet acknowledged.
type BrokerConsumer struct {
	Name        string `json:"name"`
	Pending     uint64 `json:"pending"`
	AckPending  int    `json:"ackPending"`
	Redelivered int    `json:"redelivered"`
}

// jsz is the part of nats-server's /jsz answer the console reads.
type jsz struct {
	Memory   uint64 `json:"memory"`
	Storage  uint64 `json:"storage"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	Config   struct {
		MaxStorage int64 `json:"max_storage"`
	} `json:"config"`
	Accounts []struct {
		Streams []struct {
			Name  string `json:"name"`
			State struct {
				Messages uint64 `json:"messages"`
				Bytes    uint64 `json:"bytes"`
			} `json:"state"`
			Consumers []struct {
				Name        string `json:"name"`
				NumPending  uint64 `json:"num_pending"`
				AckPending  int    `json:"num_ack_pending"`
				Redelivered int    `json:"num_redelivered"`
				Config      struct {
					Durable string `json:"durable_name"`
				} `json:"config"`
			} `json:"consumer_detail"`
		} `json:"stream_detail"`
	} `json:"account_details"`
}

// broker reads the monitor's /jsz with streams and consumers. Streams of
// KV buckets are included: buckets are the services' state.
func (c *console) broker(ctx context.Context) Broker {
	if c.opts.BrokerMonitor == nil {
		return Broker{Error: "no broker monitor URL (BROKER_MONITOR_URL)"}
	}
	u := c.opts.BrokerMonitor.JoinPath("jsz")
	u.RawQuery = "accounts=true&streams=true&consumers=true&config=true"
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	resp, err := c.plain.Do(req)
	if err != nil {
		return Broker{Error: err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Broker{Error: fmt.Sprintf("the broker's monitor answered %d", resp.StatusCode)}
	}
	var j jsz
	if err := json.NewDecoder(resp.Body).Decode(&j); err != nil {
		return Broker{Error: "the broker's monitor: " + err.Error()}
	}
	b := Broker{Storage: j.Storage, Memory: j.Memory, MaxStorage: j.Config.MaxStorage, Messages: j.Messages, Bytes: j.Bytes, Streams: []BrokerStream{}}
	for _, a := range j.Accounts {
		for _, s := range a.Streams {
			bs := BrokerStream{Name: s.Name, Messages: s.State.Messages, Bytes: s.State.Bytes, Consumers: []BrokerConsumer{}}
			for _, cs := range s.Consumers {
				if cs.Config.Durable == "" {
					bs.Watchers++
					continue
				}
				bs.Consumers = append(bs.Consumers, BrokerConsumer{Name: cs.Name, Pending: cs.NumPending, AckPending: cs.AckPending, Redelivered: cs.Redelivered})
			}
			slices.SortFunc(bs.Consumers, func(x, y BrokerConsumer) int { return cmp.Compare(x.Name, y.Name) })
			b.Streams = append(b.Streams, bs)
		}
	}
	slices.SortFunc(b.Streams, func(x, y BrokerStream) int { return cmp.Compare(x.Name, y.Name) })
	return b
}
