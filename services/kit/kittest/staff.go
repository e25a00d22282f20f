package kittest

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// StaffToken signs a token for subject with the admin role, with the key
// the services verify with: what tests need to call the admin routes.
func StaffToken(t testing.TB, key []byte, subject string) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, kit.Claims{Roles: []string{kit.RoleAdmin}, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: kit.TokenIssuer, Subject: subject, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
