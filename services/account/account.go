// Package account is the streaming workload's account service: sign-up,
// login with platform tokens, subscription plans and viewer profiles.
//
// Plans are defined in services/events, beside the account events that name
// them: content admits by minimum plan and playback limits concurrent streams
// and quality by plan, so the three services agree on what a plan allows
// without importing each other. Every change to an account is a
// compare-and-set on its KV record; the email index claims uniqueness.
// Content and playback read an account's plan and profiles through the
// internal gRPC API (switchboard.account.v1.Accounts), which admits their
// identities only.
package account

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// MaxProfiles bounds the profiles of one account.
const MaxProfiles = 5

// Error codes.
const (
	CodeEmailTaken         = kit.CodeEmailTaken
	CodeInvalidCredentials = kit.CodeInvalidCredentials
	CodeProfileLimit       = "profile_limit"
)

type record struct {
	events.Account
	Roles []string `json:"roles,omitempty"`
	// Bootstrap marks the first admin, ensured from ADMIN_EMAIL and
	// ADMIN_PASSWORD: its password follows those settings.
	Bootstrap    bool      `json:"bootstrap,omitempty"`
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
	signer    *kit.Signer
	now       func() time.Time
}

// NewAccounts refuses nil dependencies.
func NewAccounts(accounts *kit.Store[record], passwords *kit.Passwords, pub kit.Publisher, signer *kit.Signer) (*Accounts, error) {
	if accounts == nil || passwords == nil || pub == nil || signer == nil {
		return nil, errors.New("account: NewAccounts needs a store, passwords, a publisher and a token signer")
	}
	return &Accounts{accounts: accounts, passwords: passwords, pub: pub, signer: signer, now: time.Now}, nil
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
	rec, err := a.create(ctx, s, record{})
	return rec.Account, err
}

// create signs up s with the roles and marks of proto. Of concurrent
// sign-ups with one email exactly one succeeds: the email claim is taken
// first and confirmed after the record is written (see kit.Passwords).
func (a *Accounts) create(ctx context.Context, s SignUp, proto record) (record, error) {
	if err := s.Validate(); err != nil {
		return record{}, err
	}
	hash, err := a.passwords.Hash(s.Password)
	if err != nil {
		return record{}, err
	}
	rec := proto
	rec.Account = events.Account{ID: kit.NewID(), Email: strings.ToLower(s.Email), Plan: s.Plan, Profiles: []events.Profile{}}
	rec.PasswordHash, rec.CreatedAt = hash, a.now().UTC()
	if err := a.passwords.Claim(ctx, rec.Email, rec.ID, a.exists); err != nil {
		return record{}, err
	}
	if _, err := a.accounts.Create(ctx, rec.ID, rec); err != nil {
		return record{}, err
	}
	if err := a.passwords.Confirm(ctx, rec.Email, rec.ID); err != nil {
		// The claim was taken over while this sign-up stalled: the email
		// is the other's, so this record must not stay.
		if derr := a.accounts.Bucket().Delete(ctx, rec.ID); derr != nil {
			kit.Logger(ctx).Error("orphaned account record not removed", "account", rec.ID, "err", derr)
		}
		return record{}, err
	}
	if err := a.pub.Publish(ctx, kit.EventID(catalog.AccountCreated, rec.ID), "accounts/"+rec.ID, events.AccountCreated{Account: rec.Account}); err != nil {
		kit.Logger(ctx).Warn("account.created not published", "account", rec.ID, "err", err)
	}
	return rec, nil
}

// EnsureAdmin makes sure the streaming workload's first admin exists, on
// the richest plan, with this email and password, at start-up. It is
// idempotent, and replicas starting together agree through the email
// claim: one creates the admin, the others find it. Rotating
// ADMIN_PASSWORD rotates the admin's password. An email that belongs to an
// account someone signed up is never made admin this way.
func (a *Accounts) EnsureAdmin(ctx context.Context, email, password string) error {
	names := events.PlanNames()
	_, err := a.create(ctx, SignUp{Email: email, Password: password, Plan: names[len(names)-1]},
		record{Roles: []string{kit.RoleAdmin}, Bootstrap: true})
	if err == nil || kit.AsError(err).Code != CodeEmailTaken {
		if err != nil {
			return fmt.Errorf("first admin %s: %w", email, err)
		}
		return nil
	}
	id, err := a.passwords.WaitForOwner(ctx, email, a.exists)
	if err != nil {
		return fmt.Errorf("first admin %s: %w", email, err)
	}
	var hash []byte
	_, err = a.accounts.Update(ctx, id, func(r *record) error {
		if !r.Bootstrap {
			return errSignedUp
		}
		changed := false
		if !slices.Contains(r.Roles, kit.RoleAdmin) {
			r.Roles, changed = append(r.Roles, kit.RoleAdmin), true
		}
		if !a.passwords.Matches(r.PasswordHash, password) {
			if hash == nil {
				var err error
				if hash, err = a.passwords.Hash(password); err != nil {
					return err
				}
			}
			r.PasswordHash, changed = hash, true
		}
		if !changed {
			return kit.ErrNoChange
		}
		return nil
	})
	if errors.Is(err, errSignedUp) {
		kit.Logger(ctx).Error("ADMIN_EMAIL belongs to an account someone signed up; not making it admin", "account", id)
		return nil
	}
	return err
}

var errSignedUp = errors.New("signed up, not ensured")

// Login checks credentials and issues a token whose subject is the account
// id and which carries the account's roles. Failed logins are throttled
// per email (see kit.Throttle).
func (a *Accounts) Login(ctx context.Context, l Login) (Token, error) {
	var rec record
	if _, err := a.passwords.Verify(ctx, l.Email, l.Password, func(ctx context.Context, id string) ([]byte, error) {
		var err error
		rec, _, err = a.accounts.Get(ctx, id)
		return rec.PasswordHash, err
	}); err != nil {
		return Token{}, err
	}
	t, err := a.signer.Issue(a.now(), rec.ID, rec.Email, rec.Roles)
	if err != nil {
		return Token{}, err
	}
	return Token{Token: t.Token, ExpiresAt: t.ExpiresAt, AccountID: rec.ID}, nil
}

// Get returns an account to its owner or an admin; anyone else gets the 404
// of an account that does not exist.
func (a *Accounts) Get(ctx context.Context, caller *kit.Claims, id string) (events.Account, error) {
	if err := owner(caller, id, true); err != nil {
		return events.Account{}, err
	}
	rec, _, err := a.accounts.Get(ctx, id)
	if errors.Is(err, kit.ErrNotFound) {
		return events.Account{}, kit.NotFound("account %q not found", id)
	}
	return rec.Account, err
}

// CodeUnknownAccount answers a lookup of an account that does not exist.
const CodeUnknownAccount = "unknown_account"

// Lookup reads an account for another service (Accounts.GetAccount over
// gRPC, which admits content and playback only): they authenticated the
// viewer themselves, and the answer carries what their decisions need,
// never the e-mail.
func (a *Accounts) Lookup(ctx context.Context, id string) (events.Account, error) {
	if !kit.ValidID(id) {
		return events.Account{}, kit.Invalid("account_id", "account_id must be 1-64 letters, digits, '-' or '_'")
	}
	rec, _, err := a.accounts.Get(ctx, id)
	if errors.Is(err, kit.ErrNotFound) {
		return events.Account{}, &kit.Error{Status: http.StatusNotFound, Code: CodeUnknownAccount, Field: "account_id",
			Message: fmt.Sprintf("account %q not found", id)}
	}
	if err != nil {
		return events.Account{}, err
	}
	acc := rec.Account
	acc.Email = ""
	return acc, nil
}

// owner admits the account's owner, and an admin when adminToo (reads):
// changes to an account are its owner's alone.
func owner(caller *kit.Claims, id string, adminToo bool) error {
	if caller == nil || !kit.ValidID(id) || (caller.Subject != id && !(adminToo && caller.IsAdmin())) {
		return kit.NotFound("account %q not found", id)
	}
	return nil
}

func (a *Accounts) update(ctx context.Context, caller *kit.Claims, id string, fn func(*record) error) (record, error) {
	if err := owner(caller, id, false); err != nil {
		return record{}, err
	}
	rec, err := a.accounts.Update(ctx, id, fn)
	if errors.Is(err, kit.ErrNotFound) {
		return record{}, kit.NotFound("account %q not found", id)
	}
	return rec, err
}

// ChangePlan switches the subscription and publishes account.plan_changed.
func (a *Accounts) ChangePlan(ctx context.Context, caller *kit.Claims, id string, s Subscription) (events.Account, error) {
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
func (a *Accounts) AddProfile(ctx context.Context, caller *kit.Claims, id string, p NewProfile) (events.Profile, error) {
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
