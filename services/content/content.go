// Package content holds the video library, its encoding pipeline and access
// rights.
//
// Uploading a video stores it as "encoding" and publishes
// content.encode.requested. Encoding workers are every replica's consumer
// of one shared durable, so each job is done once however many replicas
// run; a worker writes the renditions (240p up to the source's height) with
// compare-and-set, marks the video ready and publishes content.encoded.
// A redelivered job finds the video ready, republishes the same event id
// (JetStream and consumers drop the copy) and is acked as a duplicate.
//
// Access is decided per viewer, for playback, through the internal gRPC
// API (switchboard.content.v1.Library, which admits playback's identity
// only): the video must be ready, offered in the viewer's region, and the
// viewer's plan (read from account over gRPC, behind the client's breaker)
// must rank at least the video's minPlan.
package content

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Video states.
const (
	Encoding = "encoding"
	Ready    = "ready"
)

// Ladder is every rendition the pipeline can produce, lowest first, with the
// bitrate a player needs to play it smoothly. Playback's adaptive-bitrate
// logic picks from the same ladder.
var Ladder = []events.Rendition{
	{Quality: "240p", Height: 240, BitrateKbps: 400},
	{Quality: "360p", Height: 360, BitrateKbps: 800},
	{Quality: "480p", Height: 480, BitrateKbps: 1400},
	{Quality: "720p", Height: 720, BitrateKbps: 2800},
	{Quality: "1080p", Height: 1080, BitrateKbps: 5000},
	{Quality: "1440p", Height: 1440, BitrateKbps: 9000},
	{Quality: "2160p", Height: 2160, BitrateKbps: 16000},
}

// RenditionsFor returns the ladder up to the source's height.
func RenditionsFor(sourceHeight int) []events.Rendition {
	var out []events.Rendition
	for _, r := range Ladder {
		if r.Height <= sourceHeight {
			out = append(out, r)
		}
	}
	return out
}

// Upload is the body of POST /videos. SourceHeight is optional (1080 by
// default) and caps the renditions.
type Upload struct {
	Title        string   `json:"title"`
	Genres       []string `json:"genres"`
	DurationSec  int      `json:"durationSec"`
	Regions      []string `json:"regions"`
	MinPlan      string   `json:"minPlan"`
	SourceHeight int      `json:"sourceHeight,omitempty"`
}

// DefaultSourceHeight is assumed when an upload does not say.
const DefaultSourceHeight = 1080

// Validate checks an upload.
func (u Upload) Validate() error {
	switch {
	case strings.TrimSpace(u.Title) == "" || len(u.Title) > 200:
		return kit.Invalid("title", "title must be 1-200 characters")
	case len(u.Genres) == 0 || len(u.Genres) > 10:
		return kit.Invalid("genres", "genres must list 1-10 genres")
	case u.DurationSec <= 0 || u.DurationSec > 24*3600:
		return kit.Invalid("durationSec", "durationSec must be between 1 and 86400")
	case len(u.Regions) == 0 || len(u.Regions) > 50:
		return kit.Invalid("regions", "regions must list 1-50 region codes")
	case u.SourceHeight != 0 && (u.SourceHeight < Ladder[0].Height || u.SourceHeight > 4320):
		return kit.Invalid("sourceHeight", "sourceHeight must be between %d and 4320", Ladder[0].Height)
	}
	for _, g := range u.Genres {
		if !kit.ValidID(g) {
			return kit.Invalid("genres", "genre %q must be 1-64 letters, digits, '-' or '_'", g)
		}
	}
	for _, r := range u.Regions {
		if !kit.ValidID(r) {
			return kit.Invalid("regions", "region %q must be 1-64 letters, digits, '-' or '_'", r)
		}
	}
	if _, ok := events.LookupPlan(u.MinPlan); !ok {
		return kit.Invalid("minPlan", "minPlan must be one of %s", strings.Join(events.PlanNames(), ", "))
	}
	return nil
}

// Access is an access decision: allowed, or why not.
type Access struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason"`
}

// CodeUnknownVideo answers an internal read of a video that does not exist.
const CodeUnknownVideo = "unknown_video"

// Library holds the content logic.
type Library struct {
	videos   *kit.Store[events.Video]
	pub      kit.Publisher
	accounts Accounts
	now      func() time.Time
	// encodeTime simulates the transcoder's work per job.
	encodeTime time.Duration
}

// NewLibrary refuses nil dependencies.
func NewLibrary(videos *kit.Store[events.Video], pub kit.Publisher, accounts Accounts, encodeTime time.Duration) (*Library, error) {
	if videos == nil || pub == nil || accounts == nil {
		return nil, errors.New("content: NewLibrary needs a store, a publisher and an account client")
	}
	return &Library{videos: videos, pub: pub, accounts: accounts, now: time.Now, encodeTime: encodeTime}, nil
}

// Create stores a video as encoding and asks the pipeline to encode it.
func (l *Library) Create(ctx context.Context, u Upload) (events.Video, error) {
	if err := u.Validate(); err != nil {
		return events.Video{}, err
	}
	return l.create(ctx, kit.NewID(), u)
}

func (l *Library) create(ctx context.Context, id string, u Upload) (events.Video, error) {
	if u.SourceHeight == 0 {
		u.SourceHeight = DefaultSourceHeight
	}
	v := events.Video{
		ID: id, Title: strings.TrimSpace(u.Title), Genres: slices.Compact(slices.Sorted(slices.Values(u.Genres))),
		DurationSec: u.DurationSec, Regions: slices.Compact(slices.Sorted(slices.Values(u.Regions))), MinPlan: u.MinPlan,
		SourceHeight: u.SourceHeight, Status: Encoding, Renditions: []events.Rendition{}, CreatedAt: l.now().UTC(),
	}
	if _, err := l.videos.Create(ctx, id, v); err != nil {
		return events.Video{}, err
	}
	if err := l.pub.Publish(ctx, kit.EventID(catalog.ContentCreated, id), "videos/"+id, events.ContentCreated{Video: v}); err != nil {
		kit.Logger(ctx).Warn("content.created not published", "video", id, "err", err)
	}
	job := events.ContentEncodeRequested{VideoID: id, SourceHeight: u.SourceHeight}
	if err := l.pub.Publish(ctx, kit.EventID(catalog.ContentEncodeRequested, id), "videos/"+id, job); err != nil {
		// The video is stored and truly "encoding": ResumeEncoding asks
		// again once it has waited too long, so the answer stays honest.
		kit.Logger(ctx).Warn("content.encode.requested not published; the resume sweep will ask again", "video", id, "err", err)
	}
	return v, nil
}

// ResumeEncoding asks again to encode every video that has been encoding
// for longer than after: its request may never have been published (the
// replica died between storing the video and publishing) or may have been
// dropped. Any replica may run it; the worker is idempotent, and requests of
// one sweep period share an event id, so replicas sweeping together send
// one. It returns how many videos it asked for.
func (l *Library) ResumeEncoding(ctx context.Context, after time.Duration) (int, error) {
	vs, err := l.videos.List(ctx)
	if err != nil {
		return 0, err
	}
	now := l.now().UTC()
	period := strconv.FormatInt(now.Truncate(after).Unix(), 10)
	asked := 0
	for _, v := range vs {
		if v.Status != Encoding || now.Sub(v.CreatedAt) < after {
			continue
		}
		job := events.ContentEncodeRequested{VideoID: v.ID, SourceHeight: v.SourceHeight}
		id := kit.EventID(catalog.ContentEncodeRequested, v.ID+"@"+period)
		if err := l.pub.Publish(ctx, id, "videos/"+v.ID, job); err != nil {
			return asked, fmt.Errorf("re-requesting encoding of %s: %w", v.ID, err)
		}
		asked++
	}
	return asked, nil
}

// Get returns one video.
func (l *Library) Get(ctx context.Context, id string) (events.Video, error) {
	if !kit.ValidID(id) {
		return events.Video{}, kit.NotFound("video %q not found", id)
	}
	v, _, err := l.videos.Get(ctx, id)
	if errors.Is(err, kit.ErrNotFound) {
		return events.Video{}, kit.NotFound("video %q not found", id)
	}
	return v, err
}

// List returns every video, or those of one genre, newest first.
func (l *Library) List(ctx context.Context, genre string) ([]events.Video, error) {
	vs, err := l.videos.List(ctx)
	if err != nil {
		return nil, err
	}
	out := []events.Video{}
	for _, v := range vs {
		if genre == "" || slices.Contains(v.Genres, genre) {
			out = append(out, v)
		}
	}
	slices.SortStableFunc(out, func(a, b events.Video) int { return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(a.ID, b.ID)) })
	return out, nil
}

// OnEncodeRequested is the encoding worker: it produces the renditions,
// marks the video ready and publishes content.encoded, once per video.
func (l *Library) OnEncodeRequested(ctx context.Context, ev kit.Event) error {
	var job events.ContentEncodeRequested
	if err := json.Unmarshal(ev.Data, &job); err != nil || !kit.ValidID(job.VideoID) {
		return fmt.Errorf("%w: bad encode job %s: %v", kit.ErrPermanent, ev.ID, err)
	}
	current, err := l.Get(ctx, job.VideoID)
	if err != nil {
		if kit.AsError(err).Status == http.StatusNotFound {
			return fmt.Errorf("%w: %v", kit.ErrPermanent, err)
		}
		return err
	}
	already := current.Status == Ready
	if !already && l.encodeTime > 0 {
		select {
		case <-time.After(l.encodeTime):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	v, err := l.videos.Update(ctx, job.VideoID, func(v *events.Video) error {
		if v.Status == Ready {
			return kit.ErrNoChange
		}
		v.Renditions = RenditionsFor(v.SourceHeight)
		v.Status = Ready
		return nil
	})
	if err != nil {
		return err
	}
	// Publish even when already ready: the worker that marked it may have
	// died before publishing. The deterministic id makes this a no-op
	// otherwise.
	if err := l.pub.Publish(ctx, kit.EventID(catalog.ContentEncoded, v.ID), "videos/"+v.ID, events.ContentEncoded{Video: v}); err != nil {
		return err
	}
	if already {
		return kit.ErrDuplicate
	}
	return nil
}

// Video reads one video for another service: Get, with a missing video
// named as the internal API names it.
func (l *Library) Video(ctx context.Context, id string) (events.Video, error) {
	if !kit.ValidID(id) {
		return events.Video{}, kit.Invalid("video_id", "video_id must be 1-64 letters, digits, '-' or '_'")
	}
	v, err := l.Get(ctx, id)
	if e := kit.AsError(err); err != nil && e.Status == http.StatusNotFound {
		return events.Video{}, &kit.Error{Status: http.StatusNotFound, Code: CodeUnknownVideo, Field: "video_id",
			Message: fmt.Sprintf("video %q not found", id)}
	}
	return v, err
}

// CheckAccess decides whether accountID may watch video id from region,
// and returns the video with the decision. Playback authenticated the
// viewer (accountID is its token's subject); a refusal, an unknown
// account's included, is a decision, not an error.
func (l *Library) CheckAccess(ctx context.Context, id, accountID, region string) (Access, events.Video, error) {
	switch {
	case !kit.ValidID(accountID):
		return Access{}, events.Video{}, kit.Invalid("account_id", "account_id must be an account id")
	case !kit.ValidID(region):
		return Access{}, events.Video{}, kit.Invalid("region", "region must be a region code: 1-64 letters, digits, '-' or '_'")
	}
	v, err := l.Video(ctx, id)
	if err != nil {
		return Access{}, events.Video{}, err
	}
	if v.Status != Ready {
		return Access{Reason: "video is still encoding"}, v, nil
	}
	if !slices.Contains(v.Regions, region) {
		return Access{Reason: fmt.Sprintf("video is not available in region %s", region)}, v, nil
	}
	plan, err := l.accounts.Plan(ctx, accountID)
	if errors.Is(err, ErrUnknownAccount) {
		return Access{Reason: "account is unknown"}, v, nil
	}
	if err != nil {
		return Access{}, events.Video{}, err
	}
	have, ok := events.LookupPlan(plan)
	need, _ := events.LookupPlan(v.MinPlan)
	if !ok || have.Rank < need.Rank {
		return Access{Reason: fmt.Sprintf("plan %s does not include this video: it needs %s or better", plan, v.MinPlan)}, v, nil
	}
	return Access{Allowed: true, Reason: "ok"}, v, nil
}
