package events

import "github.com/switchboard-dev/switchboard/services/catalog"

// Playback is what the three playback events say about a session. A
// consumer of all three (analytics, recommendation) decodes this and tells
// them apart by the envelope's type.
type Playback struct {
	SessionID string `json:"sessionId"`
	AccountID string `json:"accountId"`
	ProfileID string `json:"profileId,omitempty"`
	ContentID string `json:"contentId"`
	// Genres are sent with playback.started only.
	Genres      []string `json:"genres,omitempty"`
	Region      string   `json:"region"`
	CDN         string   `json:"cdn"`
	Quality     string   `json:"quality"`
	DurationSec int      `json:"durationSec"`
	// Seq is the heartbeat number (0 for started).
	Seq         int     `json:"seq"`
	PositionSec float64 `json:"positionSec"`
	// WatchedSec is the session's cumulative watch time: consumers take
	// the maximum they have seen, so redelivery cannot inflate it.
	WatchedSec float64 `json:"watchedSec"`
	Finished   bool    `json:"finished"`
	// Reason of a stop: "stopped" or "expired".
	Reason string `json:"reason,omitempty"`
}

// PlaybackStarted is the data of playback.started.
type PlaybackStarted struct{ Playback }

// PlaybackHeartbeat is the data of playback.heartbeat.
type PlaybackHeartbeat struct{ Playback }

// PlaybackStopped is the data of playback.stopped.
type PlaybackStopped struct{ Playback }

func (PlaybackStarted) EventType() string   { return catalog.PlaybackStarted }
func (PlaybackHeartbeat) EventType() string { return catalog.PlaybackHeartbeat }
func (PlaybackStopped) EventType() string   { return catalog.PlaybackStopped }
