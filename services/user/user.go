// Package user holds accounts, login and loyalty points. Points are credited
// from order.confirmed events exactly once: the ids of applied events live in
// the same KV record as the balance, so one compare-and-set applies both.
package user

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// User is the API shape.
type User struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

type record struct {
	User
	PasswordHash []byte    `json:"passwordHash"`
	CreatedAt    time.Time `json:"createdAt"`
}

type emailIndex struct {
	UserID string `json:"userId"`
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
	CodeEmailTaken         = "email_taken"
	CodeInvalidCredentials = "invalid_credentials"
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

// Publisher sends events; *kit.Bus is one.
type Publisher interface {
	Publish(ctx context.Context, typ, id, subject string, data any) error
}

// Accounts holds the user logic.
type Accounts struct {
	users  *kit.Store[record]
	emails *kit.Store[emailIndex]
	points *kit.Store[pointsRecord]
	pub    Publisher
	key    []byte
	cost   int
	now    func() time.Time
	// dummy is compared against on unknown emails, so login takes as long
	// whether or not the account exists.
	dummy []byte
}

// NewAccounts refuses nil dependencies.
func NewAccounts(users *kit.Store[record], emails *kit.Store[emailIndex], points *kit.Store[pointsRecord], pub Publisher, key []byte, cost int) (*Accounts, error) {
	if users == nil || emails == nil || points == nil || pub == nil || len(key) == 0 {
		return nil, errors.New("user: NewAccounts needs stores, a publisher and a signing key")
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("not-a-real-password"), cost)
	if err != nil {
		return nil, err
	}
	return &Accounts{users: users, emails: emails, points: points, pub: pub, key: key, cost: cost, now: time.Now, dummy: dummy}, nil
}

func emailKey(email string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.ToLower(email)))
}

// Register creates an account; a taken email is a 409.
func (a *Accounts) Register(ctx context.Context, r Register) (User, error) {
	if err := r.Validate(); err != nil {
		return User{}, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), a.cost)
	if err != nil {
		return User{}, err
	}
	u := record{User: User{ID: kit.NewID(), Email: strings.ToLower(r.Email), Name: strings.TrimSpace(r.Name)}, PasswordHash: hash, CreatedAt: a.now().UTC()}
	taken := kit.Errorf(http.StatusConflict, CodeEmailTaken, "an account with this email exists")
	taken.Field = "email"
	// Claim the email first; it is the uniqueness constraint. A claim left
	// by a crash before the user record was written is taken over.
	if _, err := a.emails.Upsert(ctx, emailKey(u.Email), func(ix *emailIndex, exists bool) error {
		if exists {
			if _, _, err := a.users.Get(ctx, ix.UserID); !errors.Is(err, kit.ErrNotFound) {
				if err != nil {
					return err
				}
				return taken
			}
		}
		ix.UserID = u.ID
		return nil
	}); err != nil {
		return User{}, err
	}
	if _, err := a.users.Create(ctx, u.ID, u); err != nil {
		return User{}, err
	}
	if err := a.pub.Publish(ctx, catalog.UserRegistered, kit.EventID(catalog.UserRegistered, u.ID), "users/"+u.ID, u.User); err != nil {
		kit.Logger(ctx).Warn("user.registered not published", "user", u.ID, "err", err)
	}
	return u.User, nil
}

// Login checks credentials and issues a token.
func (a *Accounts) Login(ctx context.Context, l Login) (Token, error) {
	bad := kit.Errorf(http.StatusUnauthorized, CodeInvalidCredentials, "wrong email or password")
	ix, _, err := a.emails.Get(ctx, emailKey(l.Email))
	var u record
	if err == nil {
		u, _, err = a.users.Get(ctx, ix.UserID)
	}
	if errors.Is(err, kit.ErrNotFound) {
		_ = bcrypt.CompareHashAndPassword(a.dummy, []byte(l.Password))
		return Token{}, bad
	}
	if err != nil {
		return Token{}, err
	}
	if bcrypt.CompareHashAndPassword(u.PasswordHash, []byte(l.Password)) != nil {
		return Token{}, bad
	}
	tok, exp, err := kit.IssueToken(a.key, u.ID, u.Email, TokenTTL, a.now())
	if err != nil {
		return Token{}, err
	}
	return Token{Token: tok, ExpiresAt: exp}, nil
}

// Get returns a user, for that user only.
func (a *Accounts) Get(ctx context.Context, caller, id string) (User, error) {
	if caller != id {
		return User{}, kit.Forbidden("a user can only read their own account")
	}
	u, _, err := a.users.Get(ctx, id)
	if errors.Is(err, kit.ErrNotFound) {
		return User{}, kit.NotFound("user %q not found", id)
	}
	return u.User, err
}

// Points returns a user's balance, for that user only.
func (a *Accounts) Points(ctx context.Context, caller, id string) (Points, error) {
	if _, err := a.Get(ctx, caller, id); err != nil {
		return Points{}, err
	}
	p, _, err := a.points.Get(ctx, id)
	if errors.Is(err, kit.ErrNotFound) {
		return Points{UserID: id}, nil
	}
	return p.Points, err
}

// confirmed is the part of an order.confirmed event that points need.
type confirmed struct {
	UserID string `json:"userId"`
	Total  int64  `json:"total"`
}

// OnOrderConfirmed credits points once per event id.
func (a *Accounts) OnOrderConfirmed(ctx context.Context, ev kit.Event) error {
	var o confirmed
	if err := json.Unmarshal(ev.Data, &o); err != nil || !kit.ValidID(o.UserID) {
		return fmt.Errorf("%w: bad order.confirmed %s: %v", kit.ErrPermanent, ev.ID, err)
	}
	dup := false
	_, err := a.points.Upsert(ctx, o.UserID, func(p *pointsRecord, _ bool) error {
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
