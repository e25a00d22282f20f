package product

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	if got := level(); got.Available != 3 || got.Reserved != 0 || got.Sold != 2 {
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
	if got := level(); got.Available != 3 || got.Reserved != 0 || got.Sold != 2 {
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
	if _, err := c.Commit(ctx, p.ID, "never"); code(err) != CodeReservationNotFound {
		t.Fatalf("commit of an unknown reservation: %v", err)
	}
	if _, _, err := c.Reserve(ctx, "nothing-here", "o5", 1); code(err) != CodeUnknownProduct || kit.AsError(err).Field != "product_id" {
		t.Fatalf("reserving an unknown product: %v", err)
	}
	if _, err := c.Level(ctx, "nothing-here"); code(err) != CodeUnknownProduct {
		t.Fatalf("the stock of an unknown product: %v", err)
	}
	for _, bad := range []struct{ product, order, field string }{{"a b", "o6", "product_id"}, {p.ID, "", "order_id"}} {
		if _, _, err := c.Reserve(ctx, bad.product, bad.order, 1); code(err) != kit.CodeInvalid || kit.AsError(err).Field != bad.field {
			t.Errorf("reserve(%q, %q): %v, want invalid %s", bad.product, bad.order, err, bad.field)
		}
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

func FuzzProductBodies(f *testing.F) {
	for _, s := range []string{`{"name":"Lamp","category":"home","price":1,"stock":1}`, `{"stock":-1}`, `{"quantity":1e20}`, `{"price":0}`, `{"name":" ","price":5}`, `[`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var p NewProduct
		if err := kit.DecodeJSON(strings.NewReader(body), &p); err != nil {
			if kit.AsError(err).Status != 400 {
				t.Fatalf("%v is not a 400", err)
			}
		} else {
			_ = p.Validate()
		}
		var patch ProductPatch
		if err := kit.DecodeJSON(strings.NewReader(body), &patch); err == nil && patch.Validate() == nil {
			if patch.Price != nil && *patch.Price <= 0 {
				t.Fatalf("accepted %+v", patch)
			}
		}
	})
}

func TestRestockPutsASaleBackOnce(t *testing.T) {
	ctx := context.Background()
	c := newCatalog(t, kittest.Bus(t, "product"))
	p, err := c.Create(ctx, NewProduct{Name: "Kettle", Category: "kitchen", Price: 3000, Stock: 10})
	if err != nil {
		t.Fatal(err)
	}
	sell := func(order string, qty int64) {
		t.Helper()
		if _, _, err := c.Reserve(ctx, p.ID, order, qty); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Commit(ctx, p.ID, order); err != nil {
			t.Fatal(err)
		}
	}
	level := func() StockLevel {
		t.Helper()
		s, err := c.Stock(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sell("sold", 3)
	if got := level(); got != (StockLevel{ProductID: p.ID, Available: 7, Sold: 3}) {
		t.Fatalf("after the sale: %+v", got)
	}
	for i := range 2 {
		r, replayed, err := c.Restock(ctx, p.ID, "sold", 3)
		if err != nil || r.State != Restocked || r.Restocked != 3 || replayed != (i == 1) {
			t.Fatalf("restock %d: %+v replayed %v, %v", i+1, r, replayed, err)
		}
	}
	if got := level(); got != (StockLevel{ProductID: p.ID, Available: 10, Sold: 3, Restocked: 3}) {
		t.Fatalf("a restock asked twice must move the units once: %+v", got)
	}
	if _, err := c.Commit(ctx, p.ID, "sold"); err != nil || level().Sold != 3 {
		t.Fatalf("a late commit must not sell a restocked order again: %v %+v", err, level())
	}

	if _, _, err := c.Reserve(ctx, p.ID, "held", 1); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Release(ctx, p.ID, "gone")
	sell("two", 2)
	refusals := []struct {
		name, order string
		qty         int64
		code        string
	}{
		{"a reservation not yet committed", "held", 1, CodeReservationNotFound},
		{"a released reservation", "gone", 1, CodeReservationNotFound},
		{"another quantity than the order restocked", "sold", 2, CodeIdempotencyMismatch},
		{"more than the order bought", "two", 3, CodeRestockExceedsSale},
		{"an order that bought nothing here", "never", 1, CodeReservationNotFound},
		{"a zero quantity", "sold", 0, kit.CodeInvalid},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := c.Restock(ctx, p.ID, tt.order, tt.qty); code(err) != tt.code {
				t.Fatalf("got %v, want %s", err, tt.code)
			}
		})
	}
	if got := level(); got != (StockLevel{ProductID: p.ID, Available: 7, Reserved: 1, Sold: 5, Restocked: 3}) {
		t.Fatalf("refused restocks moved stock: %+v", got)
	}
	// Part of a sale comes back: the rest stays sold, and asking again for
	// another part is refused.
	if _, _, err := c.Restock(ctx, p.ID, "two", 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Restock(ctx, p.ID, "two", 2); code(err) != CodeIdempotencyMismatch {
		t.Fatalf("a second, different restock of one order: %v", err)
	}
	if got := level(); got != (StockLevel{ProductID: p.ID, Available: 8, Reserved: 1, Sold: 5, Restocked: 4}) {
		t.Fatalf("after a partial restock: %+v", got)
	}
}

// A restock interrupted after its stock write (the units moved, the
// reservation still says committed) is finished by the retry, without
// moving the units twice.
func TestRestockResumesAfterACrash(t *testing.T) {
	ctx := context.Background()
	c := newCatalog(t, kittest.Bus(t, "product"))
	p, _ := c.Create(ctx, NewProduct{Name: "Mug", Category: "kitchen", Price: 900, Stock: 5})
	_, _, _ = c.Reserve(ctx, p.ID, "o1", 2)
	if _, err := c.Commit(ctx, p.ID, "o1"); err != nil {
		t.Fatal(err)
	}
	// What the first write of an interrupted Restock left.
	if _, err := c.stocks.Update(ctx, p.ID, func(s *stock) error {
		s.Available += 2
		s.Restocked += 2
		s.Returning = map[string]int64{"o1": 2}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r, replayed, err := c.Restock(ctx, p.ID, "o1", 2)
	if err != nil || r.State != Restocked || !replayed {
		t.Fatalf("resumed restock: %+v %v", r, err)
	}
	st, _, _ := c.stocks.Get(ctx, p.ID)
	if st.Available != 5 || st.Sold != 2 || st.Restocked != 2 || len(st.Returning) != 0 {
		t.Fatalf("stock after the resumed restock: %+v", st)
	}
}

func TestPatchProduct(t *testing.T) {
	ctx := context.Background()
	c := newCatalog(t, kittest.Bus(t, "product"))
	p, _ := c.Create(ctx, NewProduct{Name: "Lamp", Category: "home", Price: 1000, Stock: 5})
	name, price := "  Desk lamp ", int64(1500)
	got, err := c.Update(ctx, p.ID, ProductPatch{Name: &name, Price: &price})
	if err != nil || got != (Product{ID: p.ID, Name: "Desk lamp", Category: "home", Price: 1500, Stock: 5}) {
		t.Fatalf("patched %+v %v", got, err)
	}
	empty, bad, zero := "", "no spaces", int64(0)
	for _, tt := range []struct {
		name  string
		patch ProductPatch
		field string
	}{
		{"an empty name", ProductPatch{Name: &empty}, "name"},
		{"a category that is no id", ProductPatch{Category: &bad}, "category"},
		{"a zero price", ProductPatch{Price: &zero}, "price"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if e := kit.AsError(firstOf(c.Update(ctx, p.ID, tt.patch))); e.Status != 400 || e.Field != tt.field {
				t.Fatalf("got %+v, want a 400 naming %s", e, tt.field)
			}
		})
	}
	if _, err := c.Update(ctx, "nope", ProductPatch{Name: &name}); code(err) != kit.CodeNotFound {
		t.Fatalf("patching an unknown product: %v", err)
	}
	if again, _ := c.Get(ctx, p.ID); again.Name != "Desk lamp" || again.Price != 1500 {
		t.Fatalf("refused patches changed the product: %+v", again)
	}
}

func firstOf[T any](_ T, err error) error { return err }

// A sale leaves the stock record for the ledger at once, and a released
// hold after holdRetention, so the record stays as small as the
// reservations in flight; replays then read the ledger: a repeated Commit
// still answers the sale, a Release is still refused, a late Reserve
// reserves nothing again.
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
	st, _, _ := c.stocks.Get(ctx, p.ID)
	if _, ok := st.Orders["sold"]; ok || st.Orders["given"].State != Released {
		t.Fatalf("after a sale and a release the record holds %+v, want the release's tombstone only", st.Orders)
	}
	later := time.Now().Add(holdRetention + time.Minute)
	c.now = func() time.Time { return later }
	if _, _, err := c.Reserve(ctx, p.ID, "next", 1); err != nil { // a write prunes
		t.Fatal(err)
	}
	st, _, _ = c.stocks.Get(ctx, p.ID)
	if _, ok := st.Orders["given"]; ok || len(st.Orders) != 1 {
		t.Fatalf("ended holds kept past their retention: %+v", st.Orders)
	}
	if r, err := c.Commit(ctx, p.ID, "sold"); err != nil || r.State != Committed || r.Quantity != 2 {
		t.Fatalf("a repeated commit after the hold was forgotten: %+v %v", r, err)
	}
	if _, err := c.Release(ctx, p.ID, "sold"); code(err) != CodeReservationDone {
		t.Fatalf("releasing a sale after its hold was forgotten: %v", err)
	}
	if r, created, err := c.Reserve(ctx, p.ID, "sold", 2); err != nil || created || r.State != Committed {
		t.Fatalf("a late reserve of a sold order: %+v created=%v %v, want the sale", r, created, err)
	}
	if _, _, err := c.Reserve(ctx, p.ID, "sold", 3); code(err) != CodeIdempotencyMismatch {
		t.Fatalf("a late reserve of a sold order for another quantity: %v", err)
	}
	if s, _ := c.Stock(ctx, p.ID); s.Available != 7 || s.Reserved != 1 || s.Sold != 2 {
		t.Fatalf("stock %+v", s)
	}
}

// However many orders a product sells, its stock record holds only the
// reservations in flight: every reserve and commit reads and writes it.
func TestTheStockRecordDoesNotGrowWithSales(t *testing.T) {
	ctx := context.Background()
	c := newCatalog(t, kittest.Bus(t, "product"))
	p, err := c.Create(ctx, NewProduct{Name: "Lamp", Category: "home", Price: 1000, Stock: 1000})
	if err != nil {
		t.Fatal(err)
	}
	e, err := c.stocks.Bucket().Get(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	empty := len(e.Value())
	for i := range 100 {
		o := fmt.Sprint("o", i)
		if _, _, err := c.Reserve(ctx, p.ID, o, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Commit(ctx, p.ID, o); err != nil {
			t.Fatal(err)
		}
	}
	if e, err = c.stocks.Bucket().Get(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.Stock(ctx, p.ID); s.Sold != 100 || s.Available != 900 || s.Reserved != 0 {
		t.Fatalf("stock %+v", s)
	}
	if got := len(e.Value()); got > empty+16 {
		t.Fatalf("after 100 sales the stock record is %d bytes (%d with none): %s", got, empty, e.Value())
	}
}

// Commit writes the sale to the ledger before it moves the units: a
// Commit that stopped between the two (a crash) leaves the units reserved
// and the sale in the ledger, and the saga's retry finishes the move once.
func TestACommitInterruptedAfterTheLedgerIsFinishedByItsRetry(t *testing.T) {
	ctx := context.Background()
	c := newCatalog(t, kittest.Bus(t, "product"))
	p, err := c.Create(ctx, NewProduct{Name: "Lamp", Category: "home", Price: 1000, Stock: 10})
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := c.Reserve(ctx, p.ID, "o1", 3)
	if err != nil {
		t.Fatal(err)
	}
	r.State = Committed
	if _, err := c.recordSale(ctx, r); err != nil { // the first half of a Commit
		t.Fatal(err)
	}
	if s, _ := c.Stock(ctx, p.ID); s.Reserved != 3 || s.Sold != 0 {
		t.Fatalf("after the ledger half the stock is %+v", s)
	}
	for range 2 {
		if got, err := c.Commit(ctx, p.ID, "o1"); err != nil || got.State != Committed || got.Quantity != 3 {
			t.Fatalf("the retried commit: %+v %v", got, err)
		}
	}
	if s, _ := c.Stock(ctx, p.ID); s.Available != 7 || s.Reserved != 0 || s.Sold != 3 {
		t.Fatalf("after the retried commit the stock is %+v", s)
	}
}
