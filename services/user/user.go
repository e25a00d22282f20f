// Package user holds accounts, login and loyalty points. Points are credited
// from order.confirmed events exactly once: the ids of applied events live in
// the same KV record as the balance, so one compare-and-set applies both,
// and they are kept for as long as the stream can deliver an event again
// (credits.go).
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
	Roles []string `json:"roles,omitempty"`
	// Bootstrap marks the first admin, ensured from ADMIN_EMAIL and
	// ADMIN_PASSWORD: its password follows those settings.
	Bootstrap    bool      `json:"bootstrap,omitempty"`
	PasswordHash []byte    `json:"passwordHash"`
	CreatedAt    time.Time `json:"createdAt"`
}

// User is the API shape of a user: the profile and its roles.
type User struct {
	events.User
	Roles []string `json:"roles,omitempty"`
}

func (r record) api() User { return User{User: r.User, Roles: slices.Clone(r.Roles)} }

// Points is the API shape of a balance.
type Points struct {
	UserID string `json:"userId"`
	Points int64  `json:"points"`
}

type pointsRecord struct {
	Points
	// Applied holds the order.confirmed events credited, oldest first,
	// for as long as one can be delivered again (see credits.go).
	Applied []credit `json:"applied"`
}

// MinorPerPoint: one point per 100 currency units, and prices are in minor
// units (cents), so one point per 10,000 minor units.
const MinorPerPoint = 100 * 100

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

// GrantAdmin is the body of POST /admins.
type GrantAdmin struct {
	UserID string `json:"userId"`
}

// Users holds the user logic.
type Users struct {
	users     *kit.Store[record]
	passwords *kit.Passwords
	points    *kit.Store[pointsRecord]
	pub       kit.Publisher
	signer    *kit.Signer
	now       func() time.Time
}

// NewUsers refuses nil dependencies.
func NewUsers(users *kit.Store[record], points *kit.Store[pointsRecord], passwords *kit.Passwords, pub kit.Publisher, signer *kit.Signer) (*Users, error) {
	if users == nil || points == nil || passwords == nil || pub == nil || signer == nil {
		return nil, errors.New("user: NewUsers needs stores, passwords, a publisher and a token signer")
	}
	return &Users{users: users, passwords: passwords, points: points, pub: pub, signer: signer, now: time.Now}, nil
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
func (us *Users) Register(ctx context.Context, r Register) (User, error) {
	u, err := us.create(ctx, r, record{})
	return u.api(), err
}

// create signs up r with the roles and marks of proto. Of concurrent
// sign-ups with one email exactly one succeeds: the email claim is taken
// first and confirmed after the record is written (see kit.Passwords).
func (us *Users) create(ctx context.Context, r Register, proto record) (record, error) {
	if err := r.Validate(); err != nil {
		return record{}, err
	}
	hash, err := us.passwords.Hash(r.Password)
	if err != nil {
		return record{}, err
	}
	u := proto
	u.User = events.User{ID: kit.NewID(), Email: strings.ToLower(r.Email), Name: strings.TrimSpace(r.Name)}
	u.PasswordHash, u.CreatedAt = hash, us.now().UTC()
	if err := us.passwords.Claim(ctx, u.Email, u.ID, us.exists); err != nil {
		return record{}, err
	}
	if _, err := us.users.Create(ctx, u.ID, u); err != nil {
		return record{}, err
	}
	if err := us.passwords.Confirm(ctx, u.Email, u.ID); err != nil {
		// The claim was taken over while this sign-up stalled: the email
		// is the other's, so this record must not stay.
		if derr := us.users.Bucket().Delete(ctx, u.ID); derr != nil {
			kit.Logger(ctx).Error("orphaned user record not removed", "user", u.ID, "err", derr)
		}
		return record{}, err
	}
	if err := us.pub.Publish(ctx, kit.EventID(catalog.UserRegistered, u.ID), "users/"+u.ID, events.UserRegistered{User: u.User}); err != nil {
		kit.Logger(ctx).Warn("user.registered not published", "user", u.ID, "err", err)
	}
	return u, nil
}

// EnsureAdmin makes sure the first admin exists, with this email and
// password, at start-up. It is idempotent, and replicas starting together
// agree through the email claim: one creates the admin, the others find it.
// Rotating ADMIN_PASSWORD rotates the admin's password. An email that
// belongs to a user who signed up is never made admin this way.
func (us *Users) EnsureAdmin(ctx context.Context, email, password string) error {
	_, err := us.create(ctx, Register{Email: email, Name: "Platform admin", Password: password},
		record{Roles: []string{kit.RoleAdmin}, Bootstrap: true})
	if err == nil || kit.AsError(err).Code != CodeEmailTaken {
		if err != nil {
			return fmt.Errorf("first admin %s: %w", email, err)
		}
		return nil
	}
	id, err := us.passwords.WaitForOwner(ctx, email, us.exists)
	if err != nil {
		return fmt.Errorf("first admin %s: %w", email, err)
	}
	var hash []byte
	_, err = us.users.Update(ctx, id, func(u *record) error {
		if !u.Bootstrap {
			return errSignedUp
		}
		changed := false
		if !slices.Contains(u.Roles, kit.RoleAdmin) {
			u.Roles, changed = append(u.Roles, kit.RoleAdmin), true
		}
		if !us.passwords.Matches(u.PasswordHash, password) {
			if hash == nil {
				var err error
				if hash, err = us.passwords.Hash(password); err != nil {
					return err
				}
			}
			u.PasswordHash, changed = hash, true
		}
		if !changed {
			return kit.ErrNoChange
		}
		return nil
	})
	if errors.Is(err, errSignedUp) {
		kit.Logger(ctx).Error("ADMIN_EMAIL belongs to a user who signed up; not making them admin", "user", id)
		return nil
	}
	return err
}

var errSignedUp = errors.New("signed up, not ensured")

// Login checks credentials and issues a token carrying the user's roles.
// Failed logins are throttled per email (see kit.Throttle).
func (us *Users) Login(ctx context.Context, l Login) (Token, error) {
	var u record
	if _, err := us.passwords.Verify(ctx, l.Email, l.Password, func(ctx context.Context, id string) ([]byte, error) {
		var err error
		u, _, err = us.users.Get(ctx, id)
		return u.PasswordHash, err
	}); err != nil {
		return Token{}, err
	}
	t, err := us.signer.Issue(us.now(), u.ID, u.Email, u.Roles)
	if err != nil {
		return Token{}, err
	}
	return Token{Token: t.Token, ExpiresAt: t.ExpiresAt}, nil
}

func notFound(id string) error { return kit.NotFound("user %q not found", id) }

// Get returns a user to that user, or to an admin. Anyone else gets the 404
// of a user who does not exist, so ids cannot be probed.
func (us *Users) Get(ctx context.Context, caller *kit.Claims, id string) (User, error) {
	if caller == nil || (caller.Subject != id && !caller.IsAdmin()) || !kit.ValidID(id) {
		return User{}, notFound(id)
	}
	u, _, err := us.users.Get(ctx, id)
	if errors.Is(err, kit.ErrNotFound) {
		return User{}, notFound(id)
	}
	return u.api(), err
}

// Points returns a user's balance, to that user or an admin.
func (us *Users) Points(ctx context.Context, caller *kit.Claims, id string) (Points, error) {
	if _, err := us.Get(ctx, caller, id); err != nil {
		return Points{}, err
	}
	p, _, err := us.points.Get(ctx, id)
	if errors.Is(err, kit.ErrNotFound) {
		return Points{UserID: id}, nil
	}
	return p.Points, err
}

// GrantAdmin gives an existing user the admin role; an admin only. The
// user's tokens carry it from their next login.
func (us *Users) GrantAdmin(ctx context.Context, caller *kit.Claims, g GrantAdmin) (User, error) {
	if caller == nil || !caller.IsAdmin() {
		return User{}, kit.Forbidden("only an admin grants the admin role")
	}
	missing := kit.NotFound("user %q not found", g.UserID)
	missing.Field = "userId"
	if !kit.ValidID(g.UserID) {
		return User{}, missing
	}
	u, err := us.users.Update(ctx, g.UserID, func(u *record) error {
		if slices.Contains(u.Roles, kit.RoleAdmin) {
			return kit.ErrNoChange
		}
		u.Roles = append(u.Roles, kit.RoleAdmin)
		return nil
	})
	if errors.Is(err, kit.ErrNotFound) {
		return User{}, missing
	}
	if err != nil {
		return User{}, err
	}
	kit.Logger(ctx).Info("admin role granted", "user", u.ID, "by", caller.Subject)
	return u.api(), nil
}

// OnOrderConfirmed credits points once per event id. An event too old to
// tell whether it was credited (a dead letter replayed after the stream's
// retention) is dead-lettered again rather than risk a second credit.
func (us *Users) OnOrderConfirmed(ctx context.Context, ev kit.Event) error {
	var o events.OrderConfirmed
	if err := json.Unmarshal(ev.Data, &o); err != nil || !kit.ValidID(o.UserID) {
		return fmt.Errorf("%w: bad order.confirmed %s: %v", kit.ErrPermanent, ev.ID, err)
	}
	now := us.now()
	at := ev.Time
	if at.IsZero() || at.After(now) {
		at = now
	}
	dup := false
	_, err := us.points.Upsert(ctx, o.UserID, func(p *pointsRecord, _ bool) error {
		if p.credited(ev.ID) {
			dup = true
			return kit.ErrNoChange
		}
		if age := now.Sub(at); age > creditsAccepted {
			return fmt.Errorf("%w: order.confirmed %s is %s old, past the %s for which credits are remembered: credit it by hand if it never was",
				kit.ErrPermanent, ev.ID, age.Round(time.Minute), creditsAccepted)
		}
		p.UserID = o.UserID
		p.Points.Points += o.Total / MinorPerPoint
		p.remember(ev.ID, at, now)
		return nil
	})
	if err == nil && dup {
		return kit.ErrDuplicate
	}
	return err
}
