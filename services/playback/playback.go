// Package playback starts and tracks streaming sessions: access through
// content, the plan's concurrent-stream limit, the CDN edge, adaptive
// quality from heartbeats, expiry and watch history.
//
// Nothing lives only in one replica's memory, so any replica behind the HPA
// can serve any call and a dead pod loses nothing:
//
//   - An account's sessions are one KV record ("acct.<accountId>" in the
//     sessions bucket). Starting, heartbeating and stopping are
//     compare-and-set updates of that record, so two replicas starting a
//     stream for the same account at once cannot both take the last slot.
//   - A session expires when its ExpiresAt (last heartbeat + SESSION_TTL)
//     has passed. Expiry is decided by time, not by a timer in the pod that
//     created the session: a start prunes expired sessions inside the same
//     compare-and-set that counts slots, so a slot frees itself even if
//     that pod died. Any replica's sweeper also prunes expired sessions
//     (compare-and-set again, so two sweepers never conflict) and publishes
//     playback.stopped for them with reason "expired".
//   - CDN edge load is a counter per edge ("edge.<name>") changed by
//     compare-and-set on start and stop, and recounted from the session
//     records by the sweeper, which corrects drift left by a crash between
//     the two writes. It is a balancing hint, never a limit.
//   - Watch history is one record per account in the watch-history bucket.
//
// Events carry deterministic ids (playback.started:<session>,
// playback.heartbeat:<session>.<n>, playback.stopped:<session>), so a
// retried call republishes the same event.
package playback

import (
	"errors"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Error codes.
const (
	CodeAccessDenied    = "access_denied"
	CodeStreamLimit     = "stream_limit"
	CodeSessionNotFound = "session_not_found"
	// CodeHeartbeatTooSoon is a 429: a session's heartbeats come no closer
	// together than HEARTBEAT_MIN_INTERVAL.
	CodeHeartbeatTooSoon = "heartbeat_too_soon"
)

// Player holds the playback logic.
type Player struct {
	slots    *kit.Store[slots]
	edges    *kit.Store[edgeLoad]
	history  *kit.Store[history]
	pub      kit.Publisher
	accounts Accounts
	content  Library
	cdn      []Edge
	ttl      time.Duration
	// minBeat is the least time between two heartbeats of a session.
	minBeat time.Duration
	now     func() time.Time
}

// NewPlayer refuses nil dependencies.
func NewPlayer(sessions *kit.Store[slots], edges *kit.Store[edgeLoad], hist *kit.Store[history], pub kit.Publisher, accounts Accounts, videos Library, cdn []Edge, ttl time.Duration) (*Player, error) {
	if sessions == nil || edges == nil || hist == nil || pub == nil || accounts == nil || videos == nil || len(cdn) == 0 || ttl <= 0 {
		return nil, errors.New("playback: NewPlayer needs stores, a publisher, account and content clients, edges and a TTL")
	}
	return &Player{slots: sessions, edges: edges, history: hist, pub: pub, accounts: accounts, content: videos, cdn: cdn, ttl: ttl,
		minBeat: catalog.DefaultHeartbeatMinInterval, now: time.Now}, nil
}

// SetMinHeartbeatInterval sets the least time between two heartbeats of a
// session (default catalog.DefaultHeartbeatMinInterval). Each accepted
// heartbeat writes a record and publishes an event, so one client sending
// them in a loop would fill the broker's store; one too soon is refused
// with a 429 instead.
func (p *Player) SetMinHeartbeatInterval(d time.Duration) { p.minBeat = d }
