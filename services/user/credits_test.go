package user

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// confirmed is user's order.confirmed event for an order of total minor
// units, published at at.
func confirmed(t *testing.T, userID, order string, total int64, at time.Time) kit.Event {
	t.Helper()
	data, err := json.Marshal(map[string]any{"userId": userID, "orderId": order, "total": total})
	if err != nil {
		t.Fatal(err)
	}
	return kit.Event{ID: kit.EventID(catalog.OrderConfirmed, order), Type: catalog.OrderConfirmed, Time: at, Data: data}
}

func balance(t *testing.T, a *Users, userID string) pointsRecord {
	t.Helper()
	p, _, err := a.points.Get(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A customer with more orders in a week than any count the balance might
// keep is still credited once for the oldest when its event comes again,
// as it does when the user-points durable is re-created from the stream's
// start. The balance used to keep the last 512 ids only.
func TestPointsRememberEveryCreditTheStreamCanRedeliver(t *testing.T) {
	ctx := context.Background()
	a := newUsers(t)
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	a.now = func() time.Time { return now }
	const orders = 600
	var first kit.Event
	for i := range orders {
		// Spread over six days, inside the stream's seven.
		ev := confirmed(t, "u1", fmt.Sprintf("o%d", i), 10_000, now.Add(-6*24*time.Hour+time.Duration(i)*time.Minute))
		if i == 0 {
			first = ev
		}
		if err := a.OnOrderConfirmed(ctx, ev); err != nil {
			t.Fatalf("order %d: %v", i, err)
		}
	}
	if err := a.OnOrderConfirmed(ctx, first); !errors.Is(err, kit.ErrDuplicate) {
		t.Fatalf("the oldest event again: %v, want a duplicate", err)
	}
	if p := balance(t, a, "u1"); p.Points.Points != orders {
		t.Fatalf("points = %d, want %d: one per order", p.Points.Points, orders)
	}
}

// Credits are forgotten by age, so a balance does not grow for ever; an
// event older than the credits remembered is refused, not credited again.
func TestPointsForgetCreditsByAgeAndRefuseOlderEvents(t *testing.T) {
	ctx := context.Background()
	a := newUsers(t)
	start := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	now := start
	a.now = func() time.Time { return now }
	old := confirmed(t, "u1", "o-old", 10_000, start)
	if err := a.OnOrderConfirmed(ctx, old); err != nil {
		t.Fatal(err)
	}

	// Within the accepted age the old event is still a duplicate.
	now = start.Add(creditsAccepted)
	if err := a.OnOrderConfirmed(ctx, old); !errors.Is(err, kit.ErrDuplicate) {
		t.Fatalf("at the edge of the accepted age: %v, want a duplicate", err)
	}

	// Past creditsKept a new credit drops it from the balance.
	now = start.Add(creditsKept + time.Hour)
	if err := a.OnOrderConfirmed(ctx, confirmed(t, "u1", "o-new", 20_000, now)); err != nil {
		t.Fatal(err)
	}
	p := balance(t, a, "u1")
	if p.credited(old.ID) || !p.credited(kit.EventID(catalog.OrderConfirmed, "o-new")) || len(p.Applied) != 1 {
		t.Fatalf("credits = %+v, want only o-new's", p.Applied)
	}

	// The old event, replayed from the dead letters now, cannot be told
	// apart from one never credited: it is refused for a person to decide.
	err := a.OnOrderConfirmed(ctx, old)
	if !errors.Is(err, kit.ErrPermanent) {
		t.Fatalf("an event past the remembered age: %v, want a permanent error", err)
	}
	if p := balance(t, a, "u1"); p.Points.Points != 3 {
		t.Fatalf("points = %d, want 3 (1 + 2): the old event credited once", p.Points.Points)
	}
}

// Balances written before credits had a time hold bare ids: they still
// count, and are dated at the next write so they are kept a full age.
func TestPointsReadCreditsWithoutTime(t *testing.T) {
	ctx := context.Background()
	a := newUsers(t)
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	a.now = func() time.Time { return now }
	legacy := kit.EventID(catalog.OrderConfirmed, "o-legacy")
	raw := fmt.Sprintf(`{"userId":"u1","points":5,"applied":[%q]}`, legacy)
	if _, err := a.points.Bucket().Put(ctx, "u1", []byte(raw)); err != nil {
		t.Fatal(err)
	}
	if err := a.OnOrderConfirmed(ctx, confirmed(t, "u1", "o-legacy", 10_000, now)); !errors.Is(err, kit.ErrDuplicate) {
		t.Fatalf("an id credited before: %v, want a duplicate", err)
	}
	if err := a.OnOrderConfirmed(ctx, confirmed(t, "u1", "o2", 10_000, now)); err != nil {
		t.Fatal(err)
	}
	p := balance(t, a, "u1")
	if p.Points.Points != 6 || len(p.Applied) != 2 || !p.Applied[0].At.Equal(now) || p.Applied[0].ID != legacy {
		t.Fatalf("balance = %+v, want 6 points, the legacy credit dated now and o2", p)
	}
}
