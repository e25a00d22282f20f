package product

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// Reserve against release (issue 12): a reserve and a release of the same
// order race, as they do when a saga is cancelled while a late reserve is
// on its way. Whatever the interleaving, once the release has been
// retried to its end nothing stays reserved: every unit is available
// again, and the stock adds up at the end.
func TestAReserveRacingItsReleaseNeverStrandsUnits(t *testing.T) {
	ctx := context.Background()
	bus := kittest.Bus(t, "product")
	a, b := newCatalog(t, bus), newCatalog(t, bus)
	const orders, initial = 150, 1000
	p, err := a.Create(ctx, NewProduct{Name: "Lamp", Category: "home", Price: 1000, Stock: initial})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range orders {
		o := fmt.Sprintf("o%d", i)
		wg.Go(func() { _, _, _ = a.Reserve(ctx, p.ID, o, 1) })
		wg.Go(func() { _, _ = b.Release(ctx, p.ID, o) })
	}
	wg.Wait()
	for i := range orders { // the saga retries its release until it is answered
		if _, err := b.Release(ctx, p.ID, fmt.Sprintf("o%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := a.Stock(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s.Reserved != 0 || s.Available != initial || s.Available+s.Reserved+s.Sold != initial+s.Restocked {
		t.Fatalf("after every order was released the stock is %+v: %d units stranded in reserved", s, s.Reserved)
	}
}

// Ended holds leave the stock record after holdRetention, so it stays
// small; a sale's replays then read the ledger: a repeated Commit still
// answers the sale, a Release is still refused.
func TestEndedHoldsAreForgottenAndSalesStayInTheLedger(t *testing.T) {
	ctx := context.Background()
	c := newCatalog(t, kittest.Bus(t, "product"))
	p, err := c.Create(ctx, NewProduct{Name: "Lamp", Category: "home", Price: 1000, Stock: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"sold", "given"} {
		if _, _, err := c.Reserve(ctx, p.ID, o, 2); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Commit(ctx, p.ID, "sold"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Release(ctx, p.ID, "given"); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(holdRetention + time.Minute)
	c.now = func() time.Time { return later }
	if _, _, err := c.Reserve(ctx, p.ID, "next", 1); err != nil { // a write prunes
		t.Fatal(err)
	}
	st, _, _ := c.stocks.Get(ctx, p.ID)
	if _, ok := st.Orders["sold"]; ok || len(st.Orders) != 1 {
		t.Fatalf("ended holds kept past their retention: %+v", st.Orders)
	}
	if r, err := c.Commit(ctx, p.ID, "sold"); err != nil || r.State != Committed || r.Quantity != 2 {
		t.Fatalf("a repeated commit after the hold was forgotten: %+v %v", r, err)
	}
	if _, err := c.Release(ctx, p.ID, "sold"); code(err) != CodeReservationDone {
		t.Fatalf("releasing a sale after its hold was forgotten: %v", err)
	}
	if s, _ := c.Stock(ctx, p.ID); s.Available != 7 || s.Reserved != 1 || s.Sold != 2 {
		t.Fatalf("stock %+v", s)
	}
}
