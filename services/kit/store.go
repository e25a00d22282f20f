package kit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Store errors. Handlers map them to HTTP answers.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrContention means Update lost the compare-and-set race too many
	// times in a row.
	ErrContention = errors.New("too much contention")
)

// Store keeps JSON values of type T in a JetStream KV bucket. Every
// read-modify-write goes through Update, which retries on a revision
// conflict, so concurrent replicas never lose a write.
type Store[T any] struct {
	kv jetstream.KeyValue
	// MaxAttempts bounds Update's retries under contention.
	MaxAttempts int
}

// NewStore wraps a bucket.
func NewStore[T any](kv jetstream.KeyValue) (*Store[T], error) {
	if kv == nil {
		return nil, errors.New("kit: NewStore needs a bucket")
	}
	return &Store[T]{kv: kv, MaxAttempts: 50}, nil
}

// Bucket is the underlying KV bucket.
func (s *Store[T]) Bucket() jetstream.KeyValue { return s.kv }

// Get returns the value at key and its revision, or ErrNotFound.
func (s *Store[T]) Get(ctx context.Context, key string) (T, uint64, error) {
	var v T
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return v, 0, ErrNotFound
	}
	if err != nil {
		return v, 0, fmt.Errorf("get %s/%s: %w", s.kv.Bucket(), key, err)
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return v, 0, fmt.Errorf("decode %s/%s: %w", s.kv.Bucket(), key, err)
	}
	return v, e.Revision(), nil
}

// Create stores v at key if the key is absent, else returns ErrExists.
func (s *Store[T]) Create(ctx context.Context, key string, v T) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	rev, err := s.kv.Create(ctx, key, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, ErrExists
	}
	if err != nil {
		return 0, fmt.Errorf("create %s/%s: %w", s.kv.Bucket(), key, err)
	}
	return rev, nil
}

// Put overwrites key unconditionally. Use it only for values no one else
// writes concurrently (seeding, tombstones with one writer).
func (s *Store[T]) Put(ctx context.Context, key string, v T) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = s.kv.Put(ctx, key, b)
	return err
}

// Update applies fn to the current value at key and writes the result if the
// key has not changed meanwhile, retrying with a fresh read on conflict. fn
// may run several times and must not have side effects beyond *T. If fn
// returns an error, nothing is written and Update returns that error. A
// missing key is ErrNotFound.
func (s *Store[T]) Update(ctx context.Context, key string, fn func(*T) error) (T, error) {
	v, _, err := s.update(ctx, key, false, 0, nil, func(v *T, _ bool) error { return fn(v) })
	return v, err
}

// UpdateAt is Update for a caller that holds the value cur it read (or
// wrote) at revision rev: the first attempt applies fn to cur and writes
// at rev without reading the key again, and only a conflict falls back to
// Update's read-modify-write. With rev 0 it reads first, as Update does.
// It returns the value stored and its revision.
func (s *Store[T]) UpdateAt(ctx context.Context, key string, cur T, rev uint64, fn func(*T) error) (T, uint64, error) {
	var known *T
	if rev != 0 {
		known = &cur
	}
	return s.update(ctx, key, false, rev, known, func(v *T, _ bool) error { return fn(v) })
}

// Upsert is Update that also runs fn on a zero T when the key is missing
// (exists reports which) and creates it.
func (s *Store[T]) Upsert(ctx context.Context, key string, fn func(v *T, exists bool) error) (T, error) {
	v, _, err := s.update(ctx, key, true, 0, nil, fn)
	return v, err
}

// ErrNoChange returned by an Update function skips the write; Update then
// returns the current value and a nil error.
var ErrNoChange = errors.New("no change")

func (s *Store[T]) update(ctx context.Context, key string, create bool, knownRev uint64, known *T, fn func(*T, bool) error) (T, uint64, error) {
	var zero T
	for attempt := 0; attempt < s.MaxAttempts; attempt++ {
		if attempt > 0 && !(attempt == 1 && known != nil) {
			// Jittered backoff spreads out replicas that collided (a
			// stale known revision is no collision: read at once).
			d := time.Duration(rand.IntN(1+min(attempt, 10)*500)) * time.Microsecond
			select {
			case <-ctx.Done():
				return zero, 0, ctx.Err()
			case <-time.After(d):
			}
		}
		var (
			v   T
			rev uint64
			err error
		)
		if attempt == 0 && known != nil {
			v, rev = *known, knownRev
		} else {
			v, rev, err = s.Get(ctx, key)
		}
		exists := err == nil
		if errors.Is(err, ErrNotFound) && create {
			err = nil
		}
		if err != nil {
			return zero, 0, err
		}
		if err := fn(&v, exists); err != nil {
			if errors.Is(err, ErrNoChange) {
				return v, rev, nil
			}
			return zero, 0, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return zero, 0, err
		}
		var next uint64
		if exists {
			next, err = s.kv.Update(ctx, key, b, rev)
		} else {
			next, err = s.kv.Create(ctx, key, b)
		}
		if err == nil {
			return v, next, nil
		}
		if !isConflict(err) {
			return zero, 0, fmt.Errorf("update %s/%s: %w", s.kv.Bucket(), key, err)
		}
	}
	return zero, 0, fmt.Errorf("update %s/%s: %w", s.kv.Bucket(), key, ErrContention)
}

func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

// Keys lists keys matching the filters (all keys when none), e.g.
// "user42.*".
func (s *Store[T]) Keys(ctx context.Context, filters ...string) ([]string, error) {
	if len(filters) == 0 {
		filters = []string{">"}
	}
	kl, err := s.kv.ListKeysFiltered(ctx, filters...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = kl.Stop() }()
	var keys []string
	for k := range kl.Keys() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

// List returns the values of the keys matching the filters, in key order,
// skipping keys deleted while listing.
func (s *Store[T]) List(ctx context.Context, filters ...string) ([]T, error) {
	keys, err := s.Keys(ctx, filters...)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(keys))
	for _, k := range keys {
		v, _, err := s.Get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
