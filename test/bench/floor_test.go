package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

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
// writes at the revision held and five reads of a small JSON record,
// through kit.Store on order's own orders bucket as order opens it (file
// storage, reads from the stream's leader) on an embedded broker. No HTTP,
// no gRPC, no TLS, no consumers, no fencing logic: only JetStream. The CPU
// per order (client and broker, both in this process) is what
// BenchmarkOrders' CPU per order can never go below while an order takes
// 16 round trips.
func BenchmarkBrokerFloor(b *testing.B) {
	store, err := kit.NewStore[floorRecord](kittest.Bus(b, "order").Bucket("orders"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	const clients, writes = 32, 10
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
			if w%2 == 1 { // every second write read back: five reads
				if _, _, err := store.Get(ctx, key); err != nil {
					return err
				}
			}
		}
		return nil
	})
	report(b, lat, rate, "orders/s")
}
