package kit_test

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/internal/tokenkeys"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

func mustKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	k, err := tokenkeys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSigner(t *testing.T, k ed25519.PrivateKey, ttl time.Duration) *kit.Signer {
	t.Helper()
	s, err := kit.NewSigner(k, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	current, next := mustKey(t), mustKey(t)
	signer := mustSigner(t, current, time.Hour)
	keys, err := kit.NewKeySet(tokenkeys.Public(current))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := signer.Issue(now, "u1", "ada@example.com", []string{kit.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a token carries who, roles, id and lifetime, under the signer's kid", func(t *testing.T) {
		c, err := keys.Verify(ctx, tok.Token)
		if err != nil {
			t.Fatal(err)
		}
		if c.Subject != "u1" || c.Email != "ada@example.com" || !c.IsAdmin() || c.ID != tok.ID || c.Issuer != kit.TokenIssuer {
			t.Fatalf("claims %+v", c)
		}
		if got := c.ExpiresAt.Sub(c.IssuedAt.Time); got != time.Hour {
			t.Fatalf("lifetime %s, want 1h", got)
		}
		parsed, _, _ := jwt.NewParser().ParseUnverified(tok.Token, &kit.Claims{})
		if parsed.Header["kid"] != signer.KeyID() || parsed.Header["alg"] != "EdDSA" {
			t.Fatalf("header %v", parsed.Header)
		}
	})
	t.Run("two tokens never share an id", func(t *testing.T) {
		again, _ := signer.Issue(now, "u1", "", nil)
		if again.ID == tok.ID {
			t.Fatal("same jti twice")
		}
	})

	other := mustSigner(t, kittest.OtherSigningKey, time.Hour)
	forged, _ := other.Issue(now, "u1", "", []string{kit.RoleAdmin})
	expired, _ := signer.Issue(now.Add(-2*time.Hour), "u1", "", nil)
	onNext, _ := mustSigner(t, next, time.Hour).Issue(now, "u2", "", nil)
	sameKidOtherKey := func() string {
		// A token naming the trusted kid but signed by another key.
		c := kit.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: kit.TokenIssuer, Subject: "u1", ID: "abc",
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}}
		tk := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		tk.Header["kid"] = signer.KeyID()
		s, _ := tk.SignedString(kittest.OtherSigningKey)
		return s
	}()
	hmacWithPublicKey := func() string {
		// The classic confusion: HS256 keyed with the public key's bytes.
		c := kit.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: kit.TokenIssuer, Subject: "u1", ID: "abc",
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}}
		tk := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
		tk.Header["kid"] = signer.KeyID()
		s, _ := tk.SignedString([]byte(tokenkeys.Public(current)))
		return s
	}()
	craft := func(c kit.Claims) string {
		tk := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		tk.Header["kid"] = signer.KeyID()
		s, _ := tk.SignedString(current)
		return s
	}
	reg := func(sub, id, iss string, iat, exp time.Time) kit.Claims {
		return kit.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: iss, Subject: sub, ID: id,
			IssuedAt: jwt.NewNumericDate(iat), ExpiresAt: jwt.NewNumericDate(exp)}}
	}
	refused := []struct {
		name, token, want string
	}{
		{"a token of an untrusted key", forged.Token, "unknown key id"},
		{"a trusted kid over another key's signature", sameKidOtherKey, "signature is invalid"},
		{"HS256 keyed with the public key", hmacWithPublicKey, "signing method HS256 is invalid"},
		{"an expired token", expired.Token, "token is expired"},
		{"a token of the next key before it is trusted", onNext.Token, "unknown key id"},
		{"a token without an id cannot be revoked", craft(reg("u1", "", kit.TokenIssuer, now, now.Add(time.Hour))), "no valid id"},
		{"a token without a subject", craft(reg("", "abc", kit.TokenIssuer, now, now.Add(time.Hour))), "no valid subject"},
		{"another issuer's token", craft(reg("u1", "abc", "elsewhere", now, now.Add(time.Hour))), "invalid issuer"},
		{"a token outliving its revocation entry", craft(reg("u1", "abc", kit.TokenIssuer, now, now.Add(catalog.MaxTokenTTL+time.Minute))), "lasts longer than"},
		{"garbage", "not.a.token", "malformed"},
	}
	for _, tt := range refused {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			if _, err := keys.Verify(ctx, tt.token); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}

	t.Run("during a rotation both keys verify", func(t *testing.T) {
		both, err := kit.NewKeySet(tokenkeys.Public(current), tokenkeys.Public(next))
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range []string{tok.Token, onNext.Token} {
			if _, err := both.Verify(ctx, tk); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("a signer refuses a lifetime past the revocation memory", func(t *testing.T) {
		if _, err := kit.NewSigner(current, catalog.MaxTokenTTL+time.Second); err == nil {
			t.Fatal("accepted")
		}
	})
}

func TestRequireAuthAndAdmin(t *testing.T) {
	v := kittest.KeySet(t)
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
	tests := []struct {
		name   string
		h      http.HandlerFunc
		token  string
		status int
	}{
		{"a customer's token passes RequireAuth", kit.RequireAuth(v, ok), kittest.Token(t, "u1"), http.StatusNoContent},
		{"no token is a 401", kit.RequireAuth(v, ok), "", http.StatusUnauthorized},
		{"a customer's token is a 403 for staff routes", kit.RequireAdmin(v, ok), kittest.Token(t, "u1"), http.StatusForbidden},
		{"an admin's token passes RequireAdmin", kit.RequireAdmin(v, ok), kittest.StaffToken(t, "a1"), http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.token != "" {
				r.Header.Set("Authorization", "Bearer "+tt.token)
			}
			w := httptest.NewRecorder()
			tt.h(w, r)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
		})
	}
}

// A sign-out at one service is seen by another service's verifier through
// the shared bucket: the issuer refuses the token at once, the other as
// soon as the broker delivers the revocation.
func TestRevocationsReachEveryVerifier(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := kittest.StartNATS(t, "")
	issuerBus, readerBus := b.Bus(t, "user"), b.Bus(t, "product")

	// An entry written before a verifier starts is loaded before it serves.
	early, _ := kittest.Signer(t).Issue(time.Now(), "u0", "", nil)
	earlyClaims, _ := kittest.KeySet(t).Verify(ctx, early.Token)
	issuerRevs, err := kit.WatchRevocations(ctx, issuerBus.Bucket(catalog.TokenRevocations), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := issuerRevs.Revoke(ctx, earlyClaims); err != nil {
		t.Fatal(err)
	}
	readerRevs, err := kit.WatchRevocations(ctx, readerBus.Bucket(catalog.TokenRevocations), quiet)
	if err != nil {
		t.Fatal(err)
	}
	issuer := kit.NewVerifier(kittest.KeySet(t), issuerRevs)
	reader := kit.NewVerifier(kittest.KeySet(t), readerRevs)
	if _, err := reader.Verify(ctx, early.Token); err == nil {
		t.Fatal("a token revoked before the verifier started verified")
	}

	tok := kittest.Token(t, "u1")
	c, err := reader.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	// Sign-out through the handler, as POST /logout does.
	r := httptest.NewRequest("POST", "/logout", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	kit.RequireAuth(issuer, issuerRevs.Logout)(w, r)
	if w.Code != http.StatusNoContent {
		t.Fatalf("logout answered %d: %s", w.Code, w.Body)
	}
	if _, err := issuer.Verify(ctx, tok); kit.AsError(err).Code != kit.CodeUnauthenticated {
		t.Fatalf("the issuer still accepts the revoked token: %v", err)
	}
	kittest.Eventually(t, 5*time.Second, "the other service to refuse the revoked token", func() bool {
		_, err := reader.Verify(ctx, tok)
		return err != nil
	})
	if !readerRevs.Revoked(c.ID) {
		t.Fatal("revocation not recorded")
	}
	if _, err := reader.Verify(ctx, kittest.Token(t, "u1")); err != nil {
		t.Fatalf("a new token of the same user is refused: %v", err)
	}
	if err := readerRevs.Ready(); err != nil {
		t.Fatal(err)
	}
	cancel()
	kittest.Eventually(t, 5*time.Second, "the watch to stop with its context", func() bool { return readerRevs.Ready() != nil })
}
