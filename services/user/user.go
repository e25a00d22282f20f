// Package user holds accounts, login and loyalty points. Points are credited
// from order.confirmed events exactly once: the ids of applied events live in
// the same KV record as the balance, so one compare-and-set applies both.
package user

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

type record struct {
	events.User
	PasswordHash []byte    `json:"passwordHash"`
	CreatedAt    time.Time `json:"createdAt"`
}

// Points is the API shape of a balance.
type Points struct {
	UserID string `json:"userId"`
	Points int64  `json:"points"`
}

type pointsRecord struct {
	Points
	// Applied holds the ids of the last events credited, newest last. It is
	// bounded: redelivery happens within minutes (AckWait × MaxDeliver), far
	// fewer than appliedMax orders of one user.
	Applied []string `json:"applied"`
}

const appliedMax = 512

// MinorPerPoint: one point per 100 currency units, and prices are in minor
// units (cents), so one point per 10,000 minor units.
const MinorPerPoint = 100 * 100

// TokenTTL is how long a login token lasts.
const TokenTTL = 24 * time.Hour

// Error codes.
const (
	CodeEmailTaken         = kit.CodeEmailTaken
	CodeInvalidCredentials = kit.CodeInvalidCredentials
)

// Register is the body of POST /users.
type Register struct {
	Email    string `json:"email"`
	Name     string `json:"name"`
	Password string `json:"password"`
}

// Validate checks a registration.
func (r Register) Validate() error {
	a, err := mail.ParseAddress(r.Email)
	switch {
	case err != nil || a.Address != r.Email || len(r.Email) > 254:
		return kit.Invalid("email", "email must be a plain address like ada@example.com")
	case strings.TrimSpace(r.Name) == "" || len(r.Name) > 200:
		return kit.Invalid("name", "name must be 1-200 characters")
	case len(r.Password) < 8:
		return kit.Invalid("password", "password must be at least 8 characters")
	case len(r.Password) > 72:
		return kit.Invalid("password", "password must be at most 72 bytes")
	}
	return nil
}

// Login is the body of POST /login.
type Login struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// Token is the answer to a login.
type Token struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// Users holds the user logic.
type Users struct {
	users     *kit.Store[record]
	passwords *kit.Passwords
	points    *kit.Store[pointsRecord]
	pub       kit.Publisher
	key       []byte
	now       func() time.Time
}

// NewUsers refuses nil dependencies.
func NewUsers(users *kit.Store[record], emails *kit.Store[kit.EmailClaim], points *kit.Store[pointsRecord], pub kit.Publisher, key []byte, cost int) (*Users, error) {
	if users == nil || emails == nil || points == nil || pub == nil || len(key) == 0 {
		return nil, errors.New("user: NewUsers needs stores, a publisher and a signing key")
	}
	passwords, err := kit.NewPasswords(emails, cost)
	if err != nil {
		return nil, err
	}
	return &Users{users: users, passwords: passwords, points: points, pub: pub, key: key, now: time.Now}, nil
}

// exists reports whether a user record exists, for a stale email claim.
func (us *Users) exists(ctx context.Context, id string) (bool, error) {
	_, _, err := us.users.Get(ctx, id)
	if errors.Is(err, kit.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Register creates an account; a taken email is a 409.
func (us *Users) Register(ctx context.Context, r Register) (events.User, error) {
	if err := r.Validate(); err != nil {
		return events.User{}, err
	}
	hash, err := us.passwords.Hash(r.Password)
	if err != nil {
		return events.User{}, err
	}
	u := record{User: events.User{ID: kit.NewID(), Email: strings.ToLower(r.Email), Name: strings.TrimSpace(r.Name)}, PasswordHash: hash, CreatedAt: us.now().UTC()}
	if err := us.passwords.Claim(ctx, u.Email, u.ID, us.exists); err != nil {
		return events.User{}, err
	}
	if _, err := us.users.Create(ctx, u.ID, u); err != nil {
		return events.User{}, err
	}
	if err := us.pub.Publish(ctx, kit.EventID(catalog.UserRegistered, u.ID), "users/"+u.ID, events.UserRegistered{User: u.User}); err != nil {
		kit.Logger(ctx).Warn("user.registered not published", "user", u.ID, "err", err)
	}
	return u.User, nil
}

// Login checks credentials and issues a token.
func (us *Users) Login(ctx context.Context, l Login) (Token, error) {
	var u record
	if _, err := us.passwords.Verify(ctx, l.Email, l.Password, func(ctx context.Context, id string) ([]byte, error) {
		var err error
		u, _, err = us.users.Get(ctx, id)
		return u.PasswordHash, err
	}); err != nil {
		return Token{}, err
	}
	tok, exp, err := kit.IssueToken(us.key, u.ID, u.Email, TokenTTL, us.now())
	if err != nil {
		return Token{}, err
	}
	return Token{Token: tok, ExpiresAt: exp}, nil
}

// Get returns a user, for that user only.
func (us *Users) Get(ctx context.Context, caller, id string) (events.User, error) {
	if caller != id {
		return events.User{}, kit.Forbidden("a user can only read their own account")
	}
	u, _, err := us.users.Get(ctx, id)
	if errors.Is(err, kit.ErrNotFound) {
		return events.User{}, kit.NotFound("user %q not found", id)
	}
	return u.User, err
}

// Points returns a user's balance, for that user only.
func (us *Users) Points(ctx context.Context, caller, id string) (Points, error) {
	if _, err := us.Get(ctx, caller, id); err != nil {
		return Points{}, err
	}
	p, _, err := us.points.Get(ctx, id)
	if errors.Is(err, kit.ErrNotFound) {
		return Points{UserID: id}, nil
	}
	return p.Points, err
}

// OnOrderConfirmed credits points once per event id.
func (us *Users) OnOrderConfirmed(ctx context.Context, ev kit.Event) error {
	var o events.OrderConfirmed
	if err := json.Unmarshal(ev.Data, &o); err != nil || !kit.ValidID(o.UserID) {
		return fmt.Errorf("%w: bad order.confirmed %s: %v", kit.ErrPermanent, ev.ID, err)
	}
	dup := false
	_, err := us.points.Upsert(ctx, o.UserID, func(p *pointsRecord, _ bool) error {
		if slices.Contains(p.Applied, ev.ID) {
			dup = true
			return kit.ErrNoChange
		}
		p.UserID = o.UserID
		p.Points.Points += o.Total / MinorPerPoint
		p.Applied = append(p.Applied, ev.ID)
		if n := len(p.Applied); n > appliedMax {
			p.Applied = slices.Clone(p.Applied[n-appliedMax:])
		}
		return nil
	})
	if err == nil && dup {
		return kit.ErrDuplicate
	}
	return err
}
