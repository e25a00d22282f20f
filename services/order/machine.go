package order

import (
	"encoding/json"
	"fmt"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Steps of the saga. A record's Step is the step to run next; each is
// idempotent per order id, so a step interrupted by a crash is run again
// from its start by whoever holds the lease next.
const (
	StepReserve = "reserve" // hold every item (product)
	StepCharge  = "charge"  // take the total (payment); entered only once the attempt is on record
	StepCommit  = "commit"  // turn the reservations into sales (product)
	StepConfirm = "confirm" // publish order.confirmed from the outbox
	StepRelease = "release" // give the reservations back (a sale already made is restocked)
	StepRefund  = "refund"  // after an attempted charge: void it at payment, refunding it if it completed
	StepCancel  = "cancel"  // publish order.cancelled from the outbox
	StepRepay   = "repay"   // staff refund: give the money back
	StepRestock = "restock" // staff refund: put the goods back on sale, if staff said so
	StepClose   = "close"   // staff refund: publish order.refunded from the outbox
	StepDone    = "done"    // nothing left to do
)

// What a step can end with. A step that cannot end now (an upstream down,
// the instance stopping, its lease lost) has no outcome: the record stays
// where it is and the next holder of the lease runs the step again.
const (
	OnOK      = "ok"
	OnRefused = "refused" // the order cannot go on: it is cancelled
	// Entry outcomes: a request, not a step, starts these.
	OnPlace       = "place"        // POST /orders
	OnStaffRefund = "staff refund" // POST /orders/{id}/refund
)

// Transition is one row of the saga: from a step, on an outcome, to the
// next step, with the order's new status and the event written to the
// outbox in the same compare-and-set.
type Transition struct {
	From, On, To string
	Status       string // "" keeps the status
	Event        string // "" writes none
}

// Transitions is the saga, whole: nothing else decides where an order goes.
// The package doc shows it (a test keeps the two alike). Every row is
// applied by one compare-and-set on the order's record that carries the
// driver's fencing token (lease owner and generation).
var Transitions = []Transition{
	{"", OnPlace, StepReserve, Pending, catalog.OrderCreated},
	{StepReserve, OnOK, StepCharge, "", ""},
	{StepReserve, OnRefused, StepRelease, Cancelled, ""},
	{StepCharge, OnOK, StepCommit, "", ""},
	{StepCharge, OnRefused, StepRelease, Cancelled, ""},
	{StepCommit, OnOK, StepConfirm, Confirmed, catalog.OrderConfirmed},
	{StepCommit, OnRefused, StepRelease, Cancelled, ""},
	{StepConfirm, OnOK, StepDone, "", ""},
	{StepRelease, OnOK, StepRefund, "", ""},
	{StepRefund, OnOK, StepCancel, "", catalog.OrderCancelled},
	{StepCancel, OnOK, StepDone, "", ""},
	{StepDone, OnStaffRefund, StepRepay, Refunded, ""},
	{StepRepay, OnOK, StepRestock, "", ""},
	{StepRestock, OnOK, StepClose, "", catalog.OrderRefunded},
	{StepClose, OnOK, StepDone, "", ""},
}

// next finds the row leaving from on an outcome.
func next(from, on string) (Transition, bool) {
	for _, t := range Transitions {
		if t.From == from && t.On == on {
			return t, true
		}
	}
	return Transition{}, false
}

// Money says, on a cancelled order, what happened to the customer's money.
const (
	MoneyNone     = "none"     // nothing was taken
	MoneyReturned = "returned" // it was taken and has been given back
)

// outboxEvent is an event written to the record with the transition that
// raised it, and published after it, with its id as Nats-Msg-Id.
type outboxEvent struct {
	ID   string          `json:"id"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// payload is what e publishes: its data as stored, as a kit.Payload.
func (e outboxEvent) payload() kit.Payload { return rawPayload(e) }

type rawPayload outboxEvent

func (p rawPayload) EventType() string            { return p.Type }
func (p rawPayload) MarshalJSON() ([]byte, error) { return p.Data, nil }

// eventOf builds the outbox entry of typ for the record as it stands.
func eventOf(typ string, r *record) (outboxEvent, error) {
	var data kit.Payload
	switch typ {
	case catalog.OrderCreated:
		data = events.OrderCreated{Order: r.Order}
	case catalog.OrderConfirmed:
		data = events.OrderConfirmed{OrderOutcome: r.outcome()}
	case catalog.OrderCancelled:
		data = events.OrderCancelled{OrderOutcome: r.outcome()}
	case catalog.OrderRefunded:
		var decided events.Refund
		if r.Refund != nil {
			decided = *r.Refund
		}
		data = events.OrderRefunded{OrderOutcome: r.outcome(), Refund: decided}
	default:
		return outboxEvent{}, fmt.Errorf("order: no event %q", typ)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return outboxEvent{}, err
	}
	return outboxEvent{ID: kit.EventID(typ, r.ID), Type: typ, Data: raw}, nil
}
