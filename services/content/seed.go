package content

import (
	"context"
	"errors"

	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Demo is the library seeded on a first run of `switchboard dev`. Fixed ids
// make seeding idempotent and let the walk-through name a video.
var Demo = []struct {
	ID string
	Upload
}{
	{"big-buck-bunny", Upload{Title: "Big Buck Bunny", Genres: []string{"animation", "comedy"}, DurationSec: 596, Regions: []string{"eu", "us", "apac"}, MinPlan: events.PlanBasic, SourceHeight: 2160}},
	{"sintel", Upload{Title: "Sintel", Genres: []string{"animation", "fantasy"}, DurationSec: 888, Regions: []string{"eu", "us", "apac"}, MinPlan: events.PlanBasic, SourceHeight: 1080}},
	{"tears-of-steel", Upload{Title: "Tears of Steel", Genres: []string{"scifi", "action"}, DurationSec: 734, Regions: []string{"eu", "us"}, MinPlan: events.PlanStandard, SourceHeight: 2160}},
	{"cosmos-laundromat", Upload{Title: "Cosmos Laundromat", Genres: []string{"animation", "drama"}, DurationSec: 730, Regions: []string{"eu"}, MinPlan: events.PlanBasic, SourceHeight: 1440}},
	{"spring", Upload{Title: "Spring", Genres: []string{"animation", "fantasy"}, DurationSec: 464, Regions: []string{"eu", "us", "apac"}, MinPlan: events.PlanPremium, SourceHeight: 2160}},
}

// Seed uploads the demo videos that do not exist yet; the pipeline encodes
// them like any other upload.
func (l *Library) Seed(ctx context.Context) error {
	for _, d := range Demo {
		if _, err := l.create(ctx, d.ID, d.Upload); err != nil && !errors.Is(err, kit.ErrExists) {
			return err
		}
	}
	return nil
}
