package kit

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/internal/tokenkeys"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

// tokenLeeway absorbs clock skew between the issuing and verifying pods.
const tokenLeeway = 5 * time.Second

// Signer signs user tokens with an Ed25519 key. Only the services whose
// catalog row issues tokens (user, account) hold one.
type Signer struct {
	key ed25519.PrivateKey
	kid string
	ttl time.Duration
}

// NewSigner signs with key for tokens lasting ttl (at most
// catalog.MaxTokenTTL, so the revocation bucket outlives every token).
func NewSigner(key ed25519.PrivateKey, ttl time.Duration) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("kit: NewSigner needs an Ed25519 private key")
	}
	if ttl <= 0 || ttl > catalog.MaxTokenTTL {
		return nil, fmt.Errorf("kit: token lifetime %s is not within (0, %s]", ttl, catalog.MaxTokenTTL)
	}
	return &Signer{key: key, kid: tokenkeys.KeyID(tokenkeys.Public(key)), ttl: ttl}, nil
}

// KeyID is the kid the signer puts in every token header.
func (s *Signer) KeyID() string { return s.kid }

// TTL is how long the tokens it issues last.
func (s *Signer) TTL() time.Duration { return s.ttl }

// Issued is a signed token.
type Issued struct {
	Token     string
	ID        string // the jti, what a sign-out revokes
	ExpiresAt time.Time
}

// Issue signs a token for subject (a user or account id) issued at now.
func (s *Signer) Issue(now time.Time, subject, email string, roles []string) (Issued, error) {
	if !ValidID(subject) {
		return Issued{}, fmt.Errorf("kit: token subject %q is not an id", subject)
	}
	now = now.UTC().Truncate(time.Second)
	c := Claims{Email: email, Roles: slices.Clone(roles), RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    TokenIssuer,
		Subject:   subject,
		ID:        newTokenID(),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(s.ttl)),
	}}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = s.kid
	tok, err := t.SignedString(s.key)
	if err != nil {
		return Issued{}, err
	}
	return Issued{Token: tok, ID: c.ID, ExpiresAt: c.ExpiresAt.Time}, nil
}

// newTokenID is 128 random bits: unguessable, and a valid KV key.
func newTokenID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// KeySet verifies tokens against the public keys of TOKEN_KEYS, chosen by
// the token's kid: one key normally, two while a signing key is rotated.
// It checks signature, algorithm, issuer, expiry and lifetime, not
// revocation (see Revocations).
type KeySet struct {
	keys map[string]ed25519.PublicKey
	ids  []string
}

// NewKeySet refuses an empty set.
func NewKeySet(keys ...ed25519.PublicKey) (*KeySet, error) {
	if len(keys) == 0 {
		return nil, errors.New("kit: a key set needs at least one public key")
	}
	ks := &KeySet{keys: map[string]ed25519.PublicKey{}}
	for _, k := range keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, errors.New("kit: a key set holds Ed25519 public keys")
		}
		id := tokenkeys.KeyID(k)
		ks.keys[id] = k
		ks.ids = append(ks.ids, id)
	}
	return ks, nil
}

// KeyIDs lists the kids the set accepts, in the order given.
func (ks *KeySet) KeyIDs() []string { return slices.Clone(ks.ids) }

// Has reports whether the set accepts tokens with kid.
func (ks *KeySet) Has(kid string) bool { _, ok := ks.keys[kid]; return ok }

// Verify implements Verifier without revocation.
func (ks *KeySet) Verify(_ context.Context, token string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, ks.key,
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(TokenIssuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(tokenLeeway),
	)
	if err != nil {
		return nil, err
	}
	switch {
	case !ValidID(c.Subject):
		return nil, errors.New("token has no valid subject")
	case !ValidID(c.ID):
		// Without a jti a token could not be revoked.
		return nil, errors.New("token has no valid id")
	case c.IssuedAt == nil:
		return nil, errors.New("token has no issue time")
	case c.ExpiresAt.Sub(c.IssuedAt.Time) > catalog.MaxTokenTTL:
		// It would outlive its revocation entry.
		return nil, fmt.Errorf("token lasts longer than %s", catalog.MaxTokenTTL)
	}
	return &c, nil
}

func (ks *KeySet) key(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	k, ok := ks.keys[kid]
	if !ok {
		return nil, fmt.Errorf("unknown key id %q", kid)
	}
	return k, nil
}

// revocable is a Verifier that also refuses revoked tokens.
type revocable struct {
	keys    *KeySet
	revoked *Revocations
}

func (v revocable) Verify(ctx context.Context, token string) (*Claims, error) {
	c, err := v.keys.Verify(ctx, token)
	if err != nil {
		return nil, err
	}
	if v.revoked.Revoked(c.ID) {
		return nil, Unauthenticated("token was revoked by a sign-out")
	}
	return c, nil
}

// NewVerifier checks tokens against keys and, when revoked is not nil,
// refuses those it holds.
func NewVerifier(keys *KeySet, revoked *Revocations) Verifier {
	if revoked == nil {
		return keys
	}
	return revocable{keys: keys, revoked: revoked}
}
