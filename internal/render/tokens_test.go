package render

import (
	"bytes"
	"crypto/rand"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/testgen"
	"github.com/switchboard-dev/switchboard/internal/tokenkeys"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

func TestKeyNames(t *testing.T) {
	tests := []struct {
		name     string
		platform *v1alpha1.Platform
		signing  string
		want     []string
	}{
		{"nothing set signs and verifies with v1", platform("shop"), "v1", []string{"v1"}},
		{"a signing key alone is the only key", platform("shop", testgen.WithSigningKey("blue")), "blue", []string{"blue"}},
		{"the next key introduced is accepted too", platform("shop", testgen.WithSigningKey("v1", "v1", "v2")), "v1", []string{"v1", "v2"}},
		{"the order does not follow the signing key", platform("shop", testgen.WithSigningKey("v2", "v2", "v1")), "v2", []string{"v1", "v2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SigningKeyName(tt.platform); got != tt.signing {
				t.Errorf("signing key %q, want %q", got, tt.signing)
			}
			if d := diffStrings(KeyNames(tt.platform), tt.want); d != "" {
				t.Error(d)
			}
		})
	}
}

func TestKeepTokenKeys(t *testing.T) {
	have := TokenKeys{"v1": testgen.TokenKey("v1"), "old": testgen.TokenKey("old")}
	tests := []struct {
		name      string
		platform  *v1alpha1.Platform
		kept      []string
		generated []string
	}{
		{"a key that exists is kept, one no longer named is dropped", platform("shop"), []string{"v1"}, nil},
		{"a newly named key is generated next to the kept one", platform("shop", testgen.WithSigningKey("v1", "v1", "v2")), []string{"v1"}, []string{"v2"}},
		{"a name dropped and named again is a new key", platform("shop", testgen.WithSigningKey("v2", "v2", "v3")), nil, []string{"v2", "v3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := KeepTokenKeys(tt.platform, have)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.kept)+len(tt.generated) {
				t.Fatalf("%d keys, want %d: %v", len(got), len(tt.kept)+len(tt.generated), keysOf(got))
			}
			for _, name := range tt.kept {
				if got[name] != have[name] {
					t.Errorf("key %s was not kept", name)
				}
			}
			for _, name := range tt.generated {
				if _, err := tokenkeys.ParsePrivate(got[name]); err != nil {
					t.Errorf("generated key %s: %v", name, err)
				}
				if got[name] == testgen.TokenKey(name) {
					t.Errorf("key %s is not fresh", name)
				}
			}
			if _, ok := got["old"]; ok {
				t.Error("a key no longer named was kept")
			}
		})
	}
	t.Run("the keys of a rendered Secret read back the same", func(t *testing.T) {
		p := platform("shop", testgen.WithSigningKey("v1", "v1", "v2"))
		keys, _ := KeepTokenKeys(p, nil)
		again, _ := KeepTokenKeys(p, TokenKeysFromSecret(tokenSigningSecret(p, keys)))
		for _, name := range []string{"v1", "v2"} {
			if again[name] != keys[name] {
				t.Errorf("key %s changed across a reconcile", name)
			}
		}
	})
}

func keysOf(k TokenKeys) []string {
	var out []string
	for name := range k {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

func TestKeepAdmin(t *testing.T) {
	tests := []struct {
		name      string
		have      Admin
		wantEmail string
		keepsPass bool
	}{
		{"nothing yet: the default email and a fresh password", Admin{}, DefaultAdminEmail, false},
		{"an email written by hand is kept", Admin{Email: "ops@example.com"}, "ops@example.com", false},
		{"both kept across reconciles", Admin{Email: "ops@example.com", Password: "chosen-by-a-person"}, "ops@example.com", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := KeepAdmin(tt.have, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if got.Email != tt.wantEmail {
				t.Errorf("email %q, want %q", got.Email, tt.wantEmail)
			}
			if tt.keepsPass && got.Password != tt.have.Password {
				t.Error("password not kept")
			}
			if !tt.keepsPass && (len(got.Password) != adminPasswordLength || strings.Trim(got.Password, credentialAlphabet) != "") {
				t.Errorf("generated password %q: want %d letters", got.Password, adminPasswordLength)
			}
			if err := got.validate(platform("shop")); err != nil {
				t.Error(err)
			}
		})
	}
	t.Run("round trip through the rendered Secret", func(t *testing.T) {
		if got := AdminFromSecret(adminSecret(platform("shop"), testAdmin)); got != testAdmin {
			t.Errorf("got %+v", got)
		}
	})
}

// The public keys are those of the accepted names, in name order, and
// match the Secret's private keys.
func TestTokenKeysConfigMap(t *testing.T) {
	p := platform("shop", testgen.WithSigningKey("v2", "v1", "v2"))
	objs := mustRender(t, p)
	cm := find[*corev1.ConfigMap](t, objs, "shop-token-keys")
	pubs, err := tokenkeys.ParsePublic(cm.Data[TokenKeysKey])
	if err != nil {
		t.Fatal(err)
	}
	sec := find[*corev1.Secret](t, objs, "shop-token-signing")
	if d := diffStrings(keysOf(TokenKeysFromSecret(sec)), []string{"v1", "v2"}); d != "" {
		t.Errorf("Secret keys: %s", d)
	}
	for i, name := range []string{"v1", "v2"} {
		priv, err := tokenkeys.ParsePrivate(string(sec.Data[name]))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pubs[i], tokenkeys.Public(priv)) {
			t.Errorf("public key %d is not %s's", i, name)
		}
	}
}

// Each rotation step rolls exactly the pods that read what it changes:
// introducing or dropping a key rolls every verifier; switching the
// signing key rolls the issuers alone; a new admin password rolls the
// issuers alone; a new lifetime changes the issuers' env.
func TestRotationRollsWhatItChanges(t *testing.T) {
	verifiers := catalog.Names(catalog.All())
	issuers := []string{"user", "account"}
	templates := func(p *v1alpha1.Platform, o Options) map[string]corev1.PodTemplateSpec {
		objs, err := Platform(p, o)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]corev1.PodTemplateSpec{}
		for _, obj := range objs {
			if d, ok := obj.(*appsv1.Deployment); ok {
				out[d.Labels[LabelComponent]] = d.Spec.Template
			}
		}
		return out
	}
	changed := func(a, b map[string]corev1.PodTemplateSpec) []string {
		var out []string
		for _, name := range catalog.Names(catalog.All()) {
			if !equalTemplates(a[name], b[name]) {
				out = append(out, name)
			}
		}
		return out
	}
	otherAdmin := testOptions()
	otherAdmin.Admin.Password = "anotherAdminPasswordQwErTy"
	steps := []struct {
		name     string
		from, to *v1alpha1.Platform
		opts     Options
		rolled   []string
	}{
		{"introducing the next key rolls every verifier",
			platform("shop"), platform("shop", testgen.WithSigningKey("v1", "v1", "v2")), testOptions(), verifiers},
		{"switching the signing key rolls the issuers",
			platform("shop", testgen.WithSigningKey("v1", "v1", "v2")), platform("shop", testgen.WithSigningKey("v2", "v1", "v2")), testOptions(), issuers},
		{"dropping the old key rolls every verifier",
			platform("shop", testgen.WithSigningKey("v2", "v1", "v2")), platform("shop", testgen.WithSigningKey("v2")), testOptions(), verifiers},
		{"a new token lifetime changes the issuers",
			platform("shop"), platform("shop", testgen.WithTokenTTL(15*time.Minute)), testOptions(), issuers},
		{"a new admin password rolls the issuers",
			platform("shop"), platform("shop"), otherAdmin, issuers},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if d := diffStrings(changed(templates(s.from, testOptions()), templates(s.to, s.opts)), s.rolled); d != "" {
				t.Error(d)
			}
		})
	}
}

func equalTemplates(a, b corev1.PodTemplateSpec) bool {
	return equality.Semantic.DeepEqual(a, b)
}
