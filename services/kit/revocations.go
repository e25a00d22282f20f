package kit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// Revocations is the set of signed-out tokens, shared by every replica of
// every service through the catalog.TokenRevocations bucket: the issuing
// services write a token's jti there on sign-out, and every service that
// verifies tokens watches the bucket into memory, so checking a token costs
// a map lookup. An entry lives as long as the bucket's TTL, longer than any
// token, and is dropped from memory once the token it names has expired.
//
// Another replica learns of a sign-out as fast as the broker delivers it
// (milliseconds); the replica that revoked refuses the token at once.
type Revocations struct {
	kv  jetstream.KeyValue
	log *slog.Logger

	mu      sync.RWMutex
	revoked map[string]time.Time // jti → when the token expires
	alive   bool                 // the watch is running
}

// revocation is the value of an entry.
type revocation struct {
	Subject   string    `json:"sub"`
	ExpiresAt time.Time `json:"exp"`
}

// WatchRevocations loads the bucket, then follows it until ctx ends. It
// returns once every entry present at the start is loaded, so a service
// never serves before it knows what was revoked.
func WatchRevocations(ctx context.Context, kv jetstream.KeyValue, log *slog.Logger) (*Revocations, error) {
	if kv == nil {
		return nil, errors.New("kit: WatchRevocations needs the revocation bucket")
	}
	if kv.Bucket() != catalog.TokenRevocations {
		return nil, fmt.Errorf("kit: revocations live in %s, not %s", catalog.TokenRevocations, kv.Bucket())
	}
	if log == nil {
		log = slog.Default()
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", catalog.TokenRevocations, err)
	}
	r := &Revocations{kv: kv, log: log, revoked: map[string]time.Time{}, alive: true}
	// The initial entries, up to the nil marker.
	for loaded := false; !loaded; {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("watch %s: closed while loading", catalog.TokenRevocations)
			}
			if e == nil {
				loaded = true
				continue
			}
			r.apply(e)
		case <-ctx.Done():
			_ = w.Stop()
			return nil, ctx.Err()
		}
	}
	go r.follow(ctx, w)
	return r, nil
}

func (r *Revocations) follow(ctx context.Context, w jetstream.KeyWatcher) {
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	defer func() {
		r.mu.Lock()
		r.alive = false
		r.mu.Unlock()
	}()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() == nil {
					r.log.Error("token revocation watch closed; sign-outs from other replicas are no longer seen")
				}
				return
			}
			if e != nil {
				r.apply(e)
			}
		case now := <-prune.C:
			r.prune(now)
		case <-ctx.Done():
			_ = w.Stop()
			return
		}
	}
}

func (r *Revocations) apply(e jetstream.KeyValueEntry) {
	var v revocation
	if err := json.Unmarshal(e.Value(), &v); err != nil || v.ExpiresAt.IsZero() {
		// Keep it anyway, for as long as any token can last: refusing a
		// token too long is safer than accepting a revoked one.
		r.log.Warn("malformed token revocation", "jti", e.Key(), "err", err)
		v.ExpiresAt = e.Created().Add(catalog.MaxTokenTTL)
	}
	r.add(e.Key(), v.ExpiresAt)
}

func (r *Revocations) add(jti string, exp time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.revoked[jti] = exp.Add(tokenLeeway)
}

func (r *Revocations) prune(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for jti, exp := range r.revoked {
		if now.After(exp) {
			delete(r.revoked, jti)
		}
	}
}

// Revoked reports whether the token with id jti was signed out.
func (r *Revocations) Revoked(jti string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.revoked[jti]
	return ok
}

// Ready reports whether the watch still runs.
func (r *Revocations) Ready() error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !r.alive {
		return errors.New("token revocation watch stopped")
	}
	return nil
}

// Revoke signs out the token c describes, in every replica, for the rest
// of its life. Revoking twice is harmless.
func (r *Revocations) Revoke(ctx context.Context, c *Claims) error {
	if c == nil || !ValidID(c.ID) || c.ExpiresAt == nil {
		return errors.New("kit: only a verified token with an id and an expiry can be revoked")
	}
	b, err := json.Marshal(revocation{Subject: c.Subject, ExpiresAt: c.ExpiresAt.Time})
	if err != nil {
		return err
	}
	if _, err := r.kv.Put(ctx, c.ID, b); err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	r.add(c.ID, c.ExpiresAt.Time)
	return nil
}

// Logout is the handler of POST /logout: wrapped in RequireAuth, it
// revokes the token the request presents and answers 204.
func (r *Revocations) Logout(w http.ResponseWriter, req *http.Request) {
	c, ok := ClaimsFrom(req.Context())
	if !ok {
		WriteError(w, req, Unauthenticated("missing bearer token"))
		return
	}
	if err := r.Revoke(req.Context(), c); err != nil {
		WriteError(w, req, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
