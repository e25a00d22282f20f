package kittest

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// Token signs an hour-long customer token for subject with key, as the
// issuing services do; StaffToken is its admin twin. Tests that need a
// token they did not get from a login go through these two, so a change of
// signing scheme is a change here.
func Token(t testing.TB, key []byte, subject string) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, kit.Claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer: kit.TokenIssuer, Subject: subject, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
