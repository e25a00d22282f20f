package local_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/local"
	"github.com/switchboard-dev/switchboard/services/order"
)

// floodStore is the broker's whole JetStream store in the flood test: a
// few MiB, so that a flood of playback events would fill it many times
// over.
const floodStore = 16 << 20

// One account sending heartbeats in a loop cannot take the platform down:
// its excess heartbeats are refused, and a flood of playback events that
// does get in only pushes out older playback events. Commerce's streams
// and buckets keep their space, and orders still confirm.
func TestAPlaybackFloodCannotStarveOrders(t *testing.T) {
	ctx := context.Background()
	p, err := local.Start(ctx, local.Options{
		Addr:       "127.0.0.1:0",
		Workloads:  []catalog.Workload{catalog.Commerce, catalog.Streaming},
		StoreBytes: floodStore,
		Env: map[string]string{
			"BCRYPT_COST": "4", "RATE_LIMIT_RPS": "1000000", "SEED_DEMO": "true",
		},
		ShutdownGrace: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	staffToken = kittest.Issue(t, p.Signer, "flood-staff", kit.RoleAdmin)
	anon := api{t: t, base: p.GatewayURL}
	shopper := api{t: t, base: p.GatewayURL, token: kittest.Issue(t, p.Signer, "shopper")}
	placed := 0
	orderOne := func(when string) {
		t.Helper()
		placed++
		var o events.Order
		shopper.must(http.StatusCreated, "POST", "/api/order/orders", map[string]any{
			"items": []map[string]any{{"productId": "keyboard", "quantity": 1}}, "paymentMethod": "card", "shippingAddress": "1 Main St",
		}, kit.HeaderIdempotencyKey, fmt.Sprintf("flood-%d", placed)).json(t, &o)
		if o.Status != order.Confirmed {
			t.Fatalf("%s: order %s is %s", when, o.ID, o.Status)
		}
	}
	orderOne("before the flood")

	// A viewer with a session.
	anon.must(http.StatusCreated, "POST", "/api/account/accounts", map[string]string{"email": "loop@example.com", "password": "correct-horse", "plan": events.PlanPremium})
	var tok struct{ Token string }
	anon.must(http.StatusOK, "POST", "/api/account/login", map[string]string{"email": "loop@example.com", "password": "correct-horse"}).json(t, &tok)
	viewer := api{t: t, base: p.GatewayURL, token: tok.Token}
	var video events.Video
	anon.staff().must(http.StatusCreated, "POST", "/api/content/videos", map[string]any{
		"title": "Loop", "genres": []string{"drama"}, "durationSec": 600, "regions": []string{"eu"}, "minPlan": events.PlanBasic,
	}).json(t, &video)
	kittest.Eventually(t, 20*time.Second, "the video encoded", func() bool {
		viewer.must(http.StatusOK, "GET", "/api/content/videos/"+video.ID, nil).json(t, &video)
		return video.Status == "ready"
	})
	var session struct{ SessionID string }
	viewer.must(http.StatusCreated, "POST", "/api/playback/sessions", map[string]string{"contentId": video.ID, "region": "eu"}).json(t, &session)

	// It sends heartbeats in a loop: after the first, playback refuses.
	accepted, refused := 0, 0
	for i := range 200 {
		r := viewer.do("POST", "/api/playback/sessions/"+session.SessionID+"/heartbeat", map[string]any{"positionSec": i, "bandwidthKbps": 5000, "bufferSec": 20})
		switch r.Status {
		case http.StatusOK:
			accepted++
		case http.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("heartbeat %d: %d %s", i, r.Status, r.Body)
		}
	}
	// One a second gets through; the loop sends far faster than that.
	if refused < 100 {
		t.Fatalf("of 200 heartbeats in a loop %d were accepted and only %d refused", accepted, refused)
	}

	// Many such viewers within the interval still add up: flood PLAYBACK,
	// as playback publishes, with more than the whole store holds.
	pb := connect(t, p, "playback")
	st, err := pb.JS.Stream(ctx, "PLAYBACK")
	if err != nil {
		t.Fatal(err)
	}
	limit := st.CachedInfo().Config.MaxBytes
	if limit <= 0 || limit > floodStore/2 {
		t.Fatalf("PLAYBACK may hold %d bytes of a %d-byte store", limit, floodStore)
	}
	pad := strings.Repeat("x", 4000)
	var futures []jetstream.PubAckFuture
	for i := 0; i*4400 < floodStore*5/4; i++ {
		id := kit.EventID(catalog.PlaybackHeartbeat, fmt.Sprintf("flood.%d", i))
		ev := events.PlaybackHeartbeat{Playback: events.Playback{SessionID: fmt.Sprintf("flood%d", i%20), AccountID: "loop",
			ContentID: video.ID, Region: "eu", CDN: pad, Seq: i}}
		body := envelope(t, id, ev)
		f, err := pb.JS.PublishAsync(catalog.PlaybackHeartbeat, body, jetstream.WithMsgID(id))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatalf("flood event %d refused: %v (PLAYBACK discards old events, it never refuses)", i, err)
		}
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if int64(info.State.Bytes) > limit || info.State.FirstSeq <= 1 {
		t.Fatalf("PLAYBACK after the flood: %d bytes (limit %d), first sequence %d: old events should have made room", info.State.Bytes, limit, info.State.FirstSeq)
	}

	// Commerce is untouched: orders confirm, their events and records stored.
	for i := range 5 {
		orderOne(fmt.Sprintf("after the flood (%d)", i))
	}
	// Playback's own broker user may not read ORDERS: look as the
	// administrative user.
	admin, err := nats.Connect(p.NATSURL, nats.UserInfo(p.BrokerUser, p.BrokerPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ajs, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	ost, err := ajs.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	if oi, err := ost.Info(ctx); err != nil || oi.State.FirstSeq != 1 {
		t.Fatalf("ORDERS lost events to the flood: %+v %v", oi, err)
	}
}

// connect is a bus of the local platform's service name.
func connect(t *testing.T, p *local.Platform, name string) *kit.Bus {
	t.Helper()
	cfg, err := kit.LoadConfig(name, kit.Needs{}, kit.MapEnv(p.Env(name)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := kit.ConnectBus(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), kit.NewMetrics(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func envelope(t *testing.T, id string, p kit.Payload) []byte {
	t.Helper()
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(kit.Event{ID: id, Type: p.EventType(), Source: "playback", Time: time.Now().UTC(), Data: raw})
	if err != nil {
		t.Fatal(err)
	}
	return body
}
