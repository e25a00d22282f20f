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
	bus := kittest.Bus(t, "product")
	a, b := newCatalog(t, bus), newCatalog(t, bus)
	const orders, initial = 40, 1000
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

// A late reserve racing its order's commit (a saga's reserve still on its
// way when another instance, having resumed the order, commits it) never
// reserves again: once every order is sold, nothing stays reserved.
func TestALateReserveRacingItsCommitNeverStrandsUnits(t *testing.T) {
	ctx := context.Background()
	bus := kittest.Bus(t, "product")
	a, b := newCatalog(t, bus), newCatalog(t, bus)
	const orders, initial = 40, 1000
	p, err := a.Create(ctx, NewProduct{Name: "Lamp", Category: "home", Price: 1000, Stock: initial})
	if err != nil {
		t.Fatal(err)
	}
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
	s, err := a.Stock(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s.Reserved != 0 || s.Sold != orders || s.Available+s.Reserved+s.Sold != initial+s.Restocked {
		t.Fatalf("after %d orders were sold once each the stock is %+v: reserved again, or sold twice", orders, s)
	}
}
