package analytics

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Session states, ordered: a merge keeps the higher one, so a redelivered
// start can never reopen a stopped session.
const (
	active = 1
	ended  = 2
)

// maxMinutes bounds the per-minute history a session record keeps: enough
// for the longest /top window plus the baseline before it.
const maxMinutes = 62

// stat is what the analytics bucket holds per session ("s.<sessionId>").
// Every field merges by max (or min for First), which is idempotent and
// commutative: applying an event twice, or two replicas applying events in
// either order, gives the same record. That is what makes the figures
// exact under redelivery without a per-event dedupe table.
type stat struct {
	Video   string `json:"v"`
	Account string `json:"a"`
	State   int    `json:"st"`
	// Watched is the session's cumulative watch time in seconds.
	Watched float64 `json:"w"`
	// Seq is the highest heartbeat number seen: the session's heartbeats.
	Seq int `json:"q"`
	// First and Last are event times in Unix milliseconds.
	First int64 `json:"f"`
	Last  int64 `json:"l"`
	// Minutes maps a Unix minute to the cumulative watch time seen in it;
	// /top subtracts the value before the window from the latest.
	Minutes map[int64]float64 `json:"m,omitempty"`
}

// fact is one decoded event, reduced to what a stat merges.
type fact struct {
	session string
	stat    stat
}

// decode turns an envelope into the fact it carries about its session.
func decode(ev kit.Event) (fact, error) {
	var p events.Playback
	if err := json.Unmarshal(ev.Data, &p); err != nil {
		return fact{}, fmt.Errorf("%w: %s: %v", kit.ErrPermanent, ev.ID, err)
	}
	return toFact(ev.ID, ev.Type, ev.Time, p)
}

// envelope is kit.Event with the playback data decoded in the same pass:
// ingest decodes every message, so one parse instead of two matters.
type envelope struct {
	ID   string          `json:"id"`
	Type string          `json:"type"`
	Time time.Time       `json:"time"`
	Data events.Playback `json:"data"`
}

// decodeMsg is decode for a raw message.
func decodeMsg(body []byte) (fact, error) {
	var e envelope
	if err := json.Unmarshal(body, &e); err != nil || e.ID == "" {
		return fact{}, fmt.Errorf("%w: malformed event: %v", kit.ErrPermanent, err)
	}
	return toFact(e.ID, e.Type, e.Time, e.Data)
}

func toFact(id, typ string, t time.Time, p events.Playback) (fact, error) {
	if !kit.ValidID(p.SessionID) || !kit.ValidID(p.ContentID) || !kit.ValidID(p.AccountID) {
		return fact{}, fmt.Errorf("%w: %s: session, content and account ids are required", kit.ErrPermanent, id)
	}
	if !(p.WatchedSec >= 0 && p.WatchedSec <= 1e7) || p.Seq < 0 {
		return fact{}, fmt.Errorf("%w: %s: figures out of range", kit.ErrPermanent, id)
	}
	state := active
	switch typ {
	case catalog.PlaybackStarted, catalog.PlaybackHeartbeat:
	case catalog.PlaybackStopped:
		state = ended
	default:
		return fact{}, fmt.Errorf("%w: %s: unexpected type %q", kit.ErrPermanent, id, typ)
	}
	if t.IsZero() {
		return fact{}, fmt.Errorf("%w: %s: no time", kit.ErrPermanent, id)
	}
	at := t.UnixMilli()
	return fact{session: p.SessionID, stat: stat{
		Video: p.ContentID, Account: p.AccountID, State: state, Watched: p.WatchedSec, Seq: p.Seq,
		First: at, Last: at, Minutes: map[int64]float64{minute(at): p.WatchedSec},
	}}, nil
}

func minute(unixMilli int64) int64 { return unixMilli / 60000 }

// merge folds o into s.
func (s *stat) merge(o stat) {
	if s.Video == "" {
		s.Video, s.Account = o.Video, o.Account
	}
	s.State = max(s.State, o.State)
	s.Watched = max(s.Watched, o.Watched)
	s.Seq = max(s.Seq, o.Seq)
	if s.First == 0 || (o.First != 0 && o.First < s.First) {
		s.First = o.First
	}
	s.Last = max(s.Last, o.Last)
	if len(o.Minutes) > 0 && s.Minutes == nil {
		s.Minutes = map[int64]float64{}
	}
	for m, w := range o.Minutes {
		s.Minutes[m] = max(s.Minutes[m], w)
	}
	s.trim()
}

// trim folds minutes too old for any window into one baseline entry, which
// keeps the record small and the window arithmetic exact.
func (s *stat) trim() {
	if len(s.Minutes) <= maxMinutes {
		return
	}
	cut := minute(s.Last) - (maxMinutes - 2) // 61 minutes of window, plus the baseline
	var base, baseMin int64 = 0, -1
	var baseW float64
	for m, w := range s.Minutes {
		if m < cut {
			if w >= baseW {
				baseW = w
			}
			if m > baseMin {
				baseMin = m
			}
			delete(s.Minutes, m)
			base++
		}
	}
	if base > 0 {
		s.Minutes[baseMin] = max(s.Minutes[baseMin], baseW)
	}
}

// live reports whether the session counts as a viewer at now: started, not
// stopped, and heard from within staleAfter (a safety net for a stop that
// was never published).
func (s stat) live(now time.Time, staleAfter time.Duration) bool {
	return s.State == active && now.Add(-staleAfter).UnixMilli() < s.Last
}

// watchedIn is the watch time the session accrued since the minute of from.
func (s stat) watchedIn(from time.Time) float64 {
	if s.Last < from.UnixMilli() {
		return 0
	}
	start := minute(from.UnixMilli())
	var before float64
	for m, w := range s.Minutes {
		if m < start && w > before {
			before = w
		}
	}
	return max(0, s.Watched-before)
}
