package user

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// A balance remembers the order.confirmed events it was credited from, so a
// redelivery is recognised. It must remember one for as long as the event
// can come again: while the ORDERS stream keeps it (a durable re-created
// from the stream's start replays seven days). So credits are forgotten by
// age, never by count: a customer with many orders in a week is still
// credited once for each.
//
// An event older than that cannot be told apart from one credited and
// forgotten; only a dead letter replayed long after can be one. It is not
// credited: it goes back to the dead letters, saying why, for a person to
// decide (see OnOrderConfirmed).
var (
	// creditsAccepted is the age up to which an event is credited: the
	// stream's retention, and a margin for the clocks of user's replicas.
	creditsAccepted = ordersRetention() + 12*time.Hour
	// creditsKept is how long a credit is remembered: longer again than
	// creditsAccepted, so a replica whose clock runs behind another's never
	// accepts an event whose credit the other has already forgotten.
	creditsKept = creditsAccepted + 12*time.Hour
)

func ordersRetention() time.Duration {
	st, err := catalog.StreamFor(catalog.OrderConfirmed)
	if err != nil || st.MaxAge <= 0 {
		panic(fmt.Sprintf("user: points need the order.confirmed stream to age its events out: %+v %v", st, err))
	}
	return st.MaxAge
}

// credit is one event a balance was credited from: its id, and its time
// (when it was published).
type credit struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// UnmarshalJSON also reads a bare id, as balances written before credits
// kept their time hold them. Such a credit gets a time when the balance is
// next written (see remember).
func (c *credit) UnmarshalJSON(b []byte) error {
	var id string
	if err := json.Unmarshal(b, &id); err == nil {
		*c = credit{ID: id}
		return nil
	}
	type plain credit
	return json.Unmarshal(b, (*plain)(c))
}

// credited reports whether the balance was credited from event id.
func (p *pointsRecord) credited(id string) bool {
	for _, c := range p.Applied {
		if c.ID == id {
			return true
		}
	}
	return false
}

// remember records a credit from event id published at at, and forgets
// the credits older than creditsKept. A credit of unknown time (written
// before credits had one) is dated now, the earliest it can safely be
// forgotten from.
func (p *pointsRecord) remember(id string, at, now time.Time) {
	kept := p.Applied[:0]
	for _, c := range p.Applied {
		if c.At.IsZero() {
			c.At = now
		}
		if now.Sub(c.At) <= creditsKept {
			kept = append(kept, c)
		}
	}
	p.Applied = append(kept, credit{ID: id, At: at.UTC()})
}
