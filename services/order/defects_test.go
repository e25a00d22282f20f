package order

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/payment"
)

// The defects of issue 12, one test each. Every one of them failed on the
// saga before the state machine (the report of that change quotes the
// failures); they use only what both versions have, so they can be run
// against either.

// moneyPayments is fakePayments that remembers whether money moved: a
// charge that succeeded takes it, a refund or a void gives it back. crash,
// when set, is called right after a charge went through: the instance
// dies before it can record what it learned.
type moneyPayments struct {
	*fakePayments
	taken, returned atomic.Bool
	crash           func()
}

func (p *moneyPayments) Charge(ctx context.Context, c ChargeRequest) (Payment, error) {
	pay, err := p.fakePayments.Charge(ctx, c)
	if err == nil {
		p.taken.Store(true)
		if p.crash != nil {
			p.crash()
		}
	}
	return pay, err
}

func (p *moneyPayments) Refund(ctx context.Context, order, reason string) (Payment, error) {
	pay, err := p.fakePayments.Refund(ctx, order, reason)
	if err == nil {
		p.returned.Store(true)
	}
	return pay, err
}

func (p *moneyPayments) Void(ctx context.Context, order, reason string) (VoidOutcome, error) {
	v, err := p.fakePayments.Void(ctx, order, reason)
	if err == nil {
		p.returned.Store(true)
	}
	return v, err
}

// Resume after a charge: an instance dies between the charge and the
// commit, and the saga is resumed while product's breaker is open. The
// order may wait, or be cancelled with its money returned; it may never
// end cancelled with the money kept.
func TestResumeAfterAChargeNeverKeepsTheMoneyOfACancelledOrder(t *testing.T) {
	st, _ := kit.NewStore[record](kittest.Bus(t, "order").Bucket("orders"))
	stock := products()
	ctx, crash := context.WithCancel(context.Background())
	pay := &moneyPayments{fakePayments: &fakePayments{status: PaymentCompleted}, crash: crash}
	dying, _ := NewOrders(st, stock, pay, &kittest.Published{}, "dying", time.Minute)
	o, _, _ := dying.Place(ctx, claims, "k1", req)
	if !pay.taken.Load() || o.Status != Pending {
		t.Fatalf("setup: the first instance should die charged and pending: %s", o.Status)
	}

	pay.crash = nil
	stock.open = true // product is down: its breaker is open
	stock.errs = map[string]error{"commit": transport(ErrBreakerOpen), "reserve": transport(ErrBreakerOpen)}
	next, _ := NewOrders(st, stock, pay, &kittest.Published{}, "next", time.Minute)
	next.now = func() time.Time { return time.Now().Add(time.Hour) } // the dead instance's lease has expired
	if _, err := next.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _ := next.Get(context.Background(), "u1", o.ID)
	if got.Status == Cancelled && !pay.returned.Load() {
		t.Fatalf("the resumed order was cancelled and its charge neither refunded nor voided")
	}

	stock.open, stock.errs = false, nil // product is back
	if _, err := next.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _ = next.Get(context.Background(), "u1", o.ID)
	if got.Status == Cancelled && !pay.returned.Load() || got.Status == Pending {
		t.Fatalf("after product came back the order is %s (money returned: %v)", got.Status, pay.returned.Load())
	}
}

// slowStock runs during inside the first Reserve, before reserving: a
// step that outlives the lease.
type slowStock struct {
	*fakeStock
	once   sync.Once
	during func()
}

func (s *slowStock) Reserve(ctx context.Context, product, order string, qty int64) (Reservation, error) {
	s.once.Do(s.during)
	return s.fakeStock.Reserve(ctx, product, order, qty)
}

// Leases renewed: a step that takes longer than the lease keeps it, so
// another instance's sweep leaves the saga alone.
func TestALeaseIsRenewedWhileAStepRuns(t *testing.T) {
	const lease = 3 * time.Second
	st, _ := kit.NewStore[record](kittest.Bus(t, "order").Bucket("orders"))
	pay := &fakePayments{status: PaymentCompleted}
	other, _ := NewOrders(st, products(), pay, &kittest.Published{}, "other", lease)
	var resumed int
	stock := &slowStock{fakeStock: products()}
	stock.during = func() {
		time.Sleep(lease + time.Second) // a slow upstream: the first lease would have run out
		resumed, _ = other.Sweep(context.Background())
	}
	first, _ := NewOrders(st, stock, pay, &kittest.Published{}, "first", lease)
	o, _, err := first.Place(context.Background(), claims, "k1", req)
	if resumed != 0 {
		t.Fatalf("another instance took over a saga whose driver was still at work (resumed %d)", resumed)
	}
	if err != nil || o.Status != Confirmed || pay.called("charge") != 1 {
		t.Fatalf("order %s (%v), %d charges", o.Status, err, pay.called("charge"))
	}
}

// Fencing: an instance whose lease was taken over (it paused for longer
// than the lease) stops before its next side effect: it never charges an
// order another instance now drives.
func TestADriverThatLostItsLeaseStopsBeforeItsNextSideEffect(t *testing.T) {
	st, _ := kit.NewStore[record](kittest.Bus(t, "order").Bucket("orders"))
	pay := &fakePayments{status: PaymentCompleted}
	other, _ := NewOrders(st, products(), pay, &kittest.Published{}, "other", time.Minute)
	other.now = func() time.Time { return time.Now().Add(time.Hour) } // sees the paused lease expired
	stock := &slowStock{fakeStock: products()}
	stock.during = func() {
		if n, _ := other.Sweep(context.Background()); n != 1 {
			t.Errorf("the other instance resumed %d sagas, want the paused one", n)
		}
	}
	paused, _ := NewOrders(st, stock, pay, &kittest.Published{}, "paused", time.Minute)
	o, _, _ := paused.Place(context.Background(), claims, "k1", req)
	if n := pay.called("charge"); n != 1 {
		t.Fatalf("%d charges: the instance that lost its lease went on charging", n)
	}
	if got, _ := other.Get(context.Background(), "u1", o.ID); got.Status != Confirmed {
		t.Fatalf("the order is %s", got.Status)
	}
}

// storedFirst is a publisher that checks, as each outcome event leaves,
// that the order it announces is already stored so.
type storedFirst struct {
	kittest.Published
	st  *kit.Store[record]
	bad atomic.Value // string
}

func (p *storedFirst) Publish(ctx context.Context, id, subject string, data kit.Payload) error {
	want := map[string]string{catalog.OrderConfirmed: Confirmed, catalog.OrderCancelled: Cancelled}[data.EventType()]
	if want != "" {
		rec, _, err := p.st.Get(ctx, key("u1", IDFor("u1", "k1")))
		if err != nil || rec.Status != want {
			p.bad.Store(data.EventType() + " published while the order is stored " + rec.Status)
		}
	}
	return p.Published.Publish(ctx, id, subject, data)
}

// order.confirmed leaves after the confirmation is stored, never before:
// an instance dying in between must not leave a confirmed event for an
// order another instance may still cancel.
func TestOrderConfirmedIsPublishedAfterItIsStored(t *testing.T) {
	st, _ := kit.NewStore[record](kittest.Bus(t, "order").Bucket("orders"))
	pub := &storedFirst{st: st}
	s, _ := NewOrders(st, products(), &fakePayments{status: PaymentCompleted}, pub, "test", time.Minute)
	if o, _, err := s.Place(context.Background(), claims, "k1", req); err != nil || o.Status != Confirmed {
		t.Fatalf("%s %v", o.Status, err)
	}
	if bad, _ := pub.bad.Load().(string); bad != "" {
		t.Fatal(bad)
	}
}

// latePayments is payment's real Ledger behind the port, with a network
// that loses the first charge on the way: the caller hears nothing
// (ambiguous), and the charge reaches the ledger only when deliver is
// called, after the saga decided.
type latePayments struct {
	l    *payment.Ledger
	mu   sync.Mutex
	held *payment.ChargeRequest
}

var ledgerStatus = map[string]PaymentStatus{payment.Completed: PaymentCompleted, payment.Declined: PaymentDeclined,
	payment.Refunded: PaymentRefunded, payment.Voided: PaymentVoided}

func (p *latePayments) Charge(_ context.Context, c ChargeRequest) (Payment, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == nil {
		p.held = &payment.ChargeRequest{OrderID: c.OrderID, UserID: c.UserID, Amount: c.Amount, Method: c.Method}
		return Payment{}, transport(ErrAmbiguous)
	}
	pay, _, err := p.l.Charge(context.Background(), *p.held)
	return Payment{ID: pay.ID, OrderID: pay.OrderID, Amount: pay.Amount, Status: ledgerStatus[pay.Status]}, err
}

func (p *latePayments) deliver(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _, err := p.l.Charge(ctx, *p.held)
	return err
}

func (p *latePayments) Status(ctx context.Context, order string) (Payment, error) {
	pay, found, err := p.l.Status(ctx, order)
	if err != nil || !found {
		return Payment{OrderID: order, Status: PaymentNone}, err
	}
	return Payment{ID: pay.ID, OrderID: order, Amount: pay.Amount, Status: ledgerStatus[pay.Status]}, nil
}

func (p *latePayments) Refund(ctx context.Context, order, reason string) (Payment, error) {
	pay, err := p.l.Refund(ctx, order, reason)
	return Payment{ID: pay.ID, OrderID: order, Status: ledgerStatus[pay.Status]}, err
}

func (p *latePayments) Void(ctx context.Context, order, reason string) (VoidOutcome, error) {
	pay, taken, err := p.l.Void(ctx, order, reason)
	return VoidOutcome{Status: ledgerStatus[pay.Status], MoneyTaken: taken}, err
}

func (p *latePayments) Open() bool { return false }

// Late charges: a charge whose answer was lost, that payment had not seen
// when the saga asked, reaches payment after the order was cancelled. It
// must be refused (or refunded at once), never left completed.
func TestAChargeArrivingAfterTheCancellationIsNeverKept(t *testing.T) {
	ctx := context.Background()
	ledger, err := payment.NewLedger(mustStore[events.Payment](t, "payment", "payments"), &kittest.Published{})
	if err != nil {
		t.Fatal(err)
	}
	pay := &latePayments{l: ledger}
	pub := &kittest.Published{}
	s, _ := NewOrders(mustStore[record](t, "order", "orders"), products(), pay, pub, "test", time.Minute)
	o, _, _ := s.Place(ctx, claims, "k1", req)
	if o.Status != Cancelled {
		t.Fatalf("setup: the order should be cancelled, is %s", o.Status)
	}
	_ = pay.deliver(ctx) // the late charge lands
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := ledger.Status(ctx, o.ID); got.Status == payment.Completed {
		t.Fatalf("a charge that arrived after the cancellation was left completed: %+v", got)
	}
}

func mustStore[T any](t *testing.T, service, bucket string) *kit.Store[T] {
	t.Helper()
	st, err := kit.NewStore[T](kittest.Bus(t, service).Bucket(bucket))
	if err != nil {
		t.Fatal(err)
	}
	return st
}
