package playback

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// HistoryItem is one title in an account's watch history.
type HistoryItem struct {
	ContentID   string    `json:"contentId"`
	ProfileID   string    `json:"profileId,omitempty"`
	PositionSec float64   `json:"positionSec"`
	DurationSec int       `json:"durationSec"`
	Finished    bool      `json:"finished"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

type history struct {
	Items map[string]HistoryItem `json:"items"`
}

// remember writes the session's position into the watch history.
func (p *Player) remember(ctx context.Context, s Session, now time.Time) error {
	_, err := p.history.Upsert(ctx, s.AccountID, func(h *history, _ bool) error {
		if h.Items == nil {
			h.Items = map[string]HistoryItem{}
		}
		if old, ok := h.Items[s.ContentID]; ok && old.UpdatedAt.After(now) {
			return kit.ErrNoChange // a newer position is already there
		}
		h.Items[s.ContentID] = HistoryItem{
			ContentID: s.ContentID, ProfileID: s.ProfileID, PositionSec: s.PositionSec, DurationSec: s.DurationSec,
			Finished: s.finished(), UpdatedAt: now,
		}
		return nil
	})
	return err
}

// History returns the caller's watch history, most recent first.
func (p *Player) History(ctx context.Context, caller string) ([]HistoryItem, error) {
	h, _, err := p.history.Get(ctx, caller)
	if errors.Is(err, kit.ErrNotFound) {
		return []HistoryItem{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]HistoryItem, 0, len(h.Items))
	for _, it := range h.Items {
		out = append(out, it)
	}
	slices.SortFunc(out, func(a, b HistoryItem) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	return out, nil
}
