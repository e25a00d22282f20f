package kittest

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// Token signs an hour-long token for subject with key, as the issuing
// services do, carrying roles (kit.RoleAdmin for staff). Every test that
// needs a token it did not get from a login goes through here, so a change
// of signing scheme is a change of this one function.
func Token(t testing.TB, key, subject string, roles ...string) string {
	t.Helper()
	now := time.Now()
	c := kit.Claims{Roles: roles, RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    kit.TokenIssuer,
		Subject:   subject,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// AdminToken is Token for a member of staff.
func AdminToken(t testing.TB, key, subject string) string {
	t.Helper()
	return Token(t, key, subject, kit.RoleAdmin)
}
