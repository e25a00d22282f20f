package kit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// Error codes of sign-up and login, shared by every service that keeps
// passwords (commerce's user, streaming's account).
const (
	CodeEmailTaken         = "email_taken"
	CodeInvalidCredentials = "invalid_credentials"
	// CodeLoginThrottled is a 429: too many failed logins for this email.
	CodeLoginThrottled = "login_throttled"
)

// ClaimWindow is how long a sign-up may take between claiming its email and
// writing its record (one KV write, so milliseconds; a minute covers a
// paused or starved replica). Within it, another sign-up for the same email
// is refused, not allowed to take the claim over.
const ClaimWindow = time.Minute

// EmailClaim maps an email to the account that owns it. The claim is the
// uniqueness constraint: it is written before the account record, and
// confirmed after it.
type EmailClaim struct {
	OwnerID   string    `json:"ownerId"`
	ClaimedAt time.Time `json:"claimedAt,omitzero"`
	// Confirmed is set once the owner's record is written: a confirmed
	// claim is never taken over.
	Confirmed bool `json:"confirmed,omitempty"`
}

// LoginFailures counts the failed logins in a row of one email.
type LoginFailures struct {
	Failures int       `json:"failures"`
	Last     time.Time `json:"last"`
	// NotBefore: no login for this email is looked at before it.
	NotBefore time.Time `json:"notBefore,omitzero"`
}

// Throttle is the login policy per email. Failures in a row beyond Free
// make the next attempt wait Delay, doubled with every further failure;
// LockAfter failures in a row lock the email for LockFor. While an email
// waits or is locked, a login is refused with a 429 before its password is
// looked at, so even the right password is refused. The counter lives in a
// KV bucket, so every replica agrees, and it is forgotten when the bucket's
// TTL passes after the last failure.
type Throttle struct {
	Free      int
	Delay     time.Duration
	LockAfter int
	LockFor   time.Duration
}

// DefaultThrottle: three free failures, then 1 s, 2 s … 32 s between
// attempts, and the tenth failure locks the email for 15 minutes.
var DefaultThrottle = Throttle{Free: 3, Delay: time.Second, LockAfter: 10, LockFor: 15 * time.Minute}

// ThrottleFromEnv is DefaultThrottle with LOGIN_LOCK_AFTER and
// LOGIN_LOCK_FOR read from c.
func ThrottleFromEnv(c Config) (Throttle, error) {
	t := DefaultThrottle
	var err error
	if t.LockAfter, err = c.Int(catalog.EnvLoginLockAfter, t.LockAfter); err != nil {
		return Throttle{}, err
	}
	if t.LockFor, err = c.Duration(catalog.EnvLoginLockFor, t.LockFor); err != nil {
		return Throttle{}, err
	}
	return t, nil
}

// wait is how long the next attempt waits after n failures in a row.
func (t Throttle) wait(n int) time.Duration {
	switch {
	case n >= t.LockAfter:
		return t.LockFor
	case n <= t.Free:
		return 0
	}
	return min(t.Delay<<min(n-t.Free-1, 20), t.LockFor)
}

// PasswordsOptions configure NewPasswords.
type PasswordsOptions struct {
	// Emails holds the email claims; Logins the failure counters, in a
	// bucket with a TTL (see catalog.KVBuckets).
	Emails *Store[EmailClaim]
	Logins *Store[LoginFailures]
	// Cost is bcrypt's work factor (see BcryptCost).
	Cost int
	// Throttle is the login policy; zero means DefaultThrottle.
	Throttle Throttle
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Passwords keeps one account per email, passwords as bcrypt hashes, and
// throttles logins per email.
type Passwords struct {
	emails   *Store[EmailClaim]
	logins   *Store[LoginFailures]
	cost     int
	throttle Throttle
	forget   time.Duration
	now      func() time.Time
	// dummy is compared against on unknown emails, so a login takes as
	// long whether or not the account exists.
	dummy []byte
}

// NewPasswords refuses missing stores and a lock that would outlive the
// counter that holds it.
func NewPasswords(o PasswordsOptions) (*Passwords, error) {
	if o.Emails == nil || o.Logins == nil {
		return nil, errors.New("kit: NewPasswords needs an email store and a login store")
	}
	bk, err := catalog.BucketFor(o.Logins.Bucket().Bucket())
	if err != nil {
		return nil, err
	}
	if bk.TTL <= 0 {
		return nil, fmt.Errorf("kit: login bucket %s needs a TTL, or failed logins are never forgotten", bk.Name)
	}
	if o.Throttle == (Throttle{}) {
		o.Throttle = DefaultThrottle
	}
	if t := o.Throttle; t.LockAfter < 1 || t.Free < 0 || t.Delay <= 0 || t.LockFor <= 0 || t.LockFor > bk.TTL {
		return nil, fmt.Errorf("kit: login throttle %+v: want LockAfter ≥ 1, positive delays, and LockFor within %s (%s's TTL)", t, bk.TTL, bk.Name)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("not-a-real-password"), o.Cost)
	if err != nil {
		return nil, err
	}
	return &Passwords{emails: o.Emails, logins: o.Logins, cost: o.Cost, throttle: o.Throttle, forget: bk.TTL, now: o.Now, dummy: dummy}, nil
}

// BcryptCost reads BCRYPT_COST (optional, bcrypt's default when unset),
// which trades login cost for test and benchmark speed.
func BcryptCost(c Config) (int, error) {
	cost, err := c.Int("BCRYPT_COST", bcrypt.DefaultCost)
	if err != nil {
		return 0, err
	}
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return 0, fmt.Errorf("BCRYPT_COST=%d: want %d to %d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	return cost, nil
}

// Hash returns the bcrypt hash of password.
func (p *Passwords) Hash(password string) ([]byte, error) {
	return bcrypt.GenerateFromPassword([]byte(password), p.cost)
}

// Matches reports whether password is the one hash was made from. It does
// not count as a login attempt.
func (p *Passwords) Matches(hash []byte, password string) bool {
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}

func emailTaken() *Error {
	taken := Errorf(http.StatusConflict, CodeEmailTaken, "an account with this email exists")
	taken.Field = "email"
	return taken
}

// Claim reserves email for ownerID, the first step of a sign-up; Confirm
// is the last, once the owner's record is written. A claim is a 409
// email_taken on field "email" while it is confirmed, its owner's record
// exists (ownerExists), or it is younger than ClaimWindow (a sign-up in
// flight). Only a claim left by a crash before its owner's record was
// written, older than that, is taken over.
func (p *Passwords) Claim(ctx context.Context, email, ownerID string, ownerExists func(ctx context.Context, id string) (bool, error)) error {
	now := p.now()
	_, err := p.emails.Upsert(ctx, emailKey(email), func(c *EmailClaim, exists bool) error {
		if exists {
			if c.Confirmed || now.Sub(c.ClaimedAt) < ClaimWindow {
				return emailTaken()
			}
			live, err := ownerExists(ctx, c.OwnerID)
			if err != nil {
				return err
			}
			if live {
				return emailTaken()
			}
		}
		*c = EmailClaim{OwnerID: ownerID, ClaimedAt: now}
		return nil
	})
	return err
}

// Confirm completes ownerID's sign-up after its record is written. It is a
// 409 email_taken when the claim was taken over meanwhile (the sign-up took
// longer than ClaimWindow): the caller then removes the record it wrote.
// Being a compare-and-set, it also makes a takeover that read the claim
// before it fail and retry, so exactly one sign-up keeps the email.
func (p *Passwords) Confirm(ctx context.Context, email, ownerID string) error {
	_, err := p.emails.Update(ctx, emailKey(email), func(c *EmailClaim) error {
		if c.OwnerID != ownerID {
			return emailTaken()
		}
		if c.Confirmed {
			return ErrNoChange
		}
		c.Confirmed = true
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return emailTaken()
	}
	return err
}

// Owner returns the id that claimed email, or ErrNotFound.
func (p *Passwords) Owner(ctx context.Context, email string) (string, error) {
	c, _, err := p.emails.Get(ctx, emailKey(email))
	return c.OwnerID, err
}

// Verify is a login: it returns the id of the account that owns email when
// password matches the hash hashOf reads for it (ErrNotFound when it has
// none), and a 401 invalid_credentials otherwise, saying nothing of which
// was wrong. It is throttled per email (see Throttle): a 429
// login_throttled with RetryAfter while the email waits or is locked,
// whether or not the account exists.
func (p *Passwords) Verify(ctx context.Context, email, password string, hashOf func(ctx context.Context, id string) ([]byte, error)) (string, error) {
	key := emailKey(email)
	// The attempt counts as a failure before the password is checked, and
	// a success clears the count: concurrent guesses on many replicas each
	// take a turn through the compare-and-set, so none slips past the
	// limit while the others are still hashing.
	if err := p.admit(ctx, key, p.now()); err != nil {
		return "", err
	}
	id, err := p.check(ctx, key, password, hashOf)
	if err != nil {
		return "", err
	}
	if err := p.logins.Bucket().Delete(ctx, key); err != nil {
		Logger(ctx).Warn("failed-login count not cleared", "err", err)
	}
	return id, nil
}

func (p *Passwords) admit(ctx context.Context, key string, now time.Time) error {
	_, err := p.logins.Upsert(ctx, key, func(f *LoginFailures, exists bool) error {
		if exists && now.Sub(f.Last) >= p.forget {
			*f = LoginFailures{}
		}
		if now.Before(f.NotBefore) {
			return p.throttled(f, now)
		}
		f.Failures++
		f.Last = now
		f.NotBefore = now.Add(p.throttle.wait(f.Failures))
		return nil
	})
	return err
}

func (p *Passwords) throttled(f *LoginFailures, now time.Time) *Error {
	wait := f.NotBefore.Sub(now)
	retry := f.NotBefore.UTC().Add(time.Second - 1).Truncate(time.Second)
	var e *Error
	if f.Failures >= p.throttle.LockAfter {
		e = Errorf(http.StatusTooManyRequests, CodeLoginThrottled,
			"login for this email is locked after %d failed attempts; retry after %s", f.Failures, retry.Format(time.RFC3339))
	} else {
		e = Errorf(http.StatusTooManyRequests, CodeLoginThrottled,
			"too many failed logins for this email; retry after %s", retry.Format(time.RFC3339))
	}
	e.Field = "email"
	e.RetryAfter = wait
	return e
}

func (p *Passwords) check(ctx context.Context, key, password string, hashOf func(ctx context.Context, id string) ([]byte, error)) (string, error) {
	bad := Errorf(http.StatusUnauthorized, CodeInvalidCredentials, "wrong email or password")
	claim, _, err := p.emails.Get(ctx, key)
	var hash []byte
	if err == nil {
		hash, err = hashOf(ctx, claim.OwnerID)
	}
	if errors.Is(err, ErrNotFound) {
		_ = bcrypt.CompareHashAndPassword(p.dummy, []byte(password))
		return "", bad
	}
	if err != nil {
		return "", err
	}
	if !p.Matches(hash, password) {
		return "", bad
	}
	return claim.OwnerID, nil
}

// emailKey makes any email a valid KV key; emails compare case-insensitively.
func emailKey(email string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.ToLower(email)))
}

// AdminFromEnv reads the first admin's ADMIN_EMAIL and ADMIN_PASSWORD:
// both empty (no admin to ensure) or both set.
func AdminFromEnv(c Config) (email, password string, err error) {
	email, password = c.String(catalog.EnvAdminEmail), c.env(catalog.EnvAdminPassword)
	if (email == "") != (password == "") {
		return "", "", fmt.Errorf("%s and %s must be set together", catalog.EnvAdminEmail, catalog.EnvAdminPassword)
	}
	return email, password, nil
}

// WaitForOwner polls until the record of the owner of email exists
// (exists reports it), for a caller that lost a sign-up race, such as a
// replica ensuring the same first admin as another: the winner writes its
// record within ClaimWindow. It returns the owner's id.
func (p *Passwords) WaitForOwner(ctx context.Context, email string, exists func(ctx context.Context, id string) (bool, error)) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, ClaimWindow)
	defer cancel()
	for {
		id, err := p.Owner(ctx, email)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return "", err
		}
		if err == nil {
			ok, err := exists(ctx, id)
			if err != nil {
				return "", err
			}
			if ok {
				return id, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("the account of %s was not written within %s: %w", email, ClaimWindow, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
