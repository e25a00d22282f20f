package kit

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// TokenIssuer is the iss claim of every platform token.
const TokenIssuer = "switchboard"

// RoleAdmin is the role of platform staff: product, stock and refund
// operations are theirs alone.
const RoleAdmin = "admin"

// Claims are what a platform token says about its bearer.
type Claims struct {
	Email string   `json:"email,omitempty"`
	Roles []string `json:"roles,omitempty"`
	jwt.RegisteredClaims
}

// HasRole reports whether the token grants role.
func (c *Claims) HasRole(role string) bool { return slices.Contains(c.Roles, role) }

// IsAdmin reports whether the bearer is platform staff.
func (c *Claims) IsAdmin() bool { return c.HasRole(RoleAdmin) }

// Verifier checks a bearer token and returns what it says. Every service
// whose catalog row verifies tokens gets one in Deps.Tokens: the public keys
// of TOKEN_KEYS, and, where the service reads the revocation bucket, a
// refusal of signed-out tokens.
type Verifier interface {
	Verify(ctx context.Context, token string) (*Claims, error)
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
func Authenticate(v Verifier, r *http.Request) (*Claims, error) {
	tok, ok := BearerToken(r)
	if !ok {
		return nil, Unauthenticated("missing bearer token")
	}
	c, err := v.Verify(r.Context(), tok)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, e
		}
		return nil, Unauthenticated("invalid token: %v", err)
	}
	return c, nil
}

// RequireAuth wraps h so that it runs only with a valid token; the claims are
// then available through ClaimsFrom.
func RequireAuth(v Verifier, h http.HandlerFunc) http.HandlerFunc {
	return requireClaims(v, func(*Claims) error { return nil }, h)
}

// RequireAdmin is RequireAuth for staff only: a valid token without the
// admin role is a 403.
func RequireAdmin(v Verifier, h http.HandlerFunc) http.HandlerFunc {
	return requireClaims(v, func(c *Claims) error {
		if !c.IsAdmin() {
			return Forbidden("this operation is for platform staff")
		}
		return nil
	}, h)
}

func requireClaims(v Verifier, allow func(*Claims) error, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := Authenticate(v, r)
		if err == nil {
			err = allow(c)
		}
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
