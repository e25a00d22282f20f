package events

import (
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// Rendition is one encoded quality of a video. Qualities are named by
// height.
type Rendition struct {
	Quality     string `json:"quality"`
	Height      int    `json:"height"`
	BitrateKbps int    `json:"bitrateKbps"`
}

// Video is a video as the content service answers it and content.created
// and content.encoded carry it.
type Video struct {
	ID           string      `json:"id"`
	Title        string      `json:"title"`
	Genres       []string    `json:"genres"`
	DurationSec  int         `json:"durationSec"`
	Regions      []string    `json:"regions"`
	MinPlan      string      `json:"minPlan"`
	SourceHeight int         `json:"sourceHeight"`
	Status       string      `json:"status"`
	Renditions   []Rendition `json:"renditions"`
	CreatedAt    time.Time   `json:"createdAt"`
}

// ContentCreated is the data of content.created: the video as uploaded,
// still encoding.
type ContentCreated struct{ Video }

// ContentEncodeRequested is the data of content.encode.requested: a job for
// the encoding workers.
type ContentEncodeRequested struct {
	VideoID      string `json:"videoId"`
	SourceHeight int    `json:"sourceHeight"`
}

// ContentEncoded is the data of content.encoded: the video, ready, with its
// renditions.
type ContentEncoded struct{ Video }

func (ContentCreated) EventType() string         { return catalog.ContentCreated }
func (ContentEncodeRequested) EventType() string { return catalog.ContentEncodeRequested }
func (ContentEncoded) EventType() string         { return catalog.ContentEncoded }
