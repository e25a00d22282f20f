package chaos

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/order"
	"github.com/switchboard-dev/switchboard/services/user"
)

// world is a small consistent outcome: customer 0 bought 2 of product 0
// (confirmed, paid, credited, notified, mailed), customer 1's order of 1
// of product 0 was cancelled out of stock (released, nothing charged).
func world() facts {
	p := product{ID: "p0", Price: 20000, Initial: 2}
	customers := []customer{{ID: "u0"}, {ID: "u1"}}
	jobs := []job{
		{Index: 0, Customer: 0, Key: "k0", Items: []line{{Product: 0, Quantity: 2}}, Method: okMethod},
		{Index: 1, Customer: 1, Key: "k1", Items: []line{{Product: 0, Quantity: 1}}, Method: okMethod},
	}
	pl := plan{Products: []product{p}, Customers: 2, Jobs: jobs}
	ok, no := orderID(customers[0], jobs[0]), orderID(customers[1], jobs[1])
	i64 := func(n int64) *int64 { return &n }
	s := &snapshot{
		Orders: map[string]orderRec{
			ok: {Order: events.Order{ID: ok, UserID: "u0", Status: "confirmed", Total: 40000, PaymentID: "pay_" + ok,
				Items: []events.Item{{ProductID: "p0", Quantity: 2, Price: 20000}}}, Step: order.StepDone},
			no: {Order: events.Order{ID: no, UserID: "u1", Status: "cancelled", Error: &kit.Error{Code: "out_of_stock"},
				Items: []events.Item{{ProductID: "p0", Quantity: 1}}}, Step: order.StepDone},
		},
		Payments: map[string]events.Payment{ok: {ID: "pay_" + ok, OrderID: ok, Amount: 40000, Status: "completed"}},
		Stock:    map[string]stockRec{"p0": {Available: i64(0), Reserved: i64(0), Sold: i64(2)}},
		Reservations: map[string]reservationRec{
			"res.p0." + ok: {ProductID: "p0", OrderID: ok, Quantity: 2, State: "committed"},
			"res.p0." + no: {ProductID: "p0", OrderID: no, Quantity: 0, State: "released"},
		},
		Points: map[string]pointsRec{"u0": {UserID: "u0", Points: 4, Applied: []string{kit.EventID(catalog.OrderConfirmed, ok)}}},
		Notifications: []notificationRec{
			{EventID: kit.EventID(catalog.OrderConfirmed, ok), Status: "sent"},
			{EventID: kit.EventID(catalog.OrderCancelled, no), Status: "sent"},
		},
		Consumers:   map[string]consumerLag{},
		DeadLetters: []string{},
	}
	return facts{snap: s, plan: pl, customers: customers,
		answers:   []answer{{Status: 201, OrderStatus: "confirmed"}, {Status: 409, OrderStatus: "cancelled"}},
		mails:     map[mailKey]int{{ok, "confirmed"}: 1, {no, "cancelled"}: 1},
		watchRevs: 3, quietOK: true}
}

func (f facts) ids() (confirmed, cancelled string) {
	return orderID(f.customers[0], f.plan.Jobs[0]), orderID(f.customers[1], f.plan.Jobs[1])
}

func TestChecks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		breaks func(f *facts)
		want   []string // the invariants that must report a violation
	}{
		{"a consistent outcome breaks nothing", func(*facts) {}, nil},
		{"a cancelled order whose charge completed and was never refunded", func(f *facts) {
			_, no := f.ids()
			f.snap.Payments[no] = events.Payment{ID: "pay_" + no, OrderID: no, Amount: 20000, Status: "completed"}
		}, []string{InvCancelledUnpaid}},
		{"a confirmed order without a payment", func(f *facts) {
			ok, _ := f.ids()
			delete(f.snap.Payments, ok)
		}, []string{InvConfirmedPaid}},
		{"a confirmed order whose payment was refunded", func(f *facts) {
			ok, _ := f.ids()
			p := f.snap.Payments[ok]
			p.Status = "refunded"
			f.snap.Payments[ok] = p
		}, []string{InvConfirmedPaid}},
		{"a completed payment for an order that does not exist", func(f *facts) {
			f.snap.Payments["ghost"] = events.Payment{ID: "pay_ghost", OrderID: "ghost", Amount: 1, Status: "completed"}
		}, []string{InvPaymentsHaveOrder}},
		{"an order left pending", func(f *facts) {
			ok, _ := f.ids()
			o := f.snap.Orders[ok]
			o.Status = "pending"
			f.snap.Orders[ok] = o
		}, []string{InvFinal, InvPaymentsHaveOrder, InvSold, InvPoints, InvAnswers}},
		{"a cancelled order still owing a release", func(f *facts) {
			_, no := f.ids()
			o := f.snap.Orders[no]
			o.Owed = []string{"release"}
			f.snap.Orders[no] = o
		}, []string{InvFinal}},
		{"a cancelled order whose saga has not yet released, refunded and announced it", func(f *facts) {
			// The status is final from the moment the saga decides it;
			// order.cancelled goes out steps later. The harness once took
			// the status for the end, checked before the sweep had run
			// those steps, and reported the e-mails as lost.
			_, no := f.ids()
			o := f.snap.Orders[no]
			o.Step = order.StepRelease
			f.snap.Orders[no] = o
		}, []string{InvFinal}},
		{"a confirmed order whose saga has not finished", func(f *facts) {
			ok, _ := f.ids()
			o := f.snap.Orders[ok]
			o.Step = order.StepConfirm
			f.snap.Orders[ok] = o
		}, []string{InvFinal}},
		{"a unit that vanished from the stock", func(f *facts) {
			*f.snap.Stock["p0"].Sold = 1
		}, []string{InvStockConserved, InvSold}},
		{"a stock revision seen during the run that did not add up", func(f *facts) {
			f.watchBad = []string{"rev 7: product p0: …"}
		}, []string{InvStockConserved}},
		{"units stranded in reserved", func(f *facts) {
			st := f.snap.Stock["p0"]
			*st.Reserved, *st.Sold = 1, 1
			_, no := f.ids()
			f.snap.Reservations["res.p0."+no] = reservationRec{ProductID: "p0", OrderID: no, Quantity: 1, State: "reserved"}
		}, []string{InvNoReserved, InvSold, InvReservations}},
		{"a cancelled order's reservation committed: sold for nothing", func(f *facts) {
			_, no := f.ids()
			f.snap.Reservations["res.p0."+no] = reservationRec{ProductID: "p0", OrderID: no, Quantity: 1, State: "committed"}
		}, []string{InvReservations}},
		{"points credited for a cancelled order", func(f *facts) {
			_, no := f.ids()
			f.snap.Points["u1"] = pointsRec{UserID: "u1", Points: 2, Applied: []string{kit.EventID(catalog.OrderConfirmed, no)}}
		}, []string{InvPoints}},
		{"points credited twice", func(f *facts) {
			p := f.snap.Points["u0"]
			p.Points = 8
			f.snap.Points["u0"] = p
		}, []string{InvPoints}},
		{"a confirmed order also announced cancelled", func(f *facts) {
			ok, _ := f.ids()
			f.snap.Notifications = append(f.snap.Notifications, notificationRec{EventID: kit.EventID(catalog.OrderCancelled, ok)})
			f.mails[mailKey{ok, "cancelled"}] = 1
		}, []string{InvNotified, InvMailed}},
		{"a confirmation mailed twice", func(f *facts) {
			ok, _ := f.ids()
			f.mails[mailKey{ok, "confirmed"}] = 2
		}, []string{InvMailed}},
		{"a client told confirmed about an order that ended cancelled", func(f *facts) {
			f.answers[1] = answer{Status: 201, OrderStatus: "confirmed"}
		}, []string{InvAnswers}},
		{"an event a consumer gave up on", func(f *facts) {
			f.snap.DeadLetters = []string{"dlq.user.user-points: event order.confirmed:x exhausted"}
		}, []string{InvNoDeadLetters}},
		{"no quiescence", func(f *facts) {
			f.quietOK = false
		}, []string{InvQuiescent}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := world()
			tc.breaks(&f)
			var got []string
			for _, c := range check(f) {
				if len(c.Violations) > 0 {
					got = append(got, c.Name)
				}
				if len(tc.want) == 0 && c.Checked == 0 {
					t.Errorf("%s checked nothing", c.Name)
				}
			}
			want := slices.Clone(tc.want)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("violated %v, want %v", got, want)
			}
		})
	}
}

// A stock record without a sold counter cannot be checked for
// conservation or sales; the checks say so instead of passing.
func TestStockFieldsMissing(t *testing.T) {
	f := world()
	f.snap.Stock["p0"] = stockRec{Available: f.snap.Stock["p0"].Available, Reserved: f.snap.Stock["p0"].Reserved}
	for _, c := range check(f) {
		if (c.Name == InvStockConserved || c.Name == InvSold) && c.NotCheckable == "" {
			t.Errorf("%s: checkable without sold: %+v", c.Name, c)
		}
	}
}

func TestScheduleFromSeed(t *testing.T) {
	const lease = 2 * time.Second
	a := schedule(rand.New(rand.NewPCG(7, 1)), 30, 2000, lease)
	b := schedule(rand.New(rand.NewPCG(7, 1)), 30, 2000, lease)
	if !slices.Equal(a, b) {
		t.Fatal("one seed drew two schedules")
	}
	kinds := map[string]int{}
	for i, f := range a {
		kinds[f.Kind]++
		if i > 0 && f.AfterOrders < a[i-1].AfterOrders {
			t.Errorf("fault %d fires before fault %d", i, i-1)
		}
		if f.AfterOrders < 100 || f.AfterOrders >= 1900 {
			t.Errorf("fault %d at order %d, outside the middle of the load", i, f.AfterOrders)
		}
		if f.Kind == FaultPause && f.Down <= 2*lease {
			t.Errorf("pause of %s does not outlast twice the lease", f.Down)
		}
		if f.Kind != FaultBroker && !slices.Contains(faultTargets, f.Service) {
			t.Errorf("fault %d hits %s", i, f.Service)
		}
	}
	for _, k := range FaultKinds {
		if kinds[k] == 0 {
			t.Errorf("no %s in %v", k, kinds)
		}
	}
}

func TestPlanIsScarce(t *testing.T) {
	p := newPlan(rand.New(rand.NewPCG(3, 3)), 2000)
	demand := map[int]int64{}
	declined := 0
	for _, j := range p.Jobs {
		if j.Method == declinedMethod {
			declined++
			continue
		}
		for _, it := range j.Items {
			demand[it.Product] += it.Quantity
		}
	}
	short := 0
	for i, pr := range p.Products {
		if pr.Initial < demand[i] {
			short++
		}
		if pr.Price < user.MinorPerPoint {
			t.Errorf("%s costs %d: an order of one would earn no points", pr.Name, pr.Price)
		}
	}
	if short < len(p.Products)-1 || declined == 0 {
		t.Errorf("%d of %d products short of their demand, %d declined payments: the load should cancel for both reasons", short, len(p.Products), declined)
	}
}

// The harness reads balances as user writes them now (credits with their
// time) and as it wrote them before (bare ids).
func TestPointsRecordReadsBothShapes(t *testing.T) {
	for _, raw := range []string{
		`{"userId":"u1","points":3,"applied":[{"id":"order.confirmed:a","at":"2026-11-30T12:00:00Z"},{"id":"order.confirmed:b","at":"2026-11-30T12:01:00Z"}]}`,
		`{"userId":"u1","points":3,"applied":["order.confirmed:a","order.confirmed:b"]}`,
	} {
		var p pointsRec
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if p.UserID != "u1" || p.Points != 3 || !slices.Equal(p.Applied, []string{"order.confirmed:a", "order.confirmed:b"}) {
			t.Fatalf("%s read as %+v", raw, p)
		}
	}
}

// An order is settled once its saga is done, whatever its status says.
func TestSettled(t *testing.T) {
	for _, tc := range []struct {
		o    orderRec
		want bool
	}{
		{orderRec{Order: events.Order{Status: "cancelled"}, Step: order.StepDone}, true},
		{orderRec{Order: events.Order{Status: "confirmed"}, Step: order.StepDone}, true},
		{orderRec{Order: events.Order{Status: "cancelled"}}, true}, // from before the saga had steps
		{orderRec{Order: events.Order{Status: "cancelled"}, Step: order.StepRelease}, false},
		{orderRec{Order: events.Order{Status: "cancelled"}, Step: order.StepRefund}, false},
		{orderRec{Order: events.Order{Status: "cancelled"}, Step: order.StepCancel}, false},
		{orderRec{Order: events.Order{Status: "confirmed"}, Step: order.StepConfirm}, false},
		{orderRec{Order: events.Order{Status: "refunded"}, Step: order.StepRepay}, false},
		{orderRec{Order: events.Order{Status: "pending"}, Step: order.StepReserve}, false},
		{orderRec{Order: events.Order{Status: "cancelled"}, Step: order.StepDone, Outbox: json.RawMessage(`[{"id":"x"}]`)}, false},
		{orderRec{Order: events.Order{Status: "cancelled"}, Owed: []string{"release"}}, false},
	} {
		if got := tc.o.settled(); got != tc.want {
			t.Errorf("%s at step %q (outbox %s, owed %v): settled = %v, want %v", tc.o.Status, tc.o.Step, tc.o.Outbox, tc.o.Owed, got, tc.want)
		}
	}
}
