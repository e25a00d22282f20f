package events_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

var (
	t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t1 = t0.Add(time.Hour)
)

var (
	order = events.Order{ID: "o1", UserID: "u1", Status: "pending", Items: []events.Item{{ProductID: "p1", Quantity: 2}}, PaymentMethod: "card",
		ShippingAddress: "1 Main St", History: []events.Change{{Status: "pending", At: t0}}, CreatedAt: t0, UpdatedAt: t0}
	payment = events.Payment{ID: "pay_o1", OrderID: "o1", UserID: "u1", Amount: 10000, Method: "card", Status: "completed", CreatedAt: t0}
	video   = events.Video{ID: "v1", Title: "Sintel", Genres: []string{"animation", "fantasy"}, DurationSec: 888, Regions: []string{"eu", "us"},
		MinPlan: events.PlanBasic, SourceHeight: 480, Status: "encoding", Renditions: []events.Rendition{}, CreatedAt: t0}
	heartbeat = events.Playback{SessionID: "s1", AccountID: "a1", ContentID: "v1", Region: "eu", CDN: "edge-eu-1", Quality: "720p", DurationSec: 888,
		Seq: 3, PositionSec: 30.5, WatchedSec: 30}
)

func with[T any](v T, edit func(*T)) T {
	edit(&v)
	return v
}

// wire holds one sample event per subject and the bytes the services put
// on the wire for it before this package existed (each marshalled its own
// struct, or a map for order.confirmed and order.cancelled). Consumers read
// older events from the streams, so these must not change.
var wire = []struct {
	data kit.Payload
	want string
}{
	{events.OrderCreated{Order: order},
		`{"id":"o1","userId":"u1","status":"pending","items":[{"productId":"p1","quantity":2}],"total":0,"paymentMethod":"card","shippingAddress":"1 Main St","history":[{"status":"pending","at":"2026-01-02T03:04:05Z"}],"createdAt":"2026-01-02T03:04:05Z","updatedAt":"2026-01-02T03:04:05Z"}`},
	{events.OrderConfirmed{OrderOutcome: events.OrderOutcome{Email: "ada@example.com", ID: "o1", Items: []events.Item{{ProductID: "p1", Quantity: 2, Price: 5000}},
		PaymentID: "pay_o1", Status: "confirmed", Total: 10000, UserID: "u1"}},
		`{"email":"ada@example.com","error":null,"id":"o1","items":[{"productId":"p1","quantity":2,"price":5000}],"paymentId":"pay_o1","status":"confirmed","total":10000,"userId":"u1"}`},
	{events.OrderCancelled{OrderOutcome: events.OrderOutcome{Email: "ada@example.com", ID: "o1", Items: []events.Item{{ProductID: "p1", Quantity: 2}},
		Error: &kit.Error{Status: 409, Code: "out_of_stock", Message: "only 0 left", Field: "items[0].quantity"}, Status: "cancelled", UserID: "u1"}},
		`{"email":"ada@example.com","error":{"code":"out_of_stock","message":"only 0 left","field":"items[0].quantity"},"id":"o1","items":[{"productId":"p1","quantity":2}],"paymentId":"","status":"cancelled","total":0,"userId":"u1"}`},
	// New with order.refunded: the refunded order's outcome and what staff decided.
	{events.OrderRefunded{OrderOutcome: events.OrderOutcome{Email: "ada@example.com", ID: "o1", Items: []events.Item{{ProductID: "p1", Quantity: 2, Price: 5000}},
		PaymentID: "pay_o1", Status: "refunded", Total: 10000, UserID: "u1"}, Refund: events.Refund{Restock: true, Reason: "arrived broken"}},
		`{"email":"ada@example.com","error":null,"id":"o1","items":[{"productId":"p1","quantity":2,"price":5000}],"paymentId":"pay_o1","status":"refunded","total":10000,"userId":"u1","refund":{"restock":true,"reason":"arrived broken"}}`},
	{events.PaymentCompleted{Payment: payment},
		`{"id":"pay_o1","orderId":"o1","userId":"u1","amount":10000,"method":"card","status":"completed","createdAt":"2026-01-02T03:04:05Z"}`},
	{events.PaymentFailed{Payment: with(payment, func(p *events.Payment) { p.Status, p.Reason = "declined", "card declined" })},
		`{"id":"pay_o1","orderId":"o1","userId":"u1","amount":10000,"method":"card","status":"declined","reason":"card declined","createdAt":"2026-01-02T03:04:05Z"}`},
	{events.PaymentRefunded{Payment: with(payment, func(p *events.Payment) { p.Status, p.RefundedAt = "refunded", &t1 })},
		`{"id":"pay_o1","orderId":"o1","userId":"u1","amount":10000,"method":"card","status":"refunded","createdAt":"2026-01-02T03:04:05Z","refundedAt":"2026-01-02T04:04:05Z"}`},
	{events.UserRegistered{User: events.User{ID: "u1", Email: "ada@example.com", Name: "Ada"}},
		`{"id":"u1","email":"ada@example.com","name":"Ada"}`},
	{events.AccountCreated{Account: events.Account{ID: "a1", Email: "ada@example.com", Plan: events.PlanBasic, Profiles: []events.Profile{}}},
		`{"id":"a1","email":"ada@example.com","plan":"basic","profiles":[]}`},
	{events.AccountPlanChanged{AccountID: "a1", From: events.PlanBasic, To: events.PlanPremium},
		`{"accountId":"a1","from":"basic","to":"premium"}`},
	{events.ContentCreated{Video: video},
		`{"id":"v1","title":"Sintel","genres":["animation","fantasy"],"durationSec":888,"regions":["eu","us"],"minPlan":"basic","sourceHeight":480,"status":"encoding","renditions":[],"createdAt":"2026-01-02T03:04:05Z"}`},
	{events.ContentEncodeRequested{VideoID: "v1", SourceHeight: 480},
		`{"videoId":"v1","sourceHeight":480}`},
	{events.ContentEncoded{Video: with(video, func(v *events.Video) {
		v.Status, v.Renditions = "ready", []events.Rendition{{Quality: "240p", Height: 240, BitrateKbps: 400}, {Quality: "360p", Height: 360, BitrateKbps: 800}, {Quality: "480p", Height: 480, BitrateKbps: 1400}}
	})},
		`{"id":"v1","title":"Sintel","genres":["animation","fantasy"],"durationSec":888,"regions":["eu","us"],"minPlan":"basic","sourceHeight":480,"status":"ready","renditions":[{"quality":"240p","height":240,"bitrateKbps":400},{"quality":"360p","height":360,"bitrateKbps":800},{"quality":"480p","height":480,"bitrateKbps":1400}],"createdAt":"2026-01-02T03:04:05Z"}`},
	{events.PlaybackStarted{Playback: events.Playback{SessionID: "s1", AccountID: "a1", ProfileID: "pr1", ContentID: "v1", Genres: []string{"animation"},
		Region: "eu", CDN: "edge-eu-1", Quality: "480p", DurationSec: 888}},
		`{"sessionId":"s1","accountId":"a1","profileId":"pr1","contentId":"v1","genres":["animation"],"region":"eu","cdn":"edge-eu-1","quality":"480p","durationSec":888,"seq":0,"positionSec":0,"watchedSec":0,"finished":false}`},
	{events.PlaybackHeartbeat{Playback: heartbeat},
		`{"sessionId":"s1","accountId":"a1","contentId":"v1","region":"eu","cdn":"edge-eu-1","quality":"720p","durationSec":888,"seq":3,"positionSec":30.5,"watchedSec":30,"finished":false}`},
	{events.PlaybackStopped{Playback: with(heartbeat, func(p *events.Playback) {
		p.Seq, p.PositionSec, p.WatchedSec, p.Finished, p.Reason = 4, 850, 845, true, "stopped"
	})},
		`{"sessionId":"s1","accountId":"a1","contentId":"v1","region":"eu","cdn":"edge-eu-1","quality":"720p","durationSec":888,"seq":4,"positionSec":850,"watchedSec":845,"finished":true,"reason":"stopped"}`},
}

func TestTheWireFormatIsUnchanged(t *testing.T) {
	for _, tt := range wire {
		t.Run(tt.data.EventType(), func(t *testing.T) {
			got, err := json.Marshal(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("marshalled\n%s\nwant\n%s", got, tt.want)
			}
			// Consumers decode what publishers send, to the same value.
			back := reflect.New(reflect.TypeOf(tt.data))
			if err := json.Unmarshal(got, back.Interface()); err != nil {
				t.Fatal(err)
			}
			if again, _ := json.Marshal(back.Elem().Interface()); string(again) != tt.want {
				t.Errorf("decoded and marshalled again:\n%s", again)
			}
		})
	}
}

func TestEverySubjectHasOneContract(t *testing.T) {
	types := map[string]reflect.Type{}
	for _, tt := range wire {
		typ := tt.data.EventType()
		if prev, ok := types[typ]; ok {
			t.Errorf("%s is the type of both %v and %T", typ, prev, tt.data)
		}
		types[typ] = reflect.TypeOf(tt.data)
	}
	for _, s := range catalog.All() {
		for _, subj := range slices.Concat(s.Publishes, s.Consumes()) {
			if _, ok := types[subj]; !ok {
				t.Errorf("%s's %s has no struct in services/events", s.Name, subj)
			}
		}
	}
}

func TestPlans(t *testing.T) {
	if got := events.PlanNames(); !slices.Equal(got, []string{events.PlanBasic, events.PlanStandard, events.PlanPremium}) {
		t.Fatalf("plans %v", got)
	}
	prev := -1
	for _, name := range events.PlanNames() {
		p, ok := events.LookupPlan(name)
		if !ok || p.Rank <= prev || p.Streams < 1 {
			t.Errorf("plan %s: %+v", name, p)
		}
		prev = p.Rank
	}
	if _, ok := events.LookupPlan("gold"); ok {
		t.Error("found a plan that does not exist")
	}
}
