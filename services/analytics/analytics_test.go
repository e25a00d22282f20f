package analytics_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/analytics"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/streaming/streamtest"
)

type rig struct {
	events   *streamtest.Events
	replicas []streamtest.Client
	ops      []streamtest.Client // each replica's ops port: /metrics
}

// newRig runs n analytics replicas sharing one broker.
func newRig(t *testing.T, n int, extra map[string]string) *rig {
	t.Helper()
	b := kittest.StartNATS(t, "")
	env := streamtest.Merge(b.Env(), extra)
	r := &rig{}
	for range n {
		rep := kittest.Serve(t, analytics.Definition, env)
		r.replicas = append(r.replicas, streamtest.Client{T: t, Base: rep.URL})
		r.ops = append(r.ops, streamtest.Client{T: t, Base: rep.OpsURL})
	}
	r.events = streamtest.ConnectEvents(t, b)
	return r
}

func ev(session, acct, video string, seq int, watched float64) events.Playback {
	return events.Playback{SessionID: session, AccountID: acct, ContentID: video, Region: "eu", CDN: "edge-eu-1", Seq: seq, WatchedSec: watched, PositionSec: watched}
}

func (r *rig) started(e events.Playback) {
	id := kit.EventID(catalog.PlaybackStarted, e.SessionID)
	r.events.Publish(catalog.PlaybackStarted, id, id, time.Now(), e)
}

func (r *rig) beat(e events.Playback) {
	id := kit.EventID(catalog.PlaybackHeartbeat, fmt.Sprintf("%s.%d", e.SessionID, e.Seq))
	r.events.Publish(catalog.PlaybackHeartbeat, id, id, time.Now(), e)
}

func (r *rig) stopped(e events.Playback) {
	id := kit.EventID(catalog.PlaybackStopped, e.SessionID)
	r.events.Publish(catalog.PlaybackStopped, id, id, time.Now(), e)
}

// eventually waits until every replica answers want at path.
func (r *rig) eventually(t *testing.T, path string, want func(raw []byte) bool) {
	t.Helper()
	for i, c := range r.replicas {
		if path == "/stats" {
			c = c.As(staff(t)) // staff only
		}
		kittest.Eventually(t, 20*time.Second, fmt.Sprintf("replica %d: %s", i, path), func() bool {
			_, raw := c.Do("GET", path, nil, nil)
			return want(raw)
		})
	}
}

func staff(t *testing.T) string { return kittest.StaffToken(t, "staff1") }

func liveIs(total int, videos map[string]int) func([]byte) bool {
	return func(raw []byte) bool {
		var l analytics.Live
		if json.Unmarshal(raw, &l) != nil || l.Total != total || len(l.Videos) != len(videos) {
			return false
		}
		for v, n := range videos {
			if l.Videos[v] != n {
				return false
			}
		}
		return true
	}
}

func TestReplicasAgreeOnLiveViewersAndWatchTime(t *testing.T) {
	r := newRig(t, 2, nil)
	a1 := ev("s1", "acct1", "v1", 0, 0)
	a2 := ev("s2", "acct1", "v2", 0, 0)
	b1 := ev("s3", "acct2", "v1", 0, 0)
	r.started(a1)
	r.started(a2)
	r.started(b1)
	r.eventually(t, "/live", liveIs(3, map[string]int{"v1": 2, "v2": 1}))

	for seq := 1; seq <= 3; seq++ {
		r.beat(ev("s1", "acct1", "v1", seq, float64(10*seq)))
	}
	r.beat(ev("s2", "acct1", "v2", 1, 7))
	r.stopped(ev("s2", "acct1", "v2", 1, 7))
	r.eventually(t, "/live", liveIs(2, map[string]int{"v1": 2}))

	// Redelivery: the same events again, past JetStream's duplicate window
	// (new Nats-Msg-Ids), and a start for the stopped session.
	for seq := 1; seq <= 3; seq++ {
		e := ev("s1", "acct1", "v1", seq, float64(10*seq))
		id := kit.EventID(catalog.PlaybackHeartbeat, fmt.Sprintf("s1.%d", seq))
		r.events.Publish(catalog.PlaybackHeartbeat, id, id+"-again", time.Now(), e)
	}
	r.events.Publish(catalog.PlaybackStarted, "playback.started:s2", "again", time.Now(), a2)
	r.events.Publish(catalog.PlaybackStopped, "playback.stopped:s2", "again", time.Now(), ev("s2", "acct1", "v2", 1, 7))
	// A marker event after the copies: once it shows, the copies were consumed.
	r.started(ev("marker", "acct3", "v3", 0, 0))
	r.eventually(t, "/live", liveIs(3, map[string]int{"v1": 2, "v3": 1}))
	r.eventually(t, "/stats", func(raw []byte) bool {
		var s analytics.Stats
		return json.Unmarshal(raw, &s) == nil && s.Sessions == 4 && s.Heartbeats == 4 && s.WatchedSec == 37
	})

	tok := kittest.Token(t, "acct1")
	for _, c := range r.replicas {
		var wt analytics.WatchTime
		c.As(tok).Must(http.StatusOK, "GET", "/accounts/acct1/watchtime", nil, &wt)
		if wt.WatchedSec != 37 {
			t.Fatalf("watch time %v, want 37 (30 + 7, copies not counted)", wt.WatchedSec)
		}
		// Another account's watch time answers as one that does not exist.
		other := c.As(tok).Must(http.StatusNotFound, "GET", "/accounts/acct2/watchtime", nil, nil)
		missing := c.As(tok).Must(http.StatusNotFound, "GET", "/accounts/nobody/watchtime", nil, nil)
		if streamtest.Err(t, other).Error.Code != kit.CodeNotFound || streamtest.Err(t, missing).Error.Code != kit.CodeNotFound {
			t.Fatalf("another's watch time: %s; a missing one: %s", other, missing)
		}
		c.As(staff(t)).Must(http.StatusNotFound, "GET", "/accounts/acct1/watchtime", nil, nil)
		c.Must(http.StatusUnauthorized, "GET", "/accounts/acct1/watchtime", nil, nil)
		// Ingest statistics are for staff.
		c.Must(http.StatusUnauthorized, "GET", "/stats", nil, nil)
		c.As(tok).Must(http.StatusForbidden, "GET", "/stats", nil, nil)
	}

	var top struct{ Items []analytics.TopItem }
	r.replicas[0].Must(http.StatusOK, "GET", "/top?window=5m&limit=2", nil, &top)
	if len(top.Items) != 2 || top.Items[0].ContentID != "v1" || top.Items[0].WatchedSec != 30 || top.Items[1].ContentID != "v2" {
		t.Fatalf("top %+v", top.Items)
	}
	for _, q := range []struct{ query, field string }{{"window=forever", "window"}, {"window=2h", "window"}, {"limit=0", "limit"}, {"limit=x", "limit"}} {
		raw := r.replicas[1].Must(http.StatusBadRequest, "GET", "/top?"+q.query, nil, nil)
		if streamtest.Err(t, raw).Error.Field != q.field {
			t.Fatalf("%s: %s", q.query, raw)
		}
	}
	_, metrics := r.ops[1].Do("GET", "/metrics", nil, nil)
	if !strings.Contains(string(metrics), `switchboard_analytics_live_viewers{video="v1"} 2`) ||
		!strings.Contains(string(metrics), "switchboard_analytics_live_viewers_total 3") {
		t.Fatalf("viewer gauges missing from /metrics")
	}
}

// A session that goes silent without a stop leaves /live after
// LIVE_STALE_AFTER, on every replica.
func TestSilentSessionsGoStale(t *testing.T) {
	r := newRig(t, 1, map[string]string{"LIVE_STALE_AFTER": "300ms"})
	r.started(ev("quiet", "acct", "v", 0, 0))
	r.eventually(t, "/stats", func(raw []byte) bool { return strings.Contains(string(raw), `"sessions":1`) })
	r.eventually(t, "/live", liveIs(0, nil))
}

func TestLiveStreamPushesChanges(t *testing.T) {
	r := newRig(t, 1, nil)
	resp, err := kittest.GatewayHTTP(t).Get(r.replicas[0].Base + "/live/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	lines := bufio.NewScanner(resp.Body)
	next := func() analytics.Live {
		t.Helper()
		for lines.Scan() {
			if d, ok := strings.CutPrefix(lines.Text(), "data: "); ok {
				var l analytics.Live
				if err := json.Unmarshal([]byte(d), &l); err != nil {
					t.Fatal(err)
				}
				return l
			}
		}
		t.Fatalf("stream ended: %v", lines.Err())
		return analytics.Live{}
	}
	if l := next(); l.Total != 0 {
		t.Fatalf("first event %+v", l)
	}
	r.started(ev("s", "a", "v", 0, 0))
	if l := next(); l.Total != 1 || l.Videos["v"] != 1 {
		t.Fatalf("after a start %+v", l)
	}
}

// The load test: 10,000 heartbeats from 100 sessions, with 1,000 of them
// republished past the duplicate window, across two replicas. The final
// figures must be exact.
func TestTenThousandHeartbeats(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	const sessions, beats = 100, 100
	r := newRig(t, 2, nil)
	now := time.Now()
	for s := range sessions {
		e := ev(fmt.Sprintf("s%03d", s), fmt.Sprintf("acct%02d", s%10), fmt.Sprintf("v%d", s%5), 0, 0)
		id := kit.EventID(catalog.PlaybackStarted, e.SessionID)
		r.events.PublishAsync(catalog.PlaybackStarted, id, id, now, e)
	}
	for seq := 1; seq <= beats; seq++ {
		for s := range sessions {
			e := ev(fmt.Sprintf("s%03d", s), fmt.Sprintf("acct%02d", s%10), fmt.Sprintf("v%d", s%5), seq, float64(seq*10))
			id := kit.EventID(catalog.PlaybackHeartbeat, fmt.Sprintf("%s.%d", e.SessionID, seq))
			r.events.PublishAsync(catalog.PlaybackHeartbeat, id, id, now, e)
			if seq%10 == 0 { // 1,000 late copies
				r.events.PublishAsync(catalog.PlaybackHeartbeat, id, id+"-copy", now, e)
			}
		}
	}
	for s := range 40 {
		e := ev(fmt.Sprintf("s%03d", s), fmt.Sprintf("acct%02d", s%10), fmt.Sprintf("v%d", s%5), beats, beats*10)
		id := kit.EventID(catalog.PlaybackStopped, e.SessionID)
		r.events.PublishAsync(catalog.PlaybackStopped, id, id, now, e)
	}
	r.events.Wait()

	want := analytics.Stats{Sessions: sessions, Heartbeats: sessions * beats, WatchedSec: sessions * beats * 10}
	r.eventually(t, "/stats", func(raw []byte) bool {
		var s analytics.Stats
		return json.Unmarshal(raw, &s) == nil && s == want
	})
	r.eventually(t, "/live", liveIs(60, map[string]int{"v0": 12, "v1": 12, "v2": 12, "v3": 12, "v4": 12}))
	tok := kittest.Token(t, "acct07")
	var wt analytics.WatchTime
	r.replicas[1].As(tok).Must(http.StatusOK, "GET", "/accounts/acct07/watchtime", nil, &wt)
	if wt.WatchedSec != 10*beats*10 {
		t.Fatalf("acct07 watch time %v, want %d", wt.WatchedSec, 10*beats*10)
	}
}

// An event analytics cannot read is not dropped: it lands in the
// dead-letter stream, and the events around it are counted.
func TestMalformedEventsAreDeadLettered(t *testing.T) {
	r := newRig(t, 1, nil)
	r.started(ev("s1", "acct1", "v1", 0, 0))
	if _, err := r.events.JS.Publish(t.Context(), catalog.PlaybackHeartbeat, []byte(`{"id":"x","data":"not an object"}`)); err != nil {
		t.Fatal(err)
	}
	r.beat(ev("s1", "acct1", "v1", 1, 10))
	r.eventually(t, "/live", liveIs(1, map[string]int{"v1": 1}))
	var list []kit.DeadLetter
	kittest.Eventually(t, 10*time.Second, "the malformed event in the dead-letter stream", func() bool {
		var err error
		list, err = kit.DeadLetters(t.Context(), r.events.JS, "analytics")
		return err == nil && len(list) == 1
	})
	if d := list[0]; d.Subject != catalog.PlaybackHeartbeat || d.Reason != kit.ReasonMalformed || string(d.Data) != `{"id":"x","data":"not an object"}` {
		t.Fatalf("dead letter %+v", d)
	}
}
