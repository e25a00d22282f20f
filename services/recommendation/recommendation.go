// Package recommendation suggests what to watch next: item-to-item
// co-watching plus genre affinity, with popularity as the fallback for new
// accounts, and an A/B split of the scoring.
//
// It learns from events only: content.encoded tells it the library (titles,
// genres), playback.* what each account watches and finishes. The first
// event of an account for a video adds the video to the account's record
// and, after that compare-and-set, bumps the co-watch counts between the
// video and everything the account watched before, and the video's plays.
// A crash between the two writes loses those counts rather than double them
// (the redelivered event finds the video already recorded): recommendations
// tolerate an undercount, not inflation.
//
// Variants: the account id is hashed (FNV-1a) into control or treatment.
// Both use the same signals with different weights; impressions (each
// answer) and clicks (POST /clicks) are counted per variant in KV, so the
// click-through rate is shared by every replica, and exposed to Prometheus.
package recommendation

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Variants.
const (
	Control   = "control"
	Treatment = "treatment"
)

// weights of the signals per variant.
type weights struct{ co, genre, pop float64 }

var variantWeights = map[string]weights{
	Control:   {co: 1.0, genre: 0.5, pop: 0.1},
	Treatment: {co: 0.6, genre: 1.0, pop: 0.2},
}

// VariantOf hashes an account into a variant.
func VariantOf(accountID string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(accountID))
	if h.Sum32()%2 == 0 {
		return Control
	}
	return Treatment
}

// Item is one recommendation.
type Item struct {
	ContentID string  `json:"contentId"`
	Score     float64 `json:"score"`
	Reason    string  `json:"reason"`
}

// Answer is the answer of GET /recommendations and GET /related/{id}.
type Answer struct {
	Variant string `json:"variant,omitempty"`
	Items   []Item `json:"items"`
}

// Click is the body of POST /clicks.
type Click struct {
	AccountID string `json:"accountId"`
	ContentID string `json:"contentId"`
}

// Validate checks a click.
func (c Click) Validate() error {
	if !kit.ValidID(c.AccountID) {
		return kit.Invalid("accountId", "accountId must be an account id")
	}
	if !kit.ValidID(c.ContentID) {
		return kit.Invalid("contentId", "contentId must be a video id")
	}
	return nil
}

// VariantStats is one line of GET /experiments.
type VariantStats struct {
	Variant          string  `json:"variant"`
	Impressions      int64   `json:"impressions"`
	Clicks           int64   `json:"clicks"`
	ClickThroughRate float64 `json:"clickThroughRate"`
}

type videoRec struct {
	ID     string   `json:"id"`
	Title  string   `json:"title"`
	Genres []string `json:"genres"`
	Plays  int64    `json:"plays"`
}

type watched struct {
	Finished bool      `json:"finished"`
	At       time.Time `json:"at"`
}

type viewerRec struct {
	Watched map[string]watched `json:"watched"`
	Genres  map[string]float64 `json:"genres"`
}

type coRec struct {
	With map[string]int64 `json:"with"`
}

type abRec struct {
	Impressions int64 `json:"impressions"`
	Clicks      int64 `json:"clicks"`
}

// Recommender holds the logic.
type Recommender struct {
	videos  *kit.Store[videoRec]
	viewers *kit.Store[viewerRec]
	co      *kit.Store[coRec]
	ab      *kit.Store[abRec]
	shown   *prometheus.CounterVec
	clicked *prometheus.CounterVec
}

// NewRecommender builds the logic on one bucket and registers its metrics.
func NewRecommender(videos *kit.Store[videoRec], viewers *kit.Store[viewerRec], co *kit.Store[coRec], ab *kit.Store[abRec], reg prometheus.Registerer) (*Recommender, error) {
	if videos == nil || viewers == nil || co == nil || ab == nil || reg == nil {
		return nil, errors.New("recommendation: NewRecommender needs its stores and a registry")
	}
	r := &Recommender{
		videos: videos, viewers: viewers, co: co, ab: ab,
		shown:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_recommendation_impressions_total", Help: "Recommendation answers served, by A/B variant."}, []string{"variant"}),
		clicked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_recommendation_clicks_total", Help: "Recommendations clicked, by A/B variant."}, []string{"variant"}),
	}
	reg.MustRegister(r.shown, r.clicked)
	return r, nil
}

func videoKey(id string) string  { return "video." + id }
func viewerKey(id string) string { return "viewer." + id }
func coKey(id string) string     { return "co." + id }
func abKey(v string) string      { return "ab." + v }

// OnEncoded learns a video's title and genres.
func (r *Recommender) OnEncoded(ctx context.Context, ev kit.Event) error {
	var v events.ContentEncoded
	if err := json.Unmarshal(ev.Data, &v); err != nil || !kit.ValidID(v.ID) {
		return fmt.Errorf("%w: bad content.encoded %s: %v", kit.ErrPermanent, ev.ID, err)
	}
	_, err := r.videos.Upsert(ctx, videoKey(v.ID), func(rec *videoRec, _ bool) error {
		if rec.Title == v.Title && slices.Equal(rec.Genres, v.Genres) {
			return kit.ErrNoChange
		}
		rec.ID, rec.Title, rec.Genres = v.ID, v.Title, v.Genres
		return nil
	})
	return err
}

// OnPlayback learns what an account watches.
func (r *Recommender) OnPlayback(ctx context.Context, ev kit.Event) error {
	var p events.Playback
	if err := json.Unmarshal(ev.Data, &p); err != nil || !kit.ValidID(p.AccountID) || !kit.ValidID(p.ContentID) {
		return fmt.Errorf("%w: bad playback event %s: %v", kit.ErrPermanent, ev.ID, err)
	}
	genres := p.Genres
	if len(genres) == 0 {
		if v, _, err := r.videos.Get(ctx, videoKey(p.ContentID)); err == nil {
			genres = v.Genres
		}
	}
	var (
		newly bool
		prior []string
	)
	_, err := r.viewers.Upsert(ctx, viewerKey(p.AccountID), func(v *viewerRec, _ bool) error {
		if v.Watched == nil {
			v.Watched, v.Genres = map[string]watched{}, map[string]float64{}
		}
		w, seen := v.Watched[p.ContentID]
		newly, prior = !seen, nil
		if seen && (w.Finished || !p.Finished) {
			return kit.ErrNoChange
		}
		if !seen {
			for id := range v.Watched {
				prior = append(prior, id)
			}
			for _, g := range genres {
				v.Genres[g]++
			}
			w.At = ev.Time
		}
		w.Finished = w.Finished || p.Finished
		v.Watched[p.ContentID] = w
		return nil
	})
	if err != nil || !newly {
		return err
	}
	for _, other := range prior {
		if err := r.bumpCo(ctx, p.ContentID, other); err != nil {
			return err
		}
		if err := r.bumpCo(ctx, other, p.ContentID); err != nil {
			return err
		}
	}
	_, err = r.videos.Upsert(ctx, videoKey(p.ContentID), func(v *videoRec, _ bool) error {
		v.ID = p.ContentID
		v.Plays++
		return nil
	})
	return err
}

func (r *Recommender) bumpCo(ctx context.Context, a, b string) error {
	_, err := r.co.Upsert(ctx, coKey(a), func(c *coRec, _ bool) error {
		if c.With == nil {
			c.With = map[string]int64{}
		}
		c.With[b]++
		return nil
	})
	return err
}

func (r *Recommender) library(ctx context.Context) (map[string]videoRec, error) {
	vs, err := r.videos.List(ctx, "video.*")
	if err != nil {
		return nil, err
	}
	out := make(map[string]videoRec, len(vs))
	for _, v := range vs {
		out[v.ID] = v
	}
	return out, nil
}

// ParseLimit reads the limit query parameter: 1-50, default 10.
func ParseLimit(s string) (int, error) {
	if s == "" {
		return 10, nil
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n < 1 || n > 50 || fmt.Sprint(n) != s {
		return 0, kit.Invalid("limit", "limit must be between 1 and 50")
	}
	return n, nil
}

// For recommends videos to an account.
func (r *Recommender) For(ctx context.Context, accountID string, limit int) (Answer, error) {
	variant := VariantOf(accountID)
	w := variantWeights[variant]
	lib, err := r.library(ctx)
	if err != nil {
		return Answer{}, err
	}
	viewer, _, err := r.viewers.Get(ctx, viewerKey(accountID))
	if err != nil && !errors.Is(err, kit.ErrNotFound) {
		return Answer{}, err
	}
	type parts struct{ co, genre, pop float64 }
	scores := map[string]*parts{}
	get := func(id string) *parts {
		if scores[id] == nil {
			scores[id] = &parts{}
		}
		return scores[id]
	}
	var maxPlays int64 = 1
	for _, v := range lib {
		maxPlays = max(maxPlays, v.Plays)
	}
	for id, v := range lib {
		if v.Title != "" { // known to be encoded
			get(id).pop = float64(v.Plays) / float64(maxPlays)
		}
	}
	// Co-watching: normalised by the strongest pair.
	coWith := map[string]string{} // candidate → the watched video that led to it
	var maxCo float64
	for watchedID := range viewer.Watched {
		c, _, err := r.co.Get(ctx, coKey(watchedID))
		if errors.Is(err, kit.ErrNotFound) {
			continue
		}
		if err != nil {
			return Answer{}, err
		}
		for other, n := range c.With {
			p := get(other)
			p.co += float64(n)
			maxCo = max(maxCo, p.co)
			if prev, ok := coWith[other]; !ok || watchedID < prev {
				coWith[other] = watchedID
			}
		}
	}
	// Genre affinity: the share of the account's viewing in the video's genres.
	var total float64
	for _, n := range viewer.Genres {
		total += n
	}
	for id, v := range lib {
		if total == 0 {
			break
		}
		var aff float64
		for _, g := range v.Genres {
			aff += viewer.Genres[g]
		}
		if aff > 0 {
			get(id).genre = aff / total
		}
	}
	items := []Item{}
	for id, p := range scores {
		if _, seen := viewer.Watched[id]; seen {
			continue // finished videos never come back; unfinished ones are in /history
		}
		co := 0.0
		if maxCo > 0 {
			co = p.co / maxCo
		}
		s := w.co*co + w.genre*p.genre + w.pop*p.pop
		if s <= 0 {
			continue
		}
		reason := "popular"
		switch {
		case co > 0: // the most telling reason when it applies
			reason = "watched together with " + title(lib, coWith[id])
		case w.genre*p.genre >= w.pop*p.pop:
			reason = "because you watch " + topGenre(lib[id].Genres, viewer.Genres)
		}
		items = append(items, Item{ContentID: id, Score: math.Round(s*1000) / 1000, Reason: reason})
	}
	slices.SortFunc(items, func(a, b Item) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(a.ContentID, b.ContentID))
	})
	if len(items) > limit {
		items = items[:limit]
	}
	if _, err := r.ab.Upsert(ctx, abKey(variant), func(a *abRec, _ bool) error { a.Impressions++; return nil }); err != nil {
		return Answer{}, err
	}
	r.shown.WithLabelValues(variant).Inc()
	return Answer{Variant: variant, Items: items}, nil
}

func title(lib map[string]videoRec, id string) string {
	if v, ok := lib[id]; ok && v.Title != "" {
		return v.Title
	}
	return id
}

func topGenre(genres []string, affinity map[string]float64) string {
	best := ""
	for _, g := range genres {
		if best == "" || affinity[g] > affinity[best] {
			best = g
		}
	}
	return best
}

// Related lists what is watched with a video, then videos sharing its genres.
func (r *Recommender) Related(ctx context.Context, id string, limit int) (Answer, error) {
	if !kit.ValidID(id) {
		return Answer{}, kit.NotFound("video %q not found", id)
	}
	lib, err := r.library(ctx)
	if err != nil {
		return Answer{}, err
	}
	self, ok := lib[id]
	c, _, err := r.co.Get(ctx, coKey(id))
	if err != nil && !errors.Is(err, kit.ErrNotFound) {
		return Answer{}, err
	}
	if !ok && len(c.With) == 0 {
		return Answer{}, kit.NotFound("video %q not found", id)
	}
	var maxCo int64 = 1
	for _, n := range c.With {
		maxCo = max(maxCo, n)
	}
	items := []Item{}
	for other, n := range c.With {
		items = append(items, Item{ContentID: other, Score: 1 + float64(n)/float64(maxCo), Reason: "watched together with " + title(lib, id)})
	}
	for oid, v := range lib {
		if oid == id || c.With[oid] > 0 {
			continue
		}
		shared := 0
		for _, g := range v.Genres {
			if slices.Contains(self.Genres, g) {
				shared++
			}
		}
		if shared > 0 {
			items = append(items, Item{ContentID: oid, Score: float64(shared) / float64(max(len(self.Genres), 1)), Reason: "same genre as " + title(lib, id)})
		}
	}
	slices.SortFunc(items, func(a, b Item) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(a.ContentID, b.ContentID))
	})
	for i := range items {
		items[i].Score = math.Round(items[i].Score*1000) / 1000
	}
	if len(items) > limit {
		items = items[:limit]
	}
	return Answer{Items: items}, nil
}

// RecordClick counts a click on a recommendation for the account's variant.
func (r *Recommender) RecordClick(ctx context.Context, c Click) (VariantStats, error) {
	if err := c.Validate(); err != nil {
		return VariantStats{}, err
	}
	v := VariantOf(c.AccountID)
	a, err := r.ab.Upsert(ctx, abKey(v), func(a *abRec, _ bool) error { a.Clicks++; return nil })
	if err != nil {
		return VariantStats{}, err
	}
	r.clicked.WithLabelValues(v).Inc()
	return stats(v, a), nil
}

func stats(v string, a abRec) VariantStats {
	s := VariantStats{Variant: v, Impressions: a.Impressions, Clicks: a.Clicks}
	if a.Impressions > 0 {
		s.ClickThroughRate = math.Round(float64(a.Clicks)/float64(a.Impressions)*10000) / 10000
	}
	return s
}

// Experiments reports both variants.
func (r *Recommender) Experiments(ctx context.Context) ([]VariantStats, error) {
	var out []VariantStats
	for _, v := range []string{Control, Treatment} {
		a, _, err := r.ab.Get(ctx, abKey(v))
		if err != nil && !errors.Is(err, kit.ErrNotFound) {
			return nil, err
		}
		out = append(out, stats(v, a))
	}
	return out, nil
}
