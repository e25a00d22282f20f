package kit_test

import (
	"context"
	"net/http"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

func TestPasswordsClaimAndVerify(t *testing.T) {
	b := kittest.StartNATS(t, "")
	cfg, _ := kit.LoadConfig("user", kit.Needs{}, kit.MapEnv(b.Env()))
	bus, err := kit.ConnectBus(context.Background(), cfg, quiet, kit.NewMetrics("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	emails, _ := kit.NewStore[kit.EmailClaim](bus.Bucket("user-emails"))
	pw, err := kit.NewPasswords(emails, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hashes := map[string][]byte{} // the owners' records
	exists := func(_ context.Context, id string) (bool, error) { _, ok := hashes[id]; return ok, nil }
	hashOf := func(_ context.Context, id string) ([]byte, error) {
		if h, ok := hashes[id]; ok {
			return h, nil
		}
		return nil, kit.ErrNotFound
	}

	h, _ := pw.Hash("correct-horse")
	if err := pw.Claim(ctx, "Ada@Example.com", "u1", exists); err != nil {
		t.Fatal(err)
	}
	hashes["u1"] = h

	t.Run("a live claim is a 409 on email, whatever the case", func(t *testing.T) {
		e := kit.AsError(pw.Claim(ctx, "ada@example.COM", "u2", exists))
		if e.Status != http.StatusConflict || e.Code != kit.CodeEmailTaken || e.Field != "email" {
			t.Errorf("got %+v", e)
		}
	})
	t.Run("a claim whose owner was never written is taken over", func(t *testing.T) {
		if err := pw.Claim(ctx, "grace@example.com", "ghost", exists); err != nil {
			t.Fatal(err)
		}
		if err := pw.Claim(ctx, "grace@example.com", "u3", exists); err != nil {
			t.Errorf("stale claim not taken over: %v", err)
		}
	})
	for _, tc := range []struct {
		name, email, password, wantID string
		wantStatus                    int
	}{
		{"the right password gives the owner", "ADA@example.com", "correct-horse", "u1", 0},
		{"a wrong password is a 401", "ada@example.com", "wrong-horse", "", http.StatusUnauthorized},
		{"an unknown email is the same 401", "nobody@example.com", "correct-horse", "", http.StatusUnauthorized},
		{"a claim without its record is the same 401", "grace@example.com", "correct-horse", "", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := pw.Verify(ctx, tc.email, tc.password, hashOf)
			if tc.wantStatus == 0 {
				if err != nil || id != tc.wantID {
					t.Errorf("Verify = %q, %v; want %q", id, err, tc.wantID)
				}
				return
			}
			if e := kit.AsError(err); e.Status != tc.wantStatus || e.Code != kit.CodeInvalidCredentials {
				t.Errorf("Verify error %+v, want %d invalid_credentials", e, tc.wantStatus)
			}
		})
	}
}
