package render

import (
	"bytes"
	"maps"
	"slices"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/testgen"
)

func keep(t *testing.T, k *BrokerUserKeeper, p *v1alpha1.Platform, have BrokerUsers) (BrokerUsers, BrokerUsersReport) {
	t.Helper()
	users, rep, err := k.Keep(p, have)
	if err != nil {
		t.Fatalf("Keep: %v", err)
	}
	return users, rep
}

func TestBrokerUserKeeper(t *testing.T) {
	p := platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce))
	k := &BrokerUserKeeper{Cost: bcrypt.MinCost}
	first, rep := keep(t, k, p, nil)
	want := []string{"user", "product", "order", "payment", "notification"}
	if !slices.Equal(rep.Generated, want) || len(rep.Rehashed) != 0 {
		t.Errorf("first keep generated %v, rehashed %v; want %v generated", rep.Generated, rep.Rehashed, want)
	}
	if _, ok := first["gateway"]; ok {
		t.Error("the gateway got a broker user")
	}
	passwords := map[string]bool{}
	for svc, u := range first {
		if u.User != svc || !natsCredential.MatchString(u.Password) || len(u.Password) != credentialLength {
			t.Errorf("%s: user %q password %q", svc, u.User, u.Password)
		}
		if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(u.Password)) != nil {
			t.Errorf("%s: the hash does not match the password", svc)
		}
		if c, _ := bcrypt.Cost([]byte(u.PasswordHash)); c != bcrypt.MinCost {
			t.Errorf("%s: cost %d", svc, c)
		}
		passwords[u.Password] = true
	}
	if len(passwords) != len(first) {
		t.Error("two services share a password")
	}
	if got, _ := keep(t, k, p, first); !maps.Equal(got, first) {
		t.Error("kept users changed")
	}

	tests := []struct {
		name      string
		platform  *v1alpha1.Platform
		have      func() BrokerUsers
		generated []string
		rehashed  []string
		// changed are the services whose user differs from first.
		changed []string
	}{
		{"kept as they are", p, func() BrokerUsers { return first }, nil, nil, nil},
		{"a deleted Secret is a new password and hash: a rotation", p, func() BrokerUsers {
			h := maps.Clone(first)
			delete(h, "order")
			return h
		}, []string{"order"}, nil, []string{"order"}},
		{"a password replaced by hand gets a new hash", p, func() BrokerUsers {
			h := maps.Clone(first)
			u := h["payment"]
			u.Password = "aPasswordSetByAnOperatorPerson"
			h["payment"] = u
			return h
		}, nil, []string{"payment"}, []string{"payment"}},
		{"a lost hash is made again from the kept password", p, func() BrokerUsers {
			h := maps.Clone(first)
			u := h["user"]
			u.PasswordHash = ""
			h["user"] = u
			return h
		}, nil, nil, []string{"user"}},
		{"a user renamed by hand is named after its service again", p, func() BrokerUsers {
			h := maps.Clone(first)
			u := h["product"]
			u.User = "admin"
			h["product"] = u
			return h
		}, nil, nil, nil},
		{"a disabled service's user is dropped", platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithService("notification", testgen.Disabled())),
			func() BrokerUsers { return first }, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rep := keep(t, k, tt.platform, tt.have())
			if !slices.Equal(rep.Generated, tt.generated) || !slices.Equal(rep.Rehashed, tt.rehashed) {
				t.Errorf("generated %v rehashed %v, want %v and %v", rep.Generated, rep.Rehashed, tt.generated, tt.rehashed)
			}
			for _, s := range EnabledServices(tt.platform) {
				u, ok := got[s.Name]
				if !s.UsesBroker() {
					if ok {
						t.Errorf("%s got a user", s.Name)
					}
					continue
				}
				if u.User != s.Name || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(u.Password)) != nil {
					t.Errorf("%s: user %q, hash matches %v", s.Name, u.User, bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(u.Password)) == nil)
				}
				if changed := u.Password != first[s.Name].Password || u.PasswordHash != first[s.Name].PasswordHash; changed != slices.Contains(tt.changed, s.Name) {
					t.Errorf("%s: changed %v", s.Name, changed)
				}
			}
			if len(got) != len(slices.DeleteFunc(EnabledServices(tt.platform), func(s ServicePlan) bool { return !s.UsesBroker() })) {
				t.Errorf("%d users for %v", len(got), ServiceNames(tt.platform))
			}
		})
	}
}

// A keeper checks a stored hash with bcrypt once, then remembers it.
func TestBrokerUserKeeperChecksEachHashOnce(t *testing.T) {
	p := platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce))
	first, _ := keep(t, &BrokerUserKeeper{Cost: bcrypt.MinCost}, p, nil)
	k := &BrokerUserKeeper{}
	keep(t, k, p, first)
	n := 0
	k.checked.Range(func(any, any) bool { n++; return true })
	if n != len(first) {
		t.Errorf("%d checks remembered, want %d", n, len(first))
	}
	// A remembered pair is trusted without bcrypt; a changed pair is not.
	forged := maps.Clone(first)
	u := forged["order"]
	u.PasswordHash = first["payment"].PasswordHash
	forged["order"] = u
	got, rep := keep(t, k, p, forged)
	if !slices.Equal(rep.Rehashed, []string{"order"}) || bcrypt.CompareHashAndPassword([]byte(got["order"].PasswordHash), []byte(u.Password)) != nil {
		t.Errorf("a hash of another password was kept: rehashed %v", rep.Rehashed)
	}
}

func TestBrokerUserKeeperFailsWithoutRandomness(t *testing.T) {
	k := &BrokerUserKeeper{Rand: bytes.NewReader(nil), Cost: bcrypt.MinCost}
	if _, _, err := k.Keep(platform("shop"), nil); err == nil {
		t.Fatal("users made without randomness")
	}
}
