// Package account is the streaming workload's account service: sign-up,
// login with platform tokens, subscription plans and viewer profiles.
//
// Plans are defined in services/events, beside the account events that name
// them: content admits by minimum plan and playback limits concurrent streams
// and quality by plan, so the three services agree on what a plan allows
// without importing each other. Every change to an account is a
// compare-and-set on its KV record; the email index claims uniqueness.
package account

import (
	"context"
	"errors"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// MaxProfiles bounds the profiles of one account.
const MaxProfiles = 5

// TokenTTL is how long a login token lasts.
const TokenTTL = 24 * time.Hour

// Error codes.
const (
	CodeEmailTaken         = kit.CodeEmailTaken
	CodeInvalidCredentials = kit.CodeInvalidCredentials
	CodeProfileLimit       = "profile_limit"
)

type record struct {
	events.Account
	PasswordHash []byte    `json:"passwordHash"`
	CreatedAt    time.Time `json:"createdAt"`
}

// SignUp is the body of POST /accounts.
type SignUp struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Plan     string `json:"plan"`
}

// Validate checks a sign-up.
func (s SignUp) Validate() error {
	a, err := mail.ParseAddress(s.Email)
	switch {
	case err != nil || a.Address != s.Email || len(s.Email) > 254:
		return kit.Invalid("email", "email must be a plain address like ada@example.com")
	case len(s.Password) < 8:
		return kit.Invalid("password", "password must be at least 8 characters")
	case len(s.Password) > 72:
		return kit.Invalid("password", "password must be at most 72 bytes")
	}
	return validPlan(s.Plan)
}

func validPlan(name string) error {
	if _, ok := events.LookupPlan(name); !ok {
		return kit.Invalid("plan", "plan must be one of %s", strings.Join(events.PlanNames(), ", "))
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
	AccountID string    `json:"accountId"`
}

// Subscription is the body of PUT /accounts/{id}/subscription.
type Subscription struct {
	Plan string `json:"plan"`
}

// NewProfile is the body of POST /accounts/{id}/profiles.
type NewProfile struct {
	Name string `json:"name"`
}

// Validate checks a profile name.
func (p NewProfile) Validate() error {
	if n := strings.TrimSpace(p.Name); n == "" || len(n) > 100 {
		return kit.Invalid("name", "name must be 1-100 characters")
	}
	return nil
}

// Accounts holds the account logic.
type Accounts struct {
	accounts  *kit.Store[record]
	passwords *kit.Passwords
	pub       kit.Publisher
	key       []byte
	now       func() time.Time
}

// NewAccounts refuses nil dependencies.
func NewAccounts(accounts *kit.Store[record], emails *kit.Store[kit.EmailClaim], pub kit.Publisher, key []byte, cost int) (*Accounts, error) {
	if accounts == nil || emails == nil || pub == nil || len(key) == 0 {
		return nil, errors.New("account: NewAccounts needs stores, a publisher and a signing key")
	}
	passwords, err := kit.NewPasswords(emails, cost)
	if err != nil {
		return nil, err
	}
	return &Accounts{accounts: accounts, passwords: passwords, pub: pub, key: key, now: time.Now}, nil
}

// exists reports whether an account record exists, for a stale email claim.
func (a *Accounts) exists(ctx context.Context, id string) (bool, error) {
	_, _, err := a.accounts.Get(ctx, id)
	if errors.Is(err, kit.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Create signs up an account; a taken email is a 409.
func (a *Accounts) Create(ctx context.Context, s SignUp) (events.Account, error) {
	if err := s.Validate(); err != nil {
		return events.Account{}, err
	}
	hash, err := a.passwords.Hash(s.Password)
	if err != nil {
		return events.Account{}, err
	}
	rec := record{
		Account:      events.Account{ID: kit.NewID(), Email: strings.ToLower(s.Email), Plan: s.Plan, Profiles: []events.Profile{}},
		PasswordHash: hash, CreatedAt: a.now().UTC(),
	}
	if err := a.passwords.Claim(ctx, rec.Email, rec.ID, a.exists); err != nil {
		return events.Account{}, err
	}
	if _, err := a.accounts.Create(ctx, rec.ID, rec); err != nil {
		return events.Account{}, err
	}
	if err := a.pub.Publish(ctx, kit.EventID(catalog.AccountCreated, rec.ID), "accounts/"+rec.ID, events.AccountCreated{Account: rec.Account}); err != nil {
		kit.Logger(ctx).Warn("account.created not published", "account", rec.ID, "err", err)
	}
	return rec.Account, nil
}

// Login checks credentials and issues a token whose subject is the account id.
func (a *Accounts) Login(ctx context.Context, l Login) (Token, error) {
	var rec record
	if _, err := a.passwords.Verify(ctx, l.Email, l.Password, func(ctx context.Context, id string) ([]byte, error) {
		var err error
		rec, _, err = a.accounts.Get(ctx, id)
		return rec.PasswordHash, err
	}); err != nil {
		return Token{}, err
	}
	tok, exp, err := kit.IssueToken(a.key, rec.ID, rec.Email, TokenTTL, a.now())
	if err != nil {
		return Token{}, err
	}
	return Token{Token: tok, ExpiresAt: exp, AccountID: rec.ID}, nil
}

// Get returns an account to its owner. Content and playback call it with
// the viewer's own token, so an account is never readable by anyone else.
func (a *Accounts) Get(ctx context.Context, caller, id string) (events.Account, error) {
	if err := owner(caller, id); err != nil {
		return events.Account{}, err
	}
	rec, _, err := a.accounts.Get(ctx, id)
	if errors.Is(err, kit.ErrNotFound) {
		return events.Account{}, kit.NotFound("account %q not found", id)
	}
	return rec.Account, err
}

func owner(caller, id string) error {
	if !kit.ValidID(id) {
		return kit.NotFound("account %q not found", id)
	}
	if caller != id {
		return kit.Forbidden("an account can only be read or changed by its owner")
	}
	return nil
}

func (a *Accounts) update(ctx context.Context, caller, id string, fn func(*record) error) (record, error) {
	if err := owner(caller, id); err != nil {
		return record{}, err
	}
	rec, err := a.accounts.Update(ctx, id, fn)
	if errors.Is(err, kit.ErrNotFound) {
		return record{}, kit.NotFound("account %q not found", id)
	}
	return rec, err
}

// ChangePlan switches the subscription and publishes account.plan_changed.
func (a *Accounts) ChangePlan(ctx context.Context, caller, id string, s Subscription) (events.Account, error) {
	if err := validPlan(s.Plan); err != nil {
		return events.Account{}, err
	}
	var from string
	rec, err := a.update(ctx, caller, id, func(r *record) error {
		from = r.Plan
		if r.Plan == s.Plan {
			return kit.ErrNoChange
		}
		r.Plan = s.Plan
		return nil
	})
	if err != nil {
		return events.Account{}, err
	}
	if from != s.Plan {
		// The id names the transition, so a retried request republishes
		// the same event and consumers see it once.
		evID := kit.EventID(catalog.AccountPlanChanged, id+":"+from+"-"+s.Plan+":"+a.now().UTC().Format(time.RFC3339))
		if err := a.pub.Publish(ctx, evID, "accounts/"+id, events.AccountPlanChanged{AccountID: id, From: from, To: s.Plan}); err != nil {
			kit.Logger(ctx).Warn("account.plan_changed not published", "account", id, "err", err)
		}
	}
	return rec.Account, nil
}

// AddProfile adds a viewer profile, at most MaxProfiles per account.
func (a *Accounts) AddProfile(ctx context.Context, caller, id string, p NewProfile) (events.Profile, error) {
	if err := p.Validate(); err != nil {
		return events.Profile{}, err
	}
	prof := events.Profile{ID: kit.NewID(), Name: strings.TrimSpace(p.Name)}
	_, err := a.update(ctx, caller, id, func(r *record) error {
		if len(r.Profiles) >= MaxProfiles {
			return kit.Errorf(http.StatusConflict, CodeProfileLimit, "an account has at most %d profiles", MaxProfiles)
		}
		r.Profiles = append(r.Profiles, prof)
		return nil
	})
	return prof, err
}
