package streaming_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/account"
	"github.com/switchboard-dev/switchboard/services/analytics"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/content"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/local"
	"github.com/switchboard-dev/switchboard/services/playback"
	"github.com/switchboard-dev/switchboard/services/recommendation"
	"github.com/switchboard-dev/switchboard/services/streaming/streamtest"
)

// startPlatform runs the streaming workload and the gateway in-process, as
// `switchboard dev --workloads streaming` does.
func startPlatform(t testing.TB, env map[string]string) *local.Platform {
	t.Helper()
	p, err := local.Start(context.Background(), local.Options{
		Addr:      "127.0.0.1:0",
		Workloads: []catalog.Workload{catalog.Streaming},
		Env: streamtest.Merge(map[string]string{
			"BCRYPT_COST": "4", "SEED_DEMO": "false",
			// One test client makes every call; the limit guards real clients.
			"RATE_LIMIT_RPS": "1000000",
			// The walk-through sends heartbeats back to back.
			catalog.EnvHeartbeatMinInterval: "0s",
		}, env),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func signUp(t *testing.T, api streamtest.Client, email, plan string) (string, streamtest.Client) {
	t.Helper()
	var a events.Account
	api.Must(http.StatusCreated, "POST", "/account/accounts", account.SignUp{Email: email, Password: "correct-horse", Plan: plan}, &a)
	var tok account.Token
	api.Must(http.StatusOK, "POST", "/account/login", account.Login{Email: email, Password: "correct-horse"}, &tok)
	return a.ID, api.As(tok.Token)
}

func upload(t *testing.T, as streamtest.Client, u content.Upload) events.Video {
	t.Helper()
	var v events.Video
	as.Must(http.StatusCreated, "POST", "/content/videos", u, &v)
	if v.Status != content.Encoding {
		t.Fatalf("upload answered %+v", v)
	}
	return v
}

func live(t *testing.T, as streamtest.Client) analytics.Live {
	t.Helper()
	var l analytics.Live
	as.Must(http.StatusOK, "GET", "/analytics/live", nil, &l)
	return l
}

func TestStreamingEndToEnd(t *testing.T) {
	p := startPlatform(t, nil)
	api := streamtest.Client{T: t, Base: p.GatewayURL + "/api"}

	// Create an account, log in; staff upload videos.
	annID, ann := signUp(t, api, "ann@example.com", events.PlanBasic)
	staff := api.As(kittest.Issue(t, p.Signer, "staff", kit.RoleAdmin))
	v1 := upload(t, staff, content.Upload{Title: "Harbour Lights", Genres: []string{"drama"}, DurationSec: 1800, Regions: []string{"eu", "us"}, MinPlan: events.PlanBasic, SourceHeight: 2160})
	v2 := upload(t, staff, content.Upload{Title: "Northern Line", Genres: []string{"drama", "crime"}, DurationSec: 2400, Regions: []string{"eu", "us"}, MinPlan: events.PlanBasic})
	v3 := upload(t, staff, content.Upload{Title: "Monsoon", Genres: []string{"drama"}, DurationSec: 3000, Regions: []string{"apac"}, MinPlan: events.PlanBasic})

	// The videos become ready through the encoding pipeline.
	for _, v := range []*events.Video{&v1, &v2, &v3} {
		kittest.Eventually(t, 20*time.Second, v.Title+" ready", func() bool {
			ann.Must(http.StatusOK, "GET", "/content/videos/"+v.ID, nil, v)
			return v.Status == content.Ready
		})
	}
	if top := v1.Renditions[len(v1.Renditions)-1].Quality; top != "2160p" {
		t.Fatalf("a 2160p source tops out at %s", top)
	}
	// Adding a title is staff's alone.
	ann.Must(http.StatusForbidden, "POST", "/content/videos", content.Upload{Title: "Ann's own", Genres: []string{"drama"}, DurationSec: 60, Regions: []string{"eu"}, MinPlan: events.PlanBasic}, nil)

	// A session starts, and /live shows 1 viewer.
	var s1 playback.Started
	ann.Must(http.StatusCreated, "POST", "/playback/sessions", playback.StartRequest{ContentID: v1.ID, Region: "eu"}, &s1)
	if s1.SessionID == "" || s1.CDN == "" || !strings.HasSuffix(s1.ManifestURL, ".m3u8") || s1.Quality == "" {
		t.Fatalf("session %+v", s1)
	}
	kittest.Eventually(t, 10*time.Second, "/live to show 1 viewer", func() bool {
		l := live(t, ann)
		return l.Total == 1 && l.Videos[v1.ID] == 1
	})

	// Heartbeats adapt quality to bandwidth, never above the plan (basic: 720p).
	for _, hb := range []struct {
		hb   playback.Heartbeat
		want string
	}{
		{playback.Heartbeat{PositionSec: 10, BandwidthKbps: 60000, BufferSec: 30}, "720p"},
		{playback.Heartbeat{PositionSec: 20, BandwidthKbps: 600, BufferSec: 30}, "240p"},
		{playback.Heartbeat{PositionSec: 30, BandwidthKbps: 2000, BufferSec: 30}, "480p"},
	} {
		var q playback.QualityAnswer
		ann.Must(http.StatusOK, "POST", "/playback/sessions/"+s1.SessionID+"/heartbeat", hb.hb, &q)
		if q.Quality != hb.want {
			t.Fatalf("at %v kbps: %s, want %s", hb.hb.BandwidthKbps, q.Quality, hb.want)
		}
	}

	// A second device on a basic plan gets 429.
	raw := ann.Must(http.StatusTooManyRequests, "POST", "/playback/sessions", playback.StartRequest{ContentID: v2.ID, Region: "eu"}, nil)
	if streamtest.Err(t, raw).Error.Code != playback.CodeStreamLimit {
		t.Fatalf("second device: %s", raw)
	}

	// Stop the session: /live shows 0 viewers, the history holds the position.
	ann.Must(http.StatusNoContent, "DELETE", "/playback/sessions/"+s1.SessionID, nil, nil)
	kittest.Eventually(t, 10*time.Second, "/live to show 0 viewers", func() bool {
		l := live(t, ann)
		return l.Total == 0 && l.Videos[v1.ID] == 0
	})
	var hist struct{ Items []playback.HistoryItem }
	ann.Must(http.StatusOK, "GET", "/playback/history", nil, &hist)
	if len(hist.Items) != 1 || hist.Items[0].ContentID != v1.ID || hist.Items[0].PositionSec != 30 {
		t.Fatalf("history %+v", hist.Items)
	}

	// Ann also watches Northern Line; Bob watches Harbour Lights. Bob's
	// recommendations then include the co-watched Northern Line.
	var s2 playback.Started
	ann.Must(http.StatusCreated, "POST", "/playback/sessions", playback.StartRequest{ContentID: v2.ID, Region: "us"}, &s2)
	ann.Must(http.StatusOK, "POST", "/playback/sessions/"+s2.SessionID+"/heartbeat", playback.Heartbeat{PositionSec: 45, BandwidthKbps: 3000, BufferSec: 20}, nil)
	ann.Must(http.StatusNoContent, "DELETE", "/playback/sessions/"+s2.SessionID, nil, nil)
	bobID, bob := signUp(t, api, "bob@example.com", events.PlanStandard)
	var s3 playback.Started
	bob.Must(http.StatusCreated, "POST", "/playback/sessions", playback.StartRequest{ContentID: v1.ID, Region: "eu"}, &s3)
	var recs recommendation.Answer
	kittest.Eventually(t, 10*time.Second, "Bob's recommendations to include Northern Line", func() bool {
		bob.Must(http.StatusOK, "GET", "/recommendation/recommendations?accountId="+bobID+"&limit=5", nil, &recs)
		for _, it := range recs.Items {
			if it.ContentID == v2.ID && strings.HasPrefix(it.Reason, "watched together with") {
				return true
			}
		}
		return false
	})
	if recs.Variant != recommendation.VariantOf(bobID) {
		t.Fatalf("variant %q", recs.Variant)
	}
	bob.Must(http.StatusNoContent, "DELETE", "/playback/sessions/"+s3.SessionID, nil, nil)

	// A region-blocked video gives 403 with the reason.
	raw = ann.Must(http.StatusForbidden, "POST", "/playback/sessions", playback.StartRequest{ContentID: v3.ID, Region: "eu"}, nil)
	if e := streamtest.Err(t, raw); e.Error.Code != playback.CodeAccessDenied || e.Error.Message != "video is not available in region eu" {
		t.Fatalf("region-blocked: %s", raw)
	}

	// Redelivered events do not double-count viewers or watch time: replay
	// every playback event so far past JetStream's duplicate window, with
	// a second analytics replica joining the shared consumer.
	var before analytics.WatchTime
	kittest.Eventually(t, 10*time.Second, "Ann's watch time", func() bool {
		ann.Must(http.StatusOK, "GET", "/analytics/accounts/"+annID+"/watchtime", nil, &before)
		return before.WatchedSec == 30+45
	})
	second := kittest.Serve(t, analytics.Definition, withoutAddr(p.Env("analytics")))
	replayed := replay(t, p)
	if replayed < 10 {
		t.Fatalf("replayed only %d events", replayed)
	}
	marker := events.Playback{SessionID: "marker", AccountID: "marker", ContentID: "marker"}
	ev := streamtest.ConnectEvents(t, &kittest.Broker{URL: p.NATSURL, User: p.BrokerUser, Password: p.BrokerPassword})
	ev.Publish(catalog.PlaybackStarted, "playback.started:marker", "marker", time.Now(), marker)
	replicas := map[string]streamtest.Client{"through the gateway": ann.As(ann.Token), "on the second replica": {T: t, Base: second.URL}}
	paths := map[string]string{"through the gateway": "/analytics/live", "on the second replica": "/live"}
	for name, c := range replicas {
		kittest.Eventually(t, 10*time.Second, "the replay to be consumed, "+name, func() bool {
			var l analytics.Live
			c.Must(http.StatusOK, "GET", paths[name], nil, &l)
			return l.Total == 1 && l.Videos["marker"] == 1
		})
	}
	var after analytics.WatchTime
	ann.Must(http.StatusOK, "GET", "/analytics/accounts/"+annID+"/watchtime", nil, &after)
	if after != before {
		t.Fatalf("watch time after the replay %+v, before %+v", after, before)
	}
}

func withoutAddr(env map[string]string) map[string]string {
	out := streamtest.Merge(env)
	delete(out, catalog.EnvHTTPAddr)
	return out
}

// replay republishes every event of the PLAYBACK stream under a new
// Nats-Msg-Id, as a publisher retrying after JetStream's duplicate window
// would; the envelopes (and event ids) are unchanged.
func replay(t *testing.T, p *local.Platform) int {
	t.Helper()
	nc, err := nats.Connect(p.NATSURL, nats.UserInfo(p.BrokerUser, p.BrokerPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "PLAYBACK", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := js.Stream(ctx, "PLAYBACK")
	if err != nil {
		t.Fatal(err)
	}
	total := int(info.CachedInfo().State.Msgs)
	batch, err := cons.Fetch(total, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		var ev kit.Event
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, m.Subject(), m.Data(), jetstream.WithMsgID(ev.ID+"#replay")); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}
