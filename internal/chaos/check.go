package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/user"
)

// Invariant names: what a run checks once quiet. PendingInvariants in the
// short test refers to them.
const (
	InvQuiescent         = "quiescent"            // orders settled, consumers caught up, nothing reserved, in time
	InvFinal             = "orders-final"         // every order confirmed or cancelled, nothing owed
	InvConfirmedPaid     = "confirmed-paid"       // confirmed ⇒ exactly one completed, unrefunded payment of its total
	InvCancelledUnpaid   = "cancelled-unpaid"     // cancelled ⇒ no completed, unrefunded payment
	InvPaymentsHaveOrder = "payments-have-orders" // a completed payment belongs to a confirmed order
	InvStockConserved    = "stock-conserved"      // available + reserved + sold = initial + restocked, at every revision seen
	InvNoReserved        = "nothing-reserved"     // reserved = 0 once quiet
	InvSold              = "sold-matches"         // sold = Σ confirmed quantities
	InvReservations      = "reservations-match"   // each line's reservation ended as its order did
	InvPoints            = "points-once"          // points once per confirmed order, never for a cancelled one
	InvNotified          = "notified-once"        // one notification record per final event, none for the other outcome
	InvMailed            = "mailed-once"          // one mail sent per final event, none for the other outcome
	InvNoDeadLetters     = "no-dead-letters"      // no event a commerce consumer gave up on
	InvAnswers           = "answers-hold"         // what a client was told (confirmed, cancelled) is how the order ended
)

// Invariants lists them in report order.
var Invariants = []string{InvQuiescent, InvFinal, InvConfirmedPaid, InvCancelledUnpaid, InvPaymentsHaveOrder,
	InvStockConserved, InvNoReserved, InvSold, InvReservations, InvPoints, InvNotified, InvMailed, InvNoDeadLetters, InvAnswers}

// Check is one invariant's outcome.
type Check struct {
	Name    string
	Checked int // things checked: orders, products, revisions…
	// Violations name the offending orders or products, one per line.
	Violations []string
	// NotCheckable says why the code under test does not let it be
	// checked (a field its records lack); it then neither passes nor fails.
	NotCheckable string
	// Note qualifies a check that ran.
	Note string
	// Offenders are the orders (or products) named by the violations, in
	// order, for the evidence the report prints.
	Offenders []string
}

// flag records a violation about an order or product.
func (c *Check) flag(who, format string, args ...any) {
	c.Violations = append(c.Violations, fmt.Sprintf(format, args...))
	if !slices.Contains(c.Offenders, who) {
		c.Offenders = append(c.Offenders, who)
	}
}

// quiet is what quiescence waits for.
type quiet struct {
	pending   []string // orders not settled
	lagging   []string // consumers behind
	reserved  []string // products with units reserved
	snap      *snapshot
	readError error
}

// all: quiet, on a snapshot of one moment.
func (q quiet) all() bool {
	return q.readError == nil && q.snap.Consistent && len(q.pending) == 0 && len(q.lagging) == 0 && len(q.reserved) == 0
}

func observe(ctx context.Context, s *stores, products []product) quiet {
	snap, err := s.read(ctx)
	if err != nil {
		return quiet{readError: err}
	}
	q := quiet{snap: snap}
	for _, id := range slices.Sorted(maps.Keys(snap.Orders)) {
		if o := snap.Orders[id]; !o.settled() {
			q.pending = append(q.pending, fmt.Sprintf("%s %s step=%s owed=%v", id, o.Status, o.Step, o.Owed))
		}
	}
	for _, d := range slices.Sorted(maps.Keys(snap.Consumers)) {
		if l := snap.Consumers[d]; l.Err != "" || l.Pending > 0 || l.AckPending > 0 {
			q.lagging = append(q.lagging, fmt.Sprintf("%s pending=%d ackPending=%d %s", d, l.Pending, l.AckPending, l.Err))
		}
	}
	q.reserved = reservedNow(snap, products)
	return q
}

// reservedNow lists what is still held: reserved counters, active
// reservations in stock records, reservation records in state reserved.
func reservedNow(snap *snapshot, products []product) []string {
	var out []string
	for _, p := range products {
		st := snap.Stock[p.ID]
		if st.Reserved != nil && *st.Reserved != 0 {
			out = append(out, fmt.Sprintf("product %s: reserved %d (active %v)", p.ID, *st.Reserved, st.Active))
		} else if len(st.Active) > 0 {
			out = append(out, fmt.Sprintf("product %s: active reservations %v", p.ID, st.Active))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(snap.Reservations)) {
		if r := snap.Reservations[k]; r.State == "reserved" {
			out = append(out, fmt.Sprintf("reservation %s: %d still reserved", k, r.Quantity))
		}
	}
	return out
}

// digest is what progress means: what is unsettled, lagging or reserved.
func (q quiet) digest() string {
	return fmt.Sprint(q.pending, q.lagging, q.reserved, q.readError)
}

// waitQuiet polls the stores until every order is settled, every consumer
// caught up and nothing reserved. It gives up when nothing has moved for
// stall (what is left is stuck: a stranded reservation, a compensation
// that can never succeed) or after deadline in any case. It returns the
// last observation, how long it waited, and whether all was quiet.
func waitQuiet(ctx context.Context, s *stores, products []product, deadline, stall time.Duration, say func(string, ...any)) (quiet, time.Duration, bool) {
	start := time.Now()
	last, since := "", start
	for {
		q := observe(ctx, s, products)
		if q.all() {
			return q, time.Since(start), true
		}
		if d := q.digest(); d != last {
			last, since = d, time.Now()
			say("waiting for quiescence: %d orders unsettled, %d consumers behind %v, %d reservations held, one moment read: %v",
				len(q.pending), len(q.lagging), q.lagging, len(q.reserved), q.snap != nil && q.snap.Consistent)
		}
		if time.Since(since) > stall || time.Since(start) > deadline || ctx.Err() != nil {
			took := time.Since(start)
			// Stuck sagas still write (a sweep renews their lease): look
			// for a moment between two writes, so the checks read one.
			for i := 0; i < 20 && (q.snap == nil || !q.snap.Consistent) && ctx.Err() == nil; i++ {
				q = observe(ctx, s, products)
			}
			return q, took, false
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// facts is what the checks compare.
type facts struct {
	snap      *snapshot
	plan      plan
	customers []customer
	answers   []answer
	mails     map[mailKey]int
	watchRevs int
	watchBad  []string
	q         quiet
	quietOK   bool
	quietTook time.Duration
}

// check runs every invariant.
func check(f facts) []Check {
	s := f.snap
	byID := map[string]int{} // order id → job index
	for _, j := range f.plan.Jobs {
		byID[orderID(f.customers[j.Customer], j)] = j.Index
	}
	ids := slices.Sorted(maps.Keys(s.Orders))
	var out []Check
	add := func(c Check) { out = append(out, c) }

	// Quiescence.
	qc := Check{Name: InvQuiescent, Checked: 1}
	if !f.quietOK {
		qc.Violations = append(qc.Violations, fmt.Sprintf("not quiet after %s", f.quietTook.Round(time.Millisecond)))
		for _, list := range [][]string{f.q.pending, f.q.lagging, f.q.reserved} {
			qc.Violations = append(qc.Violations, head(list, 10)...)
		}
		if f.q.readError != nil {
			qc.Violations = append(qc.Violations, "reading the stores: "+f.q.readError.Error())
		}
	}
	add(qc)

	// Orders end final with nothing owed; each job's order exists.
	fc := Check{Name: InvFinal}
	for _, id := range ids {
		fc.Checked++
		o := s.Orders[id]
		if !o.settled() {
			fc.flag(id, "order %s is %s at step %q, owed %v, outbox %s", id, o.Status, o.Step, o.Owed, orNone(o.Outbox))
		}
		if _, ok := byID[id]; !ok {
			fc.flag(id, "order %s was placed by no job of the load", id)
		}
	}
	add(fc)

	// Money.
	cp := Check{Name: InvConfirmedPaid}
	cu := Check{Name: InvCancelledUnpaid}
	for _, id := range ids {
		o := s.Orders[id]
		p, paid := s.Payments[id]
		completed := paid && p.Status == "completed"
		switch o.Status {
		case "confirmed":
			cp.Checked++
			switch {
			case !completed:
				cp.flag(id, "order %s confirmed, payment %s", id, paymentState(p, paid))
			case p.Amount != o.Total:
				cp.flag(id, "order %s confirmed for %d, charged %d", id, o.Total, p.Amount)
			case o.PaymentID != "" && o.PaymentID != p.ID:
				cp.flag(id, "order %s names payment %s, its payment is %s", id, o.PaymentID, p.ID)
			}
		case "cancelled":
			cu.Checked++
			if completed {
				cu.flag(id, "order %s cancelled (%s), payment %s completed for %d, never refunded", id, errCode(o), p.ID, p.Amount)
			}
		}
	}
	add(cp)
	add(cu)
	ph := Check{Name: InvPaymentsHaveOrder}
	for _, k := range slices.Sorted(maps.Keys(s.Payments)) {
		p := s.Payments[k]
		if p.Status != "completed" {
			continue
		}
		ph.Checked++
		if o, ok := s.Orders[p.OrderID]; !ok {
			ph.flag(p.OrderID, "payment %s completed for %d: order %s does not exist", p.ID, p.Amount, p.OrderID)
		} else if o.Status == "pending" {
			ph.flag(p.OrderID, "payment %s completed: order %s still pending", p.ID, p.OrderID)
		}
	}
	add(ph)

	// Stock.
	out = append(out, checkStock(f, ids)...)

	// Points.
	add(checkPoints(f, ids))

	// Notifications and mails.
	nr, ml := checkNotifications(f, ids)
	add(nr)
	add(ml)
	dl := Check{Name: InvNoDeadLetters, Checked: 1, Violations: s.DeadLetters}
	if s.DeadLetters == nil {
		dl.NotCheckable = "no dead-letter stream on this code"
	}
	add(dl)

	// What clients were told.
	ac := Check{Name: InvAnswers}
	for _, j := range f.plan.Jobs {
		a := f.answers[j.Index]
		if !finalStatus(a.OrderStatus) {
			continue
		}
		ac.Checked++
		id := orderID(f.customers[j.Customer], j)
		o, ok := s.Orders[id]
		switch {
		case !ok:
			ac.flag(id, "order %s: client told %s (HTTP %d), no order recorded", id, a.OrderStatus, a.Status)
		case o.Status != a.OrderStatus:
			ac.flag(id, "order %s: client told %s (HTTP %d), order ended %s", id, a.OrderStatus, a.Status, o.Status)
		}
	}
	add(ac)
	return out
}

func checkStock(f facts, ids []string) []Check {
	s := f.snap
	conserved := Check{Name: InvStockConserved, Checked: f.watchRevs, Violations: f.watchBad}
	none := Check{Name: InvNoReserved}
	sold := Check{Name: InvSold}
	confirmedQty := map[string]int64{}
	for _, id := range ids {
		if o := s.Orders[id]; o.Status == "confirmed" {
			for _, it := range o.Items {
				confirmedQty[it.ProductID] += it.Quantity
			}
		}
	}
	var missing []string
	for _, p := range f.plan.Products {
		st, ok := s.Stock[p.ID]
		if !ok {
			conserved.flag(p.ID, "product %s has no stock record", p.ID)
			continue
		}
		for name, v := range map[string]*int64{"available": st.Available, "reserved": st.Reserved, "sold": st.Sold} {
			if v == nil {
				missing = append(missing, name)
			}
		}
		conserved.Checked++
		if msg := conservation(p.ID, st, p.Initial); msg != "" {
			conserved.flag(p.ID, "final: %s", msg)
		}
		if st.Sold != nil {
			sold.Checked++
			if *st.Sold != confirmedQty[p.ID] {
				sold.flag(p.ID, "product %s: sold %d, confirmed orders bought %d", p.ID, *st.Sold, confirmedQty[p.ID])
			}
		}
		none.Checked++
	}
	none.Violations = reservedNow(s, f.plan.Products)
	slices.Sort(missing)
	missing = slices.Compact(missing)
	if len(missing) > 0 {
		why := "the stock record has no " + strings.Join(missing, ", ")
		conserved.NotCheckable = why
		if slices.Contains(missing, "sold") {
			sold.NotCheckable = why
		}
	} else if s.Stock[f.plan.Products[0].ID].Restocked == nil {
		conserved.Note = "the stock record has no restocked counter; the load restocks nothing, so it is 0"
	}

	// Each order line's reservation, while product keeps reservation records.
	rm := Check{Name: InvReservations}
	if len(s.Reservations) == 0 && len(ids) > 0 {
		rm.NotCheckable = "product keeps no reservation records (res.<product>.<order>) on this code"
	} else {
		for _, id := range ids {
			o := s.Orders[id]
			for _, it := range o.Items {
				rm.Checked++
				r, ok := s.Reservations["res."+it.ProductID+"."+id]
				switch {
				case o.Status == "confirmed" && (!ok || r.State != "committed" || r.Quantity != it.Quantity):
					rm.flag(id, "order %s confirmed, its reservation of %d × %s is %s", id, it.Quantity, it.ProductID, reservationState(r, ok))
				case o.Status == "cancelled" && ok && r.State != "released":
					rm.flag(id, "order %s cancelled (%s), its reservation of %d × %s is %s", id, errCode(o), it.Quantity, it.ProductID, reservationState(r, ok))
				}
			}
		}
	}
	return []Check{conserved, none, sold, rm}
}

func checkPoints(f facts, ids []string) Check {
	s := f.snap
	c := Check{Name: InvPoints}
	want := map[string]int64{}
	users := map[string]bool{}
	for _, id := range ids {
		o := s.Orders[id]
		users[o.UserID] = true
		pr := s.Points[o.UserID]
		credited := slices.Contains(pr.Applied, kit.EventID(catalog.OrderConfirmed, id))
		c.Checked++
		switch o.Status {
		case "confirmed":
			want[o.UserID] += o.Total / user.MinorPerPoint
			if !credited {
				c.flag(id, "order %s confirmed, its points never credited", id)
			}
		case "cancelled":
			if credited {
				// A cancelled record keeps no total: the charge says what
				// the order.confirmed event carried.
				c.flag(id, "order %s cancelled (%s), yet credited for its order.confirmed (charged %d, %d points)",
					id, errCode(o), s.Payments[id].Amount, s.Payments[id].Amount/user.MinorPerPoint)
			}
		}
	}
	for _, u := range slices.Sorted(maps.Keys(users)) {
		if got := s.Points[u].Points; got != want[u] {
			c.flag(u, "user %s has %d points, its confirmed orders earn %d", u, got, want[u])
		}
	}
	return c
}

var outcomeEvents = map[string]string{"confirmed": catalog.OrderConfirmed, "cancelled": catalog.OrderCancelled, "refunded": catalog.OrderRefunded}

func checkNotifications(f facts, ids []string) (Check, Check) {
	s := f.snap
	records := map[string][]notificationRec{}
	for _, n := range s.Notifications {
		records[n.EventID] = append(records[n.EventID], n)
	}
	nr := Check{Name: InvNotified}
	ml := Check{Name: InvMailed}
	unsettled := 0
	for _, id := range ids {
		o := s.Orders[id]
		if !o.settled() {
			unsettled++ // its outcome event goes out once nothing is owed: orders-final reports it
			continue
		}
		nr.Checked++
		ml.Checked++
		for status, typ := range outcomeEvents {
			ev := kit.EventID(typ, id)
			n := len(records[ev])
			sent := f.mails[mailKey{id, status}]
			if status == o.Status {
				if n != 1 {
					nr.flag(id, "order %s %s: %d %s notification records", id, o.Status, n, typ)
				} else if st := records[ev][0].Status; st != "" && st != "sent" && st != "unknown" {
					nr.flag(id, "order %s %s: its %s notification is %s", id, o.Status, typ, st)
				}
				if sent != 1 {
					ml.flag(id, "order %s %s: %d %q mails sent", id, o.Status, sent, status)
				}
				continue
			}
			if n > 0 {
				nr.flag(id, "order %s %s, yet notified %s", id, o.Status, typ)
			}
			if sent > 0 {
				ml.flag(id, "order %s %s, yet %d %q mails sent", id, o.Status, sent, status)
			}
		}
	}
	if unsettled > 0 {
		nr.Note = fmt.Sprintf("%d unsettled orders skipped: their event is not due yet", unsettled)
		ml.Note = nr.Note
	}
	return nr, ml
}

func paymentState(p events.Payment, ok bool) string {
	if !ok {
		return "missing"
	}
	return p.Status
}

func reservationState(r reservationRec, ok bool) string {
	if !ok {
		return "missing"
	}
	return fmt.Sprintf("%s (%d)", r.State, r.Quantity)
}

func errCode(o orderRec) string {
	if o.Error == nil {
		return "no error"
	}
	return o.Error.Code
}

func orNone(r []byte) string {
	if emptyJSON(r) {
		return "empty"
	}
	return string(r)
}

func head(list []string, n int) []string {
	if len(list) <= n {
		return list
	}
	return append(slices.Clone(list[:n]), fmt.Sprintf("… and %d more", len(list)-n))
}

// evidence is what the stores hold about an order or a product, for a
// reader to judge a violation: the order record (with its history, lease
// and what it owes), its payment, its reservations, notifications and
// mails; or the product's stock record.
func evidence(s *snapshot, mails map[mailKey]int, events map[string][]eventLine, who string) string {
	var b strings.Builder
	if o, ok := s.Orders[who]; ok {
		fmt.Fprintf(&b, "order record: %s\n", o.raw)
		if p, ok := s.Payments[who]; ok {
			raw, _ := json.Marshal(p)
			fmt.Fprintf(&b, "payment: %s\n", raw)
		} else {
			b.WriteString("payment: none\n")
		}
		for _, it := range o.Items {
			k := "res." + it.ProductID + "." + who
			if r, ok := s.Reservations[k]; ok {
				fmt.Fprintf(&b, "reservation %s: %s %d\n", k, r.State, r.Quantity)
			}
		}
		for _, n := range s.Notifications {
			if strings.HasSuffix(n.EventID, ":"+who) {
				fmt.Fprintf(&b, "notification: %s (%s)\n", n.EventID, orDefault(n.Status, "sent"))
			}
		}
		for _, what := range []string{"confirmed", "cancelled", "refunded"} {
			if n := mails[mailKey{who, what}]; n > 0 {
				fmt.Fprintf(&b, "mails %q: %d\n", what, n)
			}
		}
		credited := slices.Contains(s.Points[o.UserID].Applied, kit.EventID(catalog.OrderConfirmed, who))
		fmt.Fprintf(&b, "points credited for order.confirmed:%s: %v\n", who, credited)
		for _, e := range events[who] {
			fmt.Fprintf(&b, "event: %s\n", e)
		}
		return b.String()
	}
	if st, ok := s.Stock[who]; ok {
		fmt.Fprintf(&b, "stock record: %s\n", st.raw)
	}
	return b.String()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
