package playback

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// DefaultTTL is how long a session lives without a heartbeat.
const DefaultTTL = 30 * time.Second

// StartHeight is the quality a session starts at before the first
// heartbeat reports bandwidth (capped by plan and source).
const StartHeight = 480

// maxStepSec bounds the watch time one heartbeat can add: a jump further
// than this is a seek, not watching.
const maxStepSec = 120

// finishedShare of a video's duration counts as finished.
const finishedShare = 0.95

// Session is one playback session, as stored.
type Session struct {
	ID          string             `json:"id"`
	AccountID   string             `json:"accountId"`
	ProfileID   string             `json:"profileId,omitempty"`
	ContentID   string             `json:"contentId"`
	Region      string             `json:"region"`
	CDN         string             `json:"cdn"`
	Quality     string             `json:"quality"`
	Renditions  []events.Rendition `json:"renditions"`
	DurationSec int                `json:"durationSec"`
	PositionSec float64            `json:"positionSec"`
	WatchedSec  float64            `json:"watchedSec"`
	Heartbeats  int                `json:"heartbeats"`
	// LastBeat is when the last heartbeat was accepted.
	LastBeat  time.Time `json:"lastBeat,omitzero"`
	StartedAt time.Time `json:"startedAt"`
	ExpiresAt time.Time `json:"expiresAt"`
}

func (s Session) expired(now time.Time) bool { return !now.Before(s.ExpiresAt) }

func (s Session) finished() bool {
	return s.DurationSec > 0 && s.PositionSec >= finishedShare*float64(s.DurationSec)
}

// StartRequest is the body of POST /sessions.
type StartRequest struct {
	ContentID string `json:"contentId"`
	Region    string `json:"region"`
	ProfileID string `json:"profileId,omitempty"`
}

// Validate checks a start request.
func (r StartRequest) Validate() error {
	switch {
	case !kit.ValidID(r.ContentID):
		return kit.Invalid("contentId", "contentId must be a video id")
	case !kit.ValidID(r.Region):
		return kit.Invalid("region", "region must be a region code like eu")
	case r.ProfileID != "" && !kit.ValidID(r.ProfileID):
		return kit.Invalid("profileId", "profileId must be a profile id")
	}
	return nil
}

// Started is the answer to POST /sessions.
type Started struct {
	SessionID   string `json:"sessionId"`
	ManifestURL string `json:"manifestUrl"`
	CDN         string `json:"cdn"`
	Quality     string `json:"quality"`
}

// Heartbeat is the body of POST /sessions/{id}/heartbeat.
type Heartbeat struct {
	PositionSec   float64 `json:"positionSec"`
	BandwidthKbps float64 `json:"bandwidthKbps"`
	BufferSec     float64 `json:"bufferSec"`
}

// Validate checks a heartbeat.
func (h Heartbeat) Validate() error {
	switch {
	case !(h.PositionSec >= 0 && h.PositionSec <= 86400):
		return kit.Invalid("positionSec", "positionSec must be between 0 and 86400")
	case !(h.BandwidthKbps >= 0 && h.BandwidthKbps <= 1e7):
		return kit.Invalid("bandwidthKbps", "bandwidthKbps must be between 0 and 10000000")
	case !(h.BufferSec >= 0 && h.BufferSec <= 3600):
		return kit.Invalid("bufferSec", "bufferSec must be between 0 and 3600")
	}
	return nil
}

// QualityAnswer is the answer to a heartbeat.
type QualityAnswer struct {
	SessionID string `json:"sessionId"`
	Quality   string `json:"quality"`
}

// ChooseQuality is the adaptive-bitrate rule: the best rendition whose
// bitrate fits in a share of the measured bandwidth, a smaller share when
// the buffer runs low. renditions are already capped by plan and source.
func ChooseQuality(renditions []events.Rendition, bandwidthKbps, bufferSec float64) events.Rendition {
	share := 0.8
	if bufferSec < 5 {
		share = 0.5
	}
	budget := bandwidthKbps * share
	best := renditions[0]
	for _, r := range renditions {
		if float64(r.BitrateKbps) <= budget {
			best = r
		}
	}
	return best
}

// upstreams fetches what a start needs, in parallel: the account (plan and
// profiles) from account, the access decision and the video from content.
func (p *Player) upstreams(ctx context.Context, caller string, r StartRequest) (events.Account, Access, events.Video, error) {
	var (
		acc            events.Account
		access         Access
		video          events.Video
		accErr, libErr error
		wg             sync.WaitGroup
	)
	wg.Go(func() { acc, accErr = p.accounts.Account(ctx, caller) })
	wg.Go(func() { access, video, libErr = p.content.CheckAccess(ctx, r.ContentID, caller, r.Region) })
	wg.Wait()
	switch {
	case errors.Is(libErr, ErrUnknownVideo):
		return acc, access, video, kit.NotFound("video %q not found", r.ContentID)
	case errors.Is(accErr, ErrUnknownAccount):
		return acc, access, video, kit.Errorf(http.StatusForbidden, CodeAccessDenied, "account %s is not accessible", caller)
	}
	for _, err := range []error{accErr, libErr} {
		if err != nil {
			if e := kit.AsError(err); e.Status >= 400 && e.Status < 500 {
				// An upstream's refusal here means our request was wrong.
				return acc, access, video, kit.Unavailable("upstream refused a playback check: %s", e.Message)
			}
			return acc, access, video, err
		}
	}
	return acc, access, video, nil
}

// Start opens a session for caller (the token's account), after access and
// the plan's stream limit.
func (p *Player) Start(ctx context.Context, caller string, r StartRequest) (Started, error) {
	if err := r.Validate(); err != nil {
		return Started{}, err
	}
	acc, access, video, err := p.upstreams(ctx, caller, r)
	if err != nil {
		return Started{}, err
	}
	if !access.Allowed {
		return Started{}, kit.Errorf(http.StatusForbidden, CodeAccessDenied, "%s", access.Reason)
	}
	if r.ProfileID != "" && !slices.ContainsFunc(acc.Profiles, func(pr events.Profile) bool { return pr.ID == r.ProfileID }) {
		return Started{}, kit.Invalid("profileId", "profile %q is not one of this account's", r.ProfileID)
	}
	plan, ok := events.LookupPlan(acc.Plan)
	if !ok {
		return Started{}, kit.Unavailable("account has an unknown plan %q", acc.Plan)
	}
	var rends []events.Rendition
	for _, rd := range video.Renditions {
		if rd.Height <= plan.MaxHeight {
			rends = append(rends, rd)
		}
	}
	if len(rends) == 0 {
		return Started{}, kit.Errorf(http.StatusForbidden, CodeAccessDenied, "video has no rendition within plan %s", plan.Name)
	}
	start := rends[0]
	for _, rd := range rends {
		if rd.Height <= StartHeight {
			start = rd
		}
	}
	edge, err := p.chooseEdge(ctx, r.Region)
	if err != nil {
		return Started{}, err
	}
	now := p.now().UTC()
	sess := Session{
		ID: kit.NewID(), AccountID: caller, ProfileID: r.ProfileID, ContentID: r.ContentID, Region: r.Region, CDN: edge.Name,
		Quality: start.Quality, Renditions: rends, DurationSec: video.DurationSec, StartedAt: now, ExpiresAt: now.Add(p.ttl),
	}
	var pruned []Session
	_, err = p.slots.Upsert(ctx, slotsKey(caller), func(s *slots, _ bool) error {
		pruned = pruneExpired(s, now)
		if len(s.Sessions) >= plan.Streams {
			return kit.Errorf(http.StatusTooManyRequests, CodeStreamLimit, "plan %s allows %d concurrent stream(s); stop one first", plan.Name, plan.Streams)
		}
		s.Sessions[sess.ID] = sess
		return nil
	})
	if err != nil {
		return Started{}, err
	}
	for _, old := range pruned {
		p.finish(ctx, old, "expired", video.Genres)
	}
	p.addLoad(ctx, edge.Name, 1)
	if err := p.pub.Publish(ctx, kit.EventID(catalog.PlaybackStarted, sess.ID), "sessions/"+sess.ID, events.PlaybackStarted{Playback: p.event(sess, video.Genres, "")}); err != nil {
		// Heartbeats carry the same facts; consumers treat the first one as a start.
		kit.Logger(ctx).Warn("playback.started not published", "session", sess.ID, "err", err)
	}
	return Started{
		SessionID:   sess.ID,
		ManifestURL: fmt.Sprintf("%s/vod/%s/%s/master.m3u8", edge.URL, url.PathEscape(sess.ContentID), sess.ID),
		CDN:         edge.Name,
		Quality:     sess.Quality,
	}, nil
}

func (p *Player) event(s Session, genres []string, reason string) events.Playback {
	return events.Playback{
		SessionID: s.ID, AccountID: s.AccountID, ProfileID: s.ProfileID, ContentID: s.ContentID, Genres: genres,
		Region: s.Region, CDN: s.CDN, Quality: s.Quality, DurationSec: s.DurationSec, Seq: s.Heartbeats,
		PositionSec: s.PositionSec, WatchedSec: s.WatchedSec, Finished: s.finished(), Reason: reason,
	}
}

func notFound(id string) error {
	return kit.Errorf(http.StatusNotFound, CodeSessionNotFound, "session %q not found or expired", id)
}

// Heartbeat records progress and answers the quality to play next.
func (p *Player) Heartbeat(ctx context.Context, caller, id string, h Heartbeat) (QualityAnswer, error) {
	if err := h.Validate(); err != nil {
		return QualityAnswer{}, err
	}
	if !kit.ValidID(id) {
		return QualityAnswer{}, notFound(id)
	}
	now := p.now().UTC()
	var sess Session
	_, err := p.slots.Update(ctx, slotsKey(caller), func(s *slots) error {
		cur, ok := s.Sessions[id]
		if !ok || cur.expired(now) {
			return notFound(id)
		}
		if wait := cur.LastBeat.Add(p.minBeat).Sub(now); !cur.LastBeat.IsZero() && wait > 0 {
			return &kit.Error{Status: http.StatusTooManyRequests, Code: CodeHeartbeatTooSoon, RetryAfter: wait,
				Message: fmt.Sprintf("session %s had a heartbeat less than %s ago; send the next one later", id, p.minBeat)}
		}
		cur.LastBeat = now
		step := h.PositionSec - cur.PositionSec
		if step > 0 {
			cur.WatchedSec += math.Min(step, maxStepSec)
		}
		cur.PositionSec = h.PositionSec
		cur.Quality = ChooseQuality(cur.Renditions, h.BandwidthKbps, h.BufferSec).Quality
		cur.Heartbeats++
		cur.ExpiresAt = now.Add(p.ttl)
		s.Sessions[id] = cur
		sess = cur
		return nil
	})
	if errors.Is(err, kit.ErrNotFound) {
		return QualityAnswer{}, notFound(id)
	}
	if err != nil {
		return QualityAnswer{}, err
	}
	if err := p.remember(ctx, sess, now); err != nil {
		return QualityAnswer{}, err
	}
	evID := kit.EventID(catalog.PlaybackHeartbeat, sess.ID+"."+strconv.Itoa(sess.Heartbeats))
	if err := p.pub.Publish(ctx, evID, "sessions/"+sess.ID, events.PlaybackHeartbeat{Playback: p.event(sess, nil, "")}); err != nil {
		// The next heartbeat carries the cumulative figures.
		kit.Logger(ctx).Warn("playback.heartbeat not published", "session", sess.ID, "err", err)
	}
	return QualityAnswer{SessionID: sess.ID, Quality: sess.Quality}, nil
}

// Stop ends a session and frees its slot.
func (p *Player) Stop(ctx context.Context, caller, id string) error {
	if !kit.ValidID(id) {
		return notFound(id)
	}
	cur, _, err := p.slots.Get(ctx, slotsKey(caller))
	if errors.Is(err, kit.ErrNotFound) {
		return notFound(id)
	}
	if err != nil {
		return err
	}
	sess, ok := cur.Sessions[id]
	if !ok {
		return notFound(id)
	}
	reason := "stopped"
	if sess.expired(p.now()) {
		reason = "expired"
	}
	// Announce first, then free the slot: if the pod dies in between, a
	// retried DELETE (or the sweeper) republishes the same event id.
	if err := p.publishStopped(ctx, sess, reason); err != nil {
		return err
	}
	removed := false
	if _, err := p.slots.Update(ctx, slotsKey(caller), func(s *slots) error {
		_, removed = s.Sessions[id]
		if !removed {
			return kit.ErrNoChange
		}
		delete(s.Sessions, id)
		return nil
	}); err != nil {
		return err
	}
	if removed {
		if err := p.remember(ctx, sess, p.now().UTC()); err != nil {
			return err
		}
		p.addLoad(ctx, sess.CDN, -1)
	}
	return nil
}

func (p *Player) publishStopped(ctx context.Context, s Session, reason string) error {
	return p.pub.Publish(ctx, kit.EventID(catalog.PlaybackStopped, s.ID), "sessions/"+s.ID, events.PlaybackStopped{Playback: p.event(s, nil, reason)})
}

// finish announces an expired session already removed from its slots.
func (p *Player) finish(ctx context.Context, s Session, reason string, genres []string) {
	if err := p.publishStopped(ctx, s, reason); err != nil {
		kit.Logger(ctx).Warn("playback.stopped not published", "session", s.ID, "err", err)
	}
	if err := p.remember(ctx, s, p.now().UTC()); err != nil {
		kit.Logger(ctx).Warn("history not updated", "session", s.ID, "err", err)
	}
	p.addLoad(ctx, s.CDN, -1)
}
