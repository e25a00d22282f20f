package kittest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/internal/tokenkeys"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// The test token keys are fixed, so a token issued by one test service
// verifies at any other, as on a platform.
var (
	signingKey = keyFromSeed("kittest token signing key")
	// OtherSigningKey is a key no test service trusts.
	OtherSigningKey = keyFromSeed("kittest key nobody trusts")
)

func keyFromSeed(s string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(s))
	return ed25519.NewKeyFromSeed(seed[:])
}

// SigningKeyPEM is the test signing key, as TOKEN_SIGNING_KEY carries it.
func SigningKeyPEM() string {
	s, err := tokenkeys.EncodePrivate(signingKey)
	if err != nil {
		panic(err)
	}
	return s
}

// TokenKeysPEM is the test verification key set, as TOKEN_KEYS carries it.
func TokenKeysPEM() string {
	s, err := tokenkeys.EncodePublic(tokenkeys.Public(signingKey))
	if err != nil {
		panic(err)
	}
	return s
}

// Signer signs with the test key, for catalog.DefaultTokenTTL.
func Signer(t testing.TB) *kit.Signer {
	t.Helper()
	s, err := kit.NewSigner(signingKey, catalog.DefaultTokenTTL)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// KeySet verifies tokens of the test key, without revocation.
func KeySet(t testing.TB) *kit.KeySet {
	t.Helper()
	ks, err := kit.NewKeySet(tokenkeys.Public(signingKey))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// Token is a customer's token for subject, signed with the test key as
// user or account would sign it at login; StaffToken is its admin twin.
// Tests that need a token they did not get from a login go through these,
// or Issue for a platform with keys of its own (services/local).
func Token(t testing.TB, subject string) string {
	t.Helper()
	return Issue(t, Signer(t), subject)
}

// StaffToken is a token for subject with the admin role.
func StaffToken(t testing.TB, subject string) string {
	t.Helper()
	return Issue(t, Signer(t), subject, kit.RoleAdmin)
}

// Issue signs a token for subject with roles, with signer.
func Issue(t testing.TB, signer *kit.Signer, subject string, roles ...string) string {
	t.Helper()
	tok, err := signer.Issue(time.Now(), subject, subject+"@example.com", roles)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}
