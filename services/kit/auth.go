package kit

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenIssuer is the iss claim of every platform token.
const TokenIssuer = "switchboard"

// Claims are what a platform token says about its bearer.
type Claims struct {
	Email string `json:"email,omitempty"`
	jwt.RegisteredClaims
}

// IssueToken signs an HS256 token for subject (a user or account id).
func IssueToken(key []byte, subject, email string, ttl time.Duration, now time.Time) (token string, expires time.Time, err error) {
	expires = now.Add(ttl).UTC().Truncate(time.Second)
	c := Claims{Email: email, RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    TokenIssuer,
		Subject:   subject,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(expires),
	}}
	token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
	return token, expires, err
}

// VerifyToken checks signature, algorithm, issuer and expiry.
func VerifyToken(key []byte, token string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(TokenIssuer),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(5*time.Second),
	)
	if err != nil {
		return nil, err
	}
	if c.Subject == "" {
		return nil, errors.New("token has no subject")
	}
	return &c, nil
}

// BearerToken extracts the token of an "Authorization: Bearer …" header.
func BearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// Authenticate verifies the request's bearer token and returns its claims,
// or a 401 *Error.
func Authenticate(key []byte, r *http.Request) (*Claims, error) {
	tok, ok := BearerToken(r)
	if !ok {
		return nil, Unauthenticated("missing bearer token")
	}
	c, err := VerifyToken(key, tok)
	if err != nil {
		return nil, Unauthenticated("invalid token: %v", err)
	}
	return c, nil
}

// RequireAuth wraps h so that it runs only with a valid token; the claims are
// then available through ClaimsFrom.
func RequireAuth(key []byte, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := Authenticate(key, r)
		if err != nil {
			WriteError(w, r, err)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxClaims, c)))
	}
}

// Subject is the id of the caller RequireAuth verified, "" on a route
// without it.
func Subject(r *http.Request) string {
	if c, ok := ClaimsFrom(r.Context()); ok {
		return c.Subject
	}
	return ""
}

// ClaimsFrom returns the claims RequireAuth verified.
func ClaimsFrom(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(ctxClaims).(*Claims)
	return c, ok
}
