package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// floorRecord is about the size of an order record in flight.
type floorRecord struct {
	ID, UserID, State, Step, Owner string
	Generation, Total              int64
	Items                          []floorItem
	UpdatedAt                      time.Time
}

type floorItem struct {
	ProductID string
	Quantity  int64
	Price     int64
}

// BenchmarkBrokerFloor measures what the broker part of an order costs on
// its own, as a floor under BenchmarkOrders: 32 workers, each "order" the
// 16 KV round trips an order makes (docs/benchmarks.md): one create, ten
// writes at the revision held and five reads of a small JSON record, in a
// file-stored bucket on an embedded broker, through kit.Store. No HTTP, no
// gRPC, no TLS, no consumers, no fencing logic: only JetStream. Reads are
// direct gets, cheaper than the platform's reads from the stream leader,
// so the floor is if anything low. The CPU per order (client and broker,
// both in this process) is what BenchmarkOrders' CPU per order can never
// go below while an order takes 16 round trips.
func BenchmarkBrokerFloor(b *testing.B) {
	broker := kittest.StartNATS(b, "")
	nc, err := nats.Connect(broker.URL, nats.UserInfo(broker.User, broker.Password))
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "floor", History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	store, err := kit.NewStore[floorRecord](kv)
	if err != nil {
		b.Fatal(err)
	}
	const clients, writes, reads = 32, 10, 5
	run := kit.NewID()
	lat, rate := runConcurrent(b, clients, func(_ int, i int64) error {
		key := fmt.Sprintf("%s-%d", run, i)
		rec := floorRecord{ID: key, UserID: "user-" + run, State: "pending", Step: "reserve", Owner: run, Generation: 1, Total: 1999,
			Items: []floorItem{{ProductID: "product-" + run, Quantity: 1, Price: 1999}}, UpdatedAt: time.Now()}
		rev, err := store.Create(ctx, key, rec)
		if err != nil {
			return err
		}
		for w := range writes {
			if rec, rev, err = store.UpdateAt(ctx, key, rec, rev, func(r *floorRecord) error {
				r.Generation++
				r.Step = fmt.Sprintf("step-%d", w)
				r.UpdatedAt = time.Now()
				return nil
			}); err != nil {
				return err
			}
			if w%2 == 1 {
				if _, _, err := store.Get(ctx, key); err != nil {
					return err
				}
			}
		}
		return nil
	})
	report(b, lat, rate, "orders/s")
}
