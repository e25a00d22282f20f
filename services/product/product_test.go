package product

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

func newCatalog(t *testing.T, bus *kit.Bus) *Catalog {
	t.Helper()
	items, _ := kit.NewStore[item](bus.Bucket("products"))
	stocks, _ := kit.NewStore[stock](bus.Bucket("stock"))
	res, _ := kit.NewStore[Reservation](bus.Bucket("stock"))
	c, err := NewCatalog(items, stocks, res)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func code(err error) string {
	if err == nil {
		return ""
	}
	return kit.AsError(err).Code
}

func TestReservations(t *testing.T) {
	ctx := context.Background()
	c := newCatalog(t, kittest.Bus(t, "product"))
	p, err := c.Create(ctx, NewProduct{Name: "Lamp", Category: "home", Price: 1000, Stock: 5})
	if err != nil {
		t.Fatal(err)
	}
	level := func() StockLevel {
		s, err := c.Stock(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	r, created, err := c.Reserve(ctx, p.ID, "o1", 2)
	if err != nil || !created || r.Price != 1000 {
		t.Fatalf("reserve: %+v %v %v", r, created, err)
	}
	if _, created, err := c.Reserve(ctx, p.ID, "o1", 2); err != nil || created {
		t.Fatalf("a repeated reserve must return the first: %v %v", created, err)
	}
	if _, _, err := c.Reserve(ctx, p.ID, "o1", 3); code(err) != CodeIdempotencyMismatch {
		t.Fatalf("another quantity for the same order: %v", err)
	}
	if _, _, err := c.Reserve(ctx, p.ID, "o2", 4); code(err) != CodeOutOfStock {
		t.Fatalf("reserving more than available: %v", err)
	}
	if got := level(); got.Available != 3 || got.Reserved != 2 {
		t.Fatalf("after reserve: %+v", got)
	}
	for range 2 {
		if _, err := c.Commit(ctx, p.ID, "o1"); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	if got := level(); got.Available != 3 || got.Reserved != 0 {
		t.Fatalf("after commit: %+v", got)
	}
	if _, err := c.Release(ctx, p.ID, "o1"); code(err) != CodeReservationDone {
		t.Fatalf("releasing a committed reservation: %v", err)
	}

	if _, _, err := c.Reserve(ctx, p.ID, "o3", 3); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.Release(ctx, p.ID, "o3"); err != nil {
			t.Fatalf("release: %v", err)
		}
	}
	if got := level(); got.Available != 3 || got.Reserved != 0 {
		t.Fatalf("after release: %+v", got)
	}
	if _, err := c.Commit(ctx, p.ID, "o3"); code(err) != CodeReservationReleased {
		t.Fatalf("committing a released reservation: %v", err)
	}
	// Compensation that ran before a late reserve arrived leaves a tombstone.
	if _, err := c.Release(ctx, p.ID, "o4"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Reserve(ctx, p.ID, "o4", 1); code(err) != CodeReservationReleased {
		t.Fatalf("reserve after release: %v", err)
	}
	if _, err := c.Commit(ctx, p.ID, "never"); code(err) != kit.CodeNotFound {
		t.Fatalf("commit of an unknown reservation: %v", err)
	}
}

func TestTwoReplicasNeverOversell(t *testing.T) {
	ctx := context.Background()
	bus := kittest.Bus(t, "product")
	a, b := newCatalog(t, bus), newCatalog(t, bus)
	p, err := a.Create(ctx, NewProduct{Name: "Rare", Category: "home", Price: 1, Stock: 7})
	if err != nil {
		t.Fatal(err)
	}
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := range 30 {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Go(func() {
			_, _, err := c.Reserve(ctx, p.ID, fmt.Sprintf("order-%d", i), 1)
			switch code(err) {
			case "":
				won.Add(1)
			case CodeOutOfStock:
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	s, _ := a.Stock(ctx, p.ID)
	if won.Load() != 7 || s.Available != 0 || s.Reserved != 7 {
		t.Fatalf("%d reservations won, stock %+v", won.Load(), s)
	}
}

func TestSeedIsIdempotent(t *testing.T) {
	ctx := context.Background()
	c := newCatalog(t, kittest.Bus(t, "product"))
	for range 2 {
		if err := c.Seed(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := c.List(ctx, "electronics")
	if err != nil || len(ps) != 3 {
		t.Fatalf("%d electronics (%v)", len(ps), err)
	}
}

func FuzzReserveRequest(f *testing.F) {
	for _, s := range []string{`{"orderId":"o1","quantity":1}`, `{"orderId":"","quantity":-1}`, `{"quantity":1e20}`, `[`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var r ReserveRequest
		if err := kit.DecodeJSON(strings.NewReader(body), &r); err != nil {
			if kit.AsError(err).Status != 400 {
				t.Fatalf("%v is not a 400", err)
			}
		}
		var p NewProduct
		if err := kit.DecodeJSON(strings.NewReader(body), &p); err == nil {
			_ = p.Validate()
		}
	})
}
