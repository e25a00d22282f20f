package streaming_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/account"
	"github.com/switchboard-dev/switchboard/services/analytics"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/content"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/playback"
	"github.com/switchboard-dev/switchboard/services/streaming/streamtest"
)

// Events per iteration of BenchmarkAnalyticsIngest: 2,000 sessions × 10
// heartbeats, interleaved so that no batch holds two events of one session
// (the worst case for batching).
const (
	benchSessions = 2000
	benchBeats    = 10
)

// BenchmarkAnalyticsIngest measures, on one embedded broker per iteration:
//   - raw-publish-events/s: async JetStream publishes of the same envelopes
//     to a scratch stream with the same storage, nothing consuming — the
//     ceiling;
//   - ingest-events/s: how fast one analytics replica drains a backlog of
//     those events from PLAYBACK, end to end: from the replica reporting
//     ready until its /stats shows every event applied (consume, merge,
//     compare-and-set in KV, ack, read model); ingest/raw-% is the ratio;
//   - e2e-events/s: the same with the events published while the replica
//     runs, so publisher and analytics share the CPU; e2e/raw-% its ratio.
func BenchmarkAnalyticsIngest(b *testing.B) {
	n := benchSessions * (benchBeats + 1)
	staff := kittest.StaffToken(b, "bench-staff") // /stats is for staff
	var raw, drain, e2e time.Duration
	for range b.N {
		b.StopTimer()
		broker, err := kittest.NewBroker(b.TempDir(), "bench", "bench-password")
		if err != nil {
			b.Fatal(err)
		}
		ev := streamtest.ConnectEvents(b, broker)
		ctx := context.Background()
		st, _ := catalog.StreamFor(catalog.PlaybackStarted)
		for _, cfg := range []jetstream.StreamConfig{
			kit.StreamConfig(st, kit.Limits{}),
			{Name: "BENCHRAW", Subjects: []string{"benchraw.>"}, Storage: jetstream.FileStorage, Duplicates: kit.DuplicateWindow},
		} {
			if _, err := ev.JS.CreateOrUpdateStream(ctx, cfg); err != nil {
				b.Fatal(err)
			}
		}
		backlog, live := benchEvents("a"), benchEvents("b")
		b.StartTimer()

		start := time.Now()
		publish(b, ev, backlog, "benchraw.")
		raw += time.Since(start)

		publish(b, ev, backlog, "")
		svc := kittest.Serve(b, analytics.Definition, streamtest.Merge(broker.Env(), map[string]string{"INGEST_BATCH": os.Getenv("BENCH_BATCH")}))
		start = time.Now()
		waitApplied(b, svc.HTTP, svc.URL, staff, benchSessions*benchBeats)
		drain += time.Since(start)

		start = time.Now()
		publish(b, ev, live, "")
		waitApplied(b, svc.HTTP, svc.URL, staff, 2*benchSessions*benchBeats)
		e2e += time.Since(start)

		b.StopTimer()
		_ = svc.Stop()
		ev.NC.Close()
		broker.Server.Shutdown()
		b.StartTimer()
	}
	rawRate := float64(b.N*n) / raw.Seconds()
	drainRate := float64(b.N*n) / drain.Seconds()
	e2eRate := float64(b.N*n) / e2e.Seconds()
	b.ReportMetric(rawRate, "raw-publish-events/s")
	b.ReportMetric(drainRate, "ingest-events/s")
	b.ReportMetric(100*drainRate/rawRate, "ingest/raw-%")
	b.ReportMetric(e2eRate, "e2e-events/s")
	b.ReportMetric(100*e2eRate/rawRate, "e2e/raw-%")
}

// publish sends msgs asynchronously (to prefix+subject) and waits for
// every ack.
func publish(b *testing.B, ev *streamtest.Events, msgs []benchMsg, prefix string) {
	for _, m := range msgs {
		if _, err := ev.JS.PublishAsync(prefix+m.subject, m.body, jetstream.WithMsgID(m.id), jetstream.WithStallWait(30*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
	ev.Wait()
}

// waitApplied polls /stats, with c (the gateway's identity: analytics'
// API admits no other), until it counts want heartbeats.
func waitApplied(b *testing.B, c *http.Client, url, token string, want int) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var s analytics.Stats
		status, raw, err := callWith(c, "GET", url+"/stats", token, nil)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("/stats answered %d: %s", status, raw)
		}
		if err == nil {
			err = json.Unmarshal(raw, &s)
		}
		if err != nil {
			b.Fatal(err)
		}
		if s.Heartbeats == want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("analytics applied %d of %d heartbeats", s.Heartbeats, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type benchMsg struct {
	subject, id string
	body        []byte
}

func benchEvents(tag string) []benchMsg {
	now := time.Now()
	out := make([]benchMsg, 0, benchSessions*(benchBeats+1))
	for seq := 0; seq <= benchBeats; seq++ {
		for s := range benchSessions {
			e := events.Playback{
				SessionID: fmt.Sprintf("%s-s%05d", tag, s), AccountID: fmt.Sprintf("acct%04d", s%500),
				ContentID: fmt.Sprintf("video%02d", s%50), Region: "eu", CDN: "edge-eu-1", Quality: "1080p",
				DurationSec: 3600, Seq: seq, PositionSec: float64(seq * 10), WatchedSec: float64(seq * 10),
			}
			typ := catalog.PlaybackHeartbeat
			id := kit.EventID(typ, fmt.Sprintf("%s.%d", e.SessionID, seq))
			if seq == 0 {
				typ = catalog.PlaybackStarted
				id = kit.EventID(typ, e.SessionID)
			}
			out = append(out, benchMsg{subject: typ, id: id, body: streamtest.Envelope(typ, id, now, e)})
		}
	}
	return out
}

var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}

func call(method, url, token string, body any) (int, []byte, error) {
	return callWith(benchClient, method, url, token, body)
}

func callWith(c *http.Client, method, url, token string, body any) (int, []byte, error) {
	var buf bytes.Buffer
	if body != nil {
		_ = json.NewEncoder(&buf).Encode(body)
	}
	req, _ := http.NewRequest(method, url, &buf)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	return resp.StatusCode, out.Bytes(), nil
}

// BenchmarkSessionStart measures POST /api/playback/sessions through the
// gateway (token check, playback, parallel account + content calls with
// content calling account, the slot compare-and-set, the edge choice and
// the started event), from 4 concurrent clients, each start followed by an
// untimed stop. One op is startsPerOp starts, so -benchtime 3x gives a
// stable percentile. It reports p50 and p99 latency and starts/s.
const startsPerOp = 500

func BenchmarkSessionStart(b *testing.B) {
	p := startPlatform(b, nil)
	api := p.GatewayURL + "/api"
	const workers = 4
	tokens := make([]string, workers)
	var video events.Video
	for w := range workers {
		email := fmt.Sprintf("bench%d@example.com", w)
		if code, raw, err := call("POST", api+"/account/accounts", "", account.SignUp{Email: email, Password: "correct-horse", Plan: events.PlanPremium}); err != nil || code != 201 {
			b.Fatalf("sign up: %d %s %v", code, raw, err)
		}
		_, raw, _ := call("POST", api+"/account/login", "", account.Login{Email: email, Password: "correct-horse"})
		var tok account.Token
		_ = json.Unmarshal(raw, &tok)
		tokens[w] = tok.Token
	}
	staff := kittest.Issue(b, p.Signer, "bench-staff", kit.RoleAdmin) // adding a title is for staff
	code, raw, err := call("POST", api+"/content/videos", staff, content.Upload{Title: "Bench", Genres: []string{"drama"}, DurationSec: 600, Regions: []string{"eu"}, MinPlan: events.PlanBasic})
	if err != nil || code != http.StatusCreated {
		b.Fatalf("upload: %d %s %v", code, raw, err)
	}
	_ = json.Unmarshal(raw, &video)
	for video.Status != content.Ready {
		time.Sleep(10 * time.Millisecond)
		_, raw, _ = call("GET", api+"/content/videos/"+video.ID, tokens[0], nil)
		_ = json.Unmarshal(raw, &video)
	}
	var mu sync.Mutex
	var lat []time.Duration
	next := make(chan struct{})
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				t0 := time.Now()
				code, raw, err := call("POST", api+"/playback/sessions", tokens[w], playback.StartRequest{ContentID: video.ID, Region: "eu"})
				d := time.Since(t0)
				if err != nil || code != http.StatusCreated {
					b.Errorf("start: %d %s %v", code, raw, err)
					return
				}
				var st playback.Started
				_ = json.Unmarshal(raw, &st)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
				_, _, _ = call("DELETE", api+"/playback/sessions/"+st.SessionID, tokens[w], nil)
			}
		}()
	}
	for range b.N * startsPerOp {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	pct := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "starts/s")
}
