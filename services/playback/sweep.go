package playback

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// Sweep expires the sessions whose heartbeats stopped, in every account,
// and recounts edge load. Any replica may run it at any time: each removal
// is a compare-and-set, and the stopped event is published before the
// removal under the session's deterministic id, so two sweepers (or a
// sweeper and a start) publish it at most once as far as consumers see.
func (p *Player) Sweep(ctx context.Context) error {
	keys, err := p.slots.Keys(ctx, "acct.*")
	if err != nil {
		return err
	}
	now := p.now().UTC()
	active := map[string]int{}
	for _, key := range keys {
		cur, rev, err := p.slots.Get(ctx, key)
		if errors.Is(err, kit.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		var expired []Session
		for _, s := range cur.Sessions {
			if s.expired(now) {
				expired = append(expired, s)
			} else {
				active[s.CDN]++
			}
		}
		if len(cur.Sessions) == 0 {
			// Keep the bucket to accounts that are watching; a start
			// racing with this delete retries on the revision.
			_ = p.slots.Bucket().Delete(ctx, key, jetstream.LastRevision(rev))
			continue
		}
		if len(expired) == 0 {
			continue
		}
		for _, s := range expired {
			if err := p.publishStopped(ctx, s, "expired"); err != nil {
				return err
			}
		}
		var removed []Session
		if _, err := p.slots.Update(ctx, key, func(s *slots) error {
			removed = pruneExpired(s, now)
			if len(removed) == 0 {
				return kit.ErrNoChange
			}
			return nil
		}); err != nil && !errors.Is(err, kit.ErrNotFound) {
			return err
		}
		for _, s := range removed {
			if err := p.remember(ctx, s, now); err != nil {
				return err
			}
		}
	}
	for _, e := range p.cdn {
		want := active[e.Name]
		if _, err := p.edges.Upsert(ctx, edgeKey(e.Name), func(l *edgeLoad, _ bool) error {
			if l.Active == want {
				return kit.ErrNoChange
			}
			l.Active = want
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}
