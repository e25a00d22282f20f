package kit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Error codes of sign-up and login, shared by every service that keeps
// passwords (commerce's user, streaming's account).
const (
	CodeEmailTaken         = "email_taken"
	CodeInvalidCredentials = "invalid_credentials"
)

// EmailClaim maps an email to the account that owns it. The claim is the
// uniqueness constraint: it is written before the account record.
type EmailClaim struct {
	OwnerID string `json:"ownerId"`
}

// Passwords keeps one account per email and passwords as bcrypt hashes.
type Passwords struct {
	emails *Store[EmailClaim]
	cost   int
	// dummy is compared against on unknown emails, so a login takes as
	// long whether or not the account exists.
	dummy []byte
}

// NewPasswords refuses a nil store; cost is bcrypt's work factor.
func NewPasswords(emails *Store[EmailClaim], cost int) (*Passwords, error) {
	if emails == nil {
		return nil, errors.New("kit: NewPasswords needs an email store")
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("not-a-real-password"), cost)
	if err != nil {
		return nil, err
	}
	return &Passwords{emails: emails, cost: cost, dummy: dummy}, nil
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

// Claim reserves email for ownerID; a live claim is a 409 email_taken on
// field "email". A claim left by a crash before its owner's record was
// written (ownerExists reports false) is taken over.
func (p *Passwords) Claim(ctx context.Context, email, ownerID string, ownerExists func(ctx context.Context, id string) (bool, error)) error {
	taken := Errorf(http.StatusConflict, CodeEmailTaken, "an account with this email exists")
	taken.Field = "email"
	_, err := p.emails.Upsert(ctx, emailKey(email), func(c *EmailClaim, exists bool) error {
		if exists {
			live, err := ownerExists(ctx, c.OwnerID)
			if err != nil {
				return err
			}
			if live {
				return taken
			}
		}
		c.OwnerID = ownerID
		return nil
	})
	return err
}

// Verify returns the id of the account that owns email when password
// matches the hash hashOf reads for it (ErrNotFound when it has none), and a
// 401 invalid_credentials otherwise, saying nothing of which was wrong.
func (p *Passwords) Verify(ctx context.Context, email, password string, hashOf func(ctx context.Context, id string) ([]byte, error)) (string, error) {
	bad := Errorf(http.StatusUnauthorized, CodeInvalidCredentials, "wrong email or password")
	claim, _, err := p.emails.Get(ctx, emailKey(email))
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
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		return "", bad
	}
	return claim.OwnerID, nil
}

// emailKey makes any email a valid KV key; emails compare case-insensitively.
func emailKey(email string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.ToLower(email)))
}
