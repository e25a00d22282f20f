package analytics

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

func factAt(t *testing.T, typ string, at time.Time, seq int, watched float64) stat {
	t.Helper()
	data, _ := json.Marshal(events.Playback{SessionID: "s", AccountID: "a", ContentID: "v", Seq: seq, WatchedSec: watched})
	f, err := decode(kit.Event{ID: "x", Type: typ, Time: at, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	return f.stat
}

func TestMergeIsIdempotentAndOrderFree(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	evs := []stat{
		factAt(t, catalog.PlaybackStarted, t0, 0, 0),
		factAt(t, catalog.PlaybackHeartbeat, t0.Add(10*time.Second), 1, 10),
		factAt(t, catalog.PlaybackHeartbeat, t0.Add(70*time.Second), 2, 70),
		factAt(t, catalog.PlaybackStopped, t0.Add(80*time.Second), 2, 75),
	}
	var inOrder stat
	for _, e := range evs {
		inOrder.merge(e)
	}
	tests := []struct {
		name  string
		order []int
	}{
		{"reversed", []int{3, 2, 1, 0}},
		{"every event twice", []int{0, 0, 1, 1, 2, 2, 3, 3}},
		{"a start redelivered after the stop", []int{0, 1, 2, 3, 0}},
		{"shuffled with copies", []int{2, 0, 3, 1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s stat
			for _, i := range tt.order {
				s.merge(evs[i])
			}
			if !equalStat(s, inOrder) {
				t.Fatalf("got %+v, want %+v", s, inOrder)
			}
		})
	}
	if inOrder.State != ended || inOrder.Watched != 75 || inOrder.Seq != 2 {
		t.Fatalf("merged %+v", inOrder)
	}
	// 75s watched, 10s of it before the minute of t0+70s.
	if got := inOrder.watchedIn(t0.Add(70 * time.Second)); got != 75-10 {
		t.Fatalf("watched in window: %v", got)
	}
}

func TestTrimKeepsTheBaseline(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	var s stat
	for i := range 200 {
		s.merge(factAt(t, catalog.PlaybackHeartbeat, t0.Add(time.Duration(i)*time.Minute), i+1, float64(60*(i+1))))
	}
	if len(s.Minutes) > maxMinutes {
		t.Fatalf("%d minutes kept", len(s.Minutes))
	}
	last := t0.Add(199 * time.Minute)
	// Over the last 5 minutes (minutes 195-199) it watched 5 minutes.
	if got := s.watchedIn(last.Add(-4 * time.Minute)); got != 300 {
		t.Fatalf("last 5 minutes: %v", got)
	}
	if got := s.watchedIn(last.Add(-59 * time.Minute)); got != 3600 {
		t.Fatalf("last hour: %v", got)
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add(catalog.PlaybackHeartbeat, []byte(`{"sessionId":"s","accountId":"a","contentId":"v","seq":3,"watchedSec":30}`))
	f.Add(catalog.PlaybackStopped, []byte(`{"sessionId":"s"}`))
	f.Add("order.created", []byte(`{"sessionId":"s","accountId":"a","contentId":"v"}`))
	f.Add(catalog.PlaybackStarted, []byte(`{"sessionId":"s","accountId":"a","contentId":"v","watchedSec":-1}`))
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		f, err := decode(kit.Event{ID: "e", Type: typ, Time: time.Unix(1_800_000_000, 0), Data: data})
		if err != nil {
			return
		}
		if f.session == "" || f.stat.State == 0 || f.stat.Watched < 0 {
			t.Fatalf("accepted a bad event: %+v", f)
		}
		s := f.stat
		s.merge(f.stat)
		if !equalStat(s, f.stat) {
			t.Fatal("merging an event with itself changed it")
		}
	})
}

func FuzzParseTopQuery(f *testing.F) {
	f.Add("5m", "10")
	f.Add("-1s", "0")
	f.Add("1h0m1s", "101")
	f.Fuzz(func(t *testing.T, window, limit string) {
		q, err := ParseTopQuery(window, limit)
		if err != nil {
			if e := kit.AsError(err); e.Status != 400 || e.Field == "" {
				t.Fatalf("error %v", err)
			}
			return
		}
		if q.Window < time.Second || q.Window > MaxWindow || q.Limit < 1 || q.Limit > MaxLimit {
			t.Fatalf("accepted %+v", q)
		}
	})
}
