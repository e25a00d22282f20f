package playback_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-dev/switchboard/services/account"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/content"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/playback"
	"github.com/switchboard-dev/switchboard/services/streaming/streamtest"
)

type rig struct {
	t        *testing.T
	broker   *kittest.Broker
	env      map[string]string // playback's env
	accounts streamtest.Client
	play     streamtest.Client
	video    events.Video
}

// newRig runs account, content (with one ready 2160p video offered in eu
// and us) and one playback replica with extra env.
func newRig(t *testing.T, extra map[string]string) *rig {
	t.Helper()
	b := kittest.StartNATS(t, "")
	base := streamtest.Merge(b.Env(), map[string]string{"BCRYPT_COST": "4", "SEED_DEMO": "false"})
	acc := kittest.Serve(t, account.Definition, base)
	cont := kittest.Serve(t, content.Definition, streamtest.Merge(base, map[string]string{"ACCOUNT_GRPC": acc.GRPCAddr}))
	// The tests send heartbeats back to back; TestHeartbeatsTooSoon sets
	// the interval it checks.
	env := streamtest.Merge(base, map[string]string{"ACCOUNT_GRPC": acc.GRPCAddr, "CONTENT_GRPC": cont.GRPCAddr, catalog.EnvHeartbeatMinInterval: "0s"}, extra)
	play := kittest.Serve(t, playback.Definition, env)
	r := &rig{t: t, broker: b, env: env, accounts: streamtest.Client{T: t, Base: acc.URL}, play: streamtest.Client{T: t, Base: play.URL}}
	videos := streamtest.Client{T: t, Base: cont.URL}
	videos.As(kittest.StaffToken(t, "staff1")).Must(http.StatusCreated, "POST", "/videos", content.Upload{
		Title: "Alps", Genres: []string{"nature"}, DurationSec: 600, Regions: []string{"eu", "us"}, MinPlan: events.PlanBasic, SourceHeight: 2160,
	}, &r.video)
	kittest.Eventually(t, 10*time.Second, "video ready", func() bool {
		videos.Must(http.StatusOK, "GET", "/videos/"+r.video.ID, nil, &r.video)
		return r.video.Status == content.Ready
	})
	return r
}

var n int
var nmu sync.Mutex

func (r *rig) account(plan string) (string, streamtest.Client) {
	r.t.Helper()
	nmu.Lock()
	n++
	email := "viewer" + string(rune('a'+n%26)) + time.Now().Format("150405.000000000") + "@example.com"
	nmu.Unlock()
	var a events.Account
	r.accounts.Must(http.StatusCreated, "POST", "/accounts", account.SignUp{Email: email, Password: "correct-horse", Plan: plan}, &a)
	var tok account.Token
	r.accounts.Must(http.StatusOK, "POST", "/login", account.Login{Email: email, Password: "correct-horse"}, &tok)
	return a.ID, r.play.As(tok.Token)
}

func (r *rig) events(t *testing.T) func() []string {
	nc, err := nats.Connect(r.broker.URL, nats.UserInfo(r.broker.User, r.broker.Password))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var mu sync.Mutex
	var got []string
	if _, err := nc.Subscribe("playback.>", func(m *nats.Msg) {
		var ev kit.Event
		_ = json.Unmarshal(m.Data, &ev)
		mu.Lock()
		got = append(got, ev.ID)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

func TestSessionLifecycle(t *testing.T) {
	r := newRig(t, nil)
	published := r.events(t)
	_, me := r.account(events.PlanBasic)

	var st playback.Started
	me.Must(http.StatusCreated, "POST", "/sessions", playback.StartRequest{ContentID: r.video.ID, Region: "eu"}, &st)
	if st.Quality != "480p" || st.CDN != "edge-eu-1" || !strings.HasPrefix(st.ManifestURL, "https://eu-1.cdn.switchboard.dev/vod/"+r.video.ID+"/") {
		t.Fatalf("started %+v", st)
	}

	beats := []struct {
		name string
		hb   playback.Heartbeat
		want string
	}{
		{"plenty of bandwidth is capped at the basic plan's 720p", playback.Heartbeat{PositionSec: 10, BandwidthKbps: 50000, BufferSec: 20}, "720p"},
		{"1 Mbps with a healthy buffer plays 360p", playback.Heartbeat{PositionSec: 20, BandwidthKbps: 1000, BufferSec: 20}, "360p"},
		{"1 Mbps with a draining buffer drops to 240p", playback.Heartbeat{PositionSec: 30, BandwidthKbps: 1000, BufferSec: 2}, "240p"},
		{"4 Mbps plays 720p", playback.Heartbeat{PositionSec: 40, BandwidthKbps: 4000, BufferSec: 30}, "720p"},
	}
	for _, b := range beats {
		var q playback.QualityAnswer
		me.Must(http.StatusOK, "POST", "/sessions/"+st.SessionID+"/heartbeat", b.hb, &q)
		if q.Quality != b.want {
			t.Fatalf("%s: got %s", b.name, q.Quality)
		}
	}

	raw := me.Must(http.StatusTooManyRequests, "POST", "/sessions", playback.StartRequest{ContentID: r.video.ID, Region: "eu"}, nil)
	if streamtest.Err(t, raw).Error.Code != playback.CodeStreamLimit {
		t.Fatalf("second device: %s", raw)
	}

	me.Must(http.StatusNoContent, "DELETE", "/sessions/"+st.SessionID, nil, nil)
	me.Must(http.StatusNotFound, "POST", "/sessions/"+st.SessionID+"/heartbeat", playback.Heartbeat{PositionSec: 50}, nil)
	me.Must(http.StatusNotFound, "DELETE", "/sessions/"+st.SessionID, nil, nil)

	var hist struct{ Items []playback.HistoryItem }
	me.Must(http.StatusOK, "GET", "/history", nil, &hist)
	if len(hist.Items) != 1 || hist.Items[0].ContentID != r.video.ID || hist.Items[0].PositionSec != 40 || hist.Items[0].Finished {
		t.Fatalf("history %+v", hist.Items)
	}

	var again playback.Started
	me.Must(http.StatusCreated, "POST", "/sessions", playback.StartRequest{ContentID: r.video.ID, Region: "eu"}, &again)

	want := []string{
		"playback.started:" + st.SessionID,
		"playback.heartbeat:" + st.SessionID + ".1", "playback.heartbeat:" + st.SessionID + ".2",
		"playback.heartbeat:" + st.SessionID + ".3", "playback.heartbeat:" + st.SessionID + ".4",
		"playback.stopped:" + st.SessionID,
		"playback.started:" + again.SessionID,
	}
	kittest.Eventually(t, 5*time.Second, "events", func() bool { return len(published()) >= len(want) })
	if got := published(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
}

// A session is its viewer's: another account's heartbeat or stop answers
// as an unknown session would, and leaves it running.
func TestSessionsBelongToTheirViewer(t *testing.T) {
	r := newRig(t, nil)
	_, me := r.account(events.PlanBasic)
	_, other := r.account(events.PlanPremium)
	var st playback.Started
	me.Must(http.StatusCreated, "POST", "/sessions", playback.StartRequest{ContentID: r.video.ID, Region: "eu"}, &st)
	me.Must(http.StatusOK, "POST", "/sessions/"+st.SessionID+"/heartbeat", playback.Heartbeat{PositionSec: 30, BandwidthKbps: 4000, BufferSec: 20}, nil)

	missing := other.Must(http.StatusNotFound, "POST", "/sessions/nosuchsession/heartbeat", playback.Heartbeat{PositionSec: 1}, nil)
	for _, tt := range []struct {
		name, method, path string
		body               any
	}{
		{"a heartbeat on another's session", "POST", "/sessions/" + st.SessionID + "/heartbeat", playback.Heartbeat{PositionSec: 900}},
		{"stopping another's session", "DELETE", "/sessions/" + st.SessionID, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			other.T = t
			raw := other.Must(http.StatusNotFound, tt.method, tt.path, tt.body, nil)
			if got, want := streamtest.Err(t, raw).Error.Code, streamtest.Err(t, missing).Error.Code; got != want || got != playback.CodeSessionNotFound {
				t.Fatalf("code %q, an unknown session's %q", got, want)
			}
		})
	}
	anon := streamtest.Client{T: t, Base: me.Base}
	anon.Must(http.StatusUnauthorized, "POST", "/sessions/"+st.SessionID+"/heartbeat", playback.Heartbeat{PositionSec: 900}, nil)
	anon.Must(http.StatusUnauthorized, "DELETE", "/sessions/"+st.SessionID, nil, nil)
	anon.Must(http.StatusUnauthorized, "GET", "/history", nil, nil)

	var hist struct{ Items []playback.HistoryItem }
	other.Must(http.StatusOK, "GET", "/history", nil, &hist)
	if len(hist.Items) != 0 {
		t.Fatalf("another viewer's history shows %+v", hist.Items)
	}
	// Still running, at the owner's position.
	me.Must(http.StatusOK, "POST", "/sessions/"+st.SessionID+"/heartbeat", playback.Heartbeat{PositionSec: 40, BandwidthKbps: 4000, BufferSec: 20}, nil)
	me.Must(http.StatusOK, "GET", "/history", nil, &hist)
	if len(hist.Items) != 1 || hist.Items[0].PositionSec != 40 {
		t.Fatalf("the owner's history %+v", hist.Items)
	}
}

func TestPremiumQualityAndEdgeLoad(t *testing.T) {
	r := newRig(t, nil)
	_, me := r.account(events.PlanPremium)
	second := kittest.Serve(t, playback.Definition, r.env)
	other := streamtest.Client{T: t, Base: second.URL, Token: me.Token}

	// Two replicas, one KV: the second session sees the first's load and
	// goes to the other EU edge.
	var a, b playback.Started
	me.Must(http.StatusCreated, "POST", "/sessions", playback.StartRequest{ContentID: r.video.ID, Region: "eu"}, &a)
	other.Must(http.StatusCreated, "POST", "/sessions", playback.StartRequest{ContentID: r.video.ID, Region: "eu"}, &b)
	if a.CDN != "edge-eu-1" || b.CDN != "edge-eu-2" {
		t.Fatalf("edges %s and %s, want edge-eu-1 then edge-eu-2", a.CDN, b.CDN)
	}
	var q playback.QualityAnswer
	other.Must(http.StatusOK, "POST", "/sessions/"+a.SessionID+"/heartbeat", playback.Heartbeat{PositionSec: 5, BandwidthKbps: 40000, BufferSec: 30}, &q)
	if q.Quality != "2160p" {
		t.Fatalf("premium at 40 Mbps: %s", q.Quality)
	}
	var us playback.Started
	me.Must(http.StatusCreated, "POST", "/sessions", playback.StartRequest{ContentID: r.video.ID, Region: "us"}, &us)
	if us.CDN != "edge-us-1" {
		t.Fatalf("us viewer on %s", us.CDN)
	}
}

func TestStartRefusals(t *testing.T) {
	r := newRig(t, nil)
	_, me := r.account(events.PlanBasic)
	tests := []struct {
		name   string
		client streamtest.Client
		body   any
		status int
		code   string
		field  string
	}{
		{"a region outside the video's list is a 403 with the reason", me, playback.StartRequest{ContentID: r.video.ID, Region: "apac"}, 403, playback.CodeAccessDenied, ""},
		{"an unknown video is a 404", me, playback.StartRequest{ContentID: "nope", Region: "eu"}, 404, kit.CodeNotFound, ""},
		{"a bad content id is a 400", me, playback.StartRequest{ContentID: "a b", Region: "eu"}, 400, kit.CodeInvalid, "contentId"},
		{"a missing region is a 400", me, playback.StartRequest{ContentID: r.video.ID}, 400, kit.CodeInvalid, "region"},
		{"a profile of another account is a 400", me, playback.StartRequest{ContentID: r.video.ID, Region: "eu", ProfileID: "p1"}, 400, kit.CodeInvalid, "profileId"},
		{"no token is a 401", r.play, playback.StartRequest{ContentID: r.video.ID, Region: "eu"}, 401, kit.CodeUnauthenticated, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.client.T = t
			raw := tt.client.Must(tt.status, "POST", "/sessions", tt.body, nil)
			e := streamtest.Err(t, raw)
			if e.Error.Code != tt.code || e.Error.Field != tt.field {
				t.Fatalf("got %+v", e.Error)
			}
			if tt.code == playback.CodeAccessDenied && e.Error.Message != "video is not available in region apac" {
				t.Fatalf("reason %q", e.Error.Message)
			}
		})
	}
	var st playback.Started
	me.Must(http.StatusCreated, "POST", "/sessions", playback.StartRequest{ContentID: r.video.ID, Region: "eu"}, &st)
	raw := me.Must(http.StatusBadRequest, "POST", "/sessions/"+st.SessionID+"/heartbeat", map[string]any{"positionSec": 1, "bandwidthKbps": -5}, nil)
	if streamtest.Err(t, raw).Error.Field != "bandwidthKbps" {
		t.Fatalf("negative bandwidth: %s", raw)
	}
}

// A session whose pod died frees its slot once its TTL passes: the next
// start, on another replica, prunes it in the same compare-and-set that
// counts slots, and a sweeper announces the stop.
func TestExpiryFreesTheSlotWhenThePodDied(t *testing.T) {
	r := newRig(t, map[string]string{"SESSION_TTL": "400ms", "SWEEP_INTERVAL": "1h"})
	published := r.events(t)
	_, me := r.account(events.PlanBasic)
	doomed := kittest.Serve(t, playback.Definition, r.env)
	onDoomed := streamtest.Client{T: t, Base: doomed.URL, Token: me.Token}
	var st playback.Started
	onDoomed.Must(http.StatusCreated, "POST", "/sessions", playback.StartRequest{ContentID: r.video.ID, Region: "eu"}, &st)
	onDoomed.Must(http.StatusOK, "POST", "/sessions/"+st.SessionID+"/heartbeat", playback.Heartbeat{PositionSec: 12, BandwidthKbps: 3000, BufferSec: 10}, nil)
	if err := doomed.Stop(); err != nil {
		t.Fatal(err)
	}

	var next playback.Started
	kittest.Eventually(t, 10*time.Second, "the dead pod's slot to free", func() bool {
		code, _ := me.Do("POST", "/sessions", playback.StartRequest{ContentID: r.video.ID, Region: "eu"}, &next)
		if code != http.StatusCreated && code != http.StatusTooManyRequests {
			t.Fatalf("start answered %d", code)
		}
		return code == http.StatusCreated
	})
	me.Must(http.StatusNotFound, "POST", "/sessions/"+st.SessionID+"/heartbeat", playback.Heartbeat{PositionSec: 13}, nil)
	kittest.Eventually(t, 5*time.Second, "playback.stopped for the expired session", func() bool {
		for _, id := range published() {
			if id == "playback.stopped:"+st.SessionID {
				return true
			}
		}
		return false
	})
	// The history entry is written after the event is published.
	var hist struct{ Items []playback.HistoryItem }
	kittest.Eventually(t, 10*time.Second, "the expired session in the history", func() bool {
		me.Must(http.StatusOK, "GET", "/history", nil, &hist)
		return len(hist.Items) > 0
	})
	if len(hist.Items) != 1 || hist.Items[0].PositionSec != 12 {
		t.Fatalf("history after expiry: %+v", hist.Items)
	}
}

// The sweeper alone (no new start) expires a silent session.
func TestSweeperExpiresSilentSessions(t *testing.T) {
	r := newRig(t, map[string]string{"SESSION_TTL": "300ms", "SWEEP_INTERVAL": "50ms"})
	published := r.events(t)
	_, me := r.account(events.PlanStandard)
	var st playback.Started
	me.Must(http.StatusCreated, "POST", "/sessions", playback.StartRequest{ContentID: r.video.ID, Region: "us"}, &st)
	kittest.Eventually(t, 10*time.Second, "the sweeper to stop the session", func() bool {
		for _, id := range published() {
			if id == "playback.stopped:"+st.SessionID {
				return true
			}
		}
		return false
	})
	// The event goes out before the slot is freed (so a crash in between is
	// retried); the history entry is written after it.
	kittest.Eventually(t, 10*time.Second, "the expired session in the history", func() bool {
		var hist struct{ Items []playback.HistoryItem }
		me.Must(http.StatusOK, "GET", "/history", nil, &hist)
		return len(hist.Items) == 1
	})
	me.Must(http.StatusNotFound, "DELETE", "/sessions/"+st.SessionID, nil, nil)
}

func TestChooseQuality(t *testing.T) {
	ladder := content.RenditionsFor(1080)
	tests := []struct {
		name              string
		bandwidth, buffer float64
		want              string
	}{
		{"no bandwidth measured plays the lowest rung", 0, 30, "240p"},
		{"a fast link plays the top rung the source and plan allow", 100000, 30, "1080p"},
		{"80% of the link must carry the bitrate", 3500, 30, "720p"},
		{"just under that drops a rung", 3499, 30, "480p"},
		{"a low buffer halves the budget", 3500, 4, "480p"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := playback.ChooseQuality(ladder, tt.bandwidth, tt.buffer).Quality; got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseEdges(t *testing.T) {
	tests := []struct {
		name, in string
		want     int
		wantErr  string
	}{
		{"the default list parses", playback.DefaultEdges, 5, ""},
		{"a capacity is optional", "a=eu=http://a.example=10", 1, ""},
		{"a missing url is refused", "a=eu", 0, "want name=region=url"},
		{"a relative url is refused", "a=eu=/x", 0, "absolute"},
		{"a zero capacity is refused", "a=eu=http://a.example=0", 0, "capacity"},
		{"a duplicate name is refused", "a=eu=http://a.example,a=us=http://b.example", 0, "twice"},
		{"an empty list is refused", " , ", 0, "no edges"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := playback.ParseEdges(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), playback.EnvCDNEdges) {
					t.Fatalf("err %v, want one naming %s and saying %q", err, playback.EnvCDNEdges, tt.wantErr)
				}
				return
			}
			if err != nil || len(got) != tt.want {
				t.Fatalf("got %d edges, err %v", len(got), err)
			}
		})
	}
}

func FuzzStartDecode(f *testing.F) {
	f.Add([]byte(`{"contentId":"v1","region":"eu"}`))
	f.Add([]byte(`{"contentId":"v1","region":"eu","profileId":"../x"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var r playback.StartRequest
		if err := kit.DecodeJSON(bytes.NewReader(body), &r); err != nil {
			if s := kit.AsError(err).Status; s != 400 && s != 413 {
				t.Fatalf("decode error %v is a %d", err, s)
			}
			return
		}
		if err := r.Validate(); err != nil {
			if e := kit.AsError(err); e.Status != 400 || e.Field == "" {
				t.Fatalf("validation error %v: %d %q", err, e.Status, e.Field)
			}
		}
	})
}

func FuzzHeartbeatDecode(f *testing.F) {
	f.Add([]byte(`{"positionSec":1.5,"bandwidthKbps":3000,"bufferSec":12}`))
	f.Add([]byte(`{"positionSec":-1}`))
	f.Add([]byte(`{"bandwidthKbps":1e400}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var h playback.Heartbeat
		if err := kit.DecodeJSON(bytes.NewReader(body), &h); err != nil {
			if s := kit.AsError(err).Status; s != 400 && s != 413 {
				t.Fatalf("decode error %v is a %d", err, s)
			}
			return
		}
		if err := h.Validate(); err != nil {
			if e := kit.AsError(err); e.Status != 400 || e.Field == "" {
				t.Fatalf("validation error %v: %d %q", err, e.Status, e.Field)
			}
			return
		}
		q := playback.ChooseQuality(content.RenditionsFor(2160), h.BandwidthKbps, h.BufferSec)
		if q.Height == 0 {
			t.Fatal("no quality chosen")
		}
	})
}

// A client sending heartbeats in a loop is refused with 429 and told when
// to come back, and what it sent in excess changes nothing.
func TestHeartbeatsTooSoon(t *testing.T) {
	r := newRig(t, map[string]string{catalog.EnvHeartbeatMinInterval: "20s"})
	published := r.events(t)
	_, me := r.account(events.PlanBasic)
	var st playback.Started
	me.Must(http.StatusCreated, "POST", "/sessions", playback.StartRequest{ContentID: r.video.ID, Region: "eu"}, &st)
	me.Must(http.StatusOK, "POST", "/sessions/"+st.SessionID+"/heartbeat", playback.Heartbeat{PositionSec: 10, BandwidthKbps: 4000, BufferSec: 20}, nil)
	for range 5 {
		req, _ := http.NewRequest("POST", r.play.Base+"/sessions/"+st.SessionID+"/heartbeat", strings.NewReader(`{"positionSec":20}`))
		req.Header.Set("Authorization", "Bearer "+me.Token)
		resp, err := kittest.GatewayHTTP(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e kit.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || e.Error.Code != playback.CodeHeartbeatTooSoon {
			t.Fatalf("a heartbeat right after another: %d %+v, want 429 %s", resp.StatusCode, e.Error, playback.CodeHeartbeatTooSoon)
		}
		if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Fatalf("Retry-After %q", ra)
		}
	}
	var hist struct{ Items []playback.HistoryItem }
	me.Must(http.StatusNoContent, "DELETE", "/sessions/"+st.SessionID, nil, nil)
	me.Must(http.StatusOK, "GET", "/history", nil, &hist)
	if len(hist.Items) != 1 || hist.Items[0].PositionSec != 10 {
		t.Fatalf("history after refused heartbeats: %+v", hist.Items)
	}
	// The session's events come in the order they were published: once
	// its stop has arrived, every heartbeat published before it has too.
	kittest.Eventually(t, 10*time.Second, "playback.stopped for the session", func() bool {
		return slices.Contains(published(), "playback.stopped:"+st.SessionID)
	})
	beats := 0
	for _, id := range published() {
		if strings.HasPrefix(id, "playback.heartbeat:") {
			beats++
		}
	}
	if beats != 1 {
		t.Fatalf("%d heartbeat events published, want the one accepted", beats)
	}
}
