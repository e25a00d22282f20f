package product

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// Reserve against release (issue 12): a reserve and a release of the same
// order race, as they do when a saga is cancelled while a late reserve is
// on its way. Whatever the interleaving, once the release has been
// retried to its end nothing stays reserved: every unit is available
// again, and the stock adds up at the end.
func TestAReserveRacingItsReleaseNeverStrandsUnits(t *testing.T) {
	ctx := context.Background()
	const orders, initial = 40, 1000
	a, b, p := twoReplicas(t, initial)
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
	s := stockOf(t, a, p.ID)
	if s.Reserved != 0 || s.Available != initial || s.Available+s.Reserved+s.Sold != initial+s.Restocked {
		t.Fatalf("after every order was released the stock is %+v: %d units stranded in reserved", s, s.Reserved)
	}
}

// A late reserve racing its order's commit (a saga's reserve still on its
// way when another instance, having resumed the order, commits it) never
// reserves again: once every order is sold, nothing stays reserved.
func TestALateReserveRacingItsCommitNeverStrandsUnits(t *testing.T) {
	ctx := context.Background()
	const orders, initial = 40, 1000
	a, b, p := twoReplicas(t, initial)
	var wg sync.WaitGroup
	for i := range orders {
		o := fmt.Sprintf("o%d", i)
		if _, _, err := b.Reserve(ctx, p.ID, o, 1); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { _, _, _ = a.Reserve(ctx, p.ID, o, 1) })
		wg.Go(func() { _, _ = b.Commit(ctx, p.ID, o) })
	}
	wg.Wait()
	for i := range orders { // the saga retries its commit until it is answered
		if _, err := b.Commit(ctx, p.ID, fmt.Sprintf("o%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	s := stockOf(t, a, p.ID)
	if s.Reserved != 0 || s.Sold != orders || s.Available+s.Reserved+s.Sold != initial+s.Restocked {
		t.Fatalf("after %d orders were sold once each the stock is %+v: reserved again, or sold twice", orders, s)
	}
}

// twoReplicas is two product replicas' catalogs on one broker, and a
// product with initial units in stock.
func twoReplicas(t *testing.T, initial int64) (a, b *Catalog, p Product) {
	t.Helper()
	bus := kittest.Bus(t, "product")
	a, b = newCatalog(t, bus), newCatalog(t, bus)
	p, err := a.Create(context.Background(), NewProduct{Name: "Lamp", Category: "home", Price: 1000, Stock: initial})
	if err != nil {
		t.Fatal(err)
	}
	return a, b, p
}

func stockOf(t *testing.T, c *Catalog, productID string) StockLevel {
	t.Helper()
	s, err := c.Stock(context.Background(), productID)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
