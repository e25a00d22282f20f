package controllers_test

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/internal/testgen"
	"github.com/switchboard-dev/switchboard/internal/tokenkeys"
)

// keyState is what the cluster holds of a Platform's token keys.
type keyState struct {
	private map[string]string // <p>-token-signing, by name
	public  []string          // kids in <p>-token-keys
	signing string            // the key name the issuer's TOKEN_SIGNING_KEY refers to
}

func readKeys(t *testing.T, ns, p, issuer string) keyState {
	t.Helper()
	var st keyState
	sec := &corev1.Secret{}
	mustGet(t, ns, p+"-token-signing", sec)
	st.private = map[string]string{}
	for name, v := range sec.Data {
		if _, err := tokenkeys.ParsePrivate(string(v)); err != nil {
			t.Fatalf("Secret %s-token-signing key %s: %v", p, name, err)
		}
		st.private[name] = string(v)
	}
	cm := &corev1.ConfigMap{}
	mustGet(t, ns, p+"-token-keys", cm)
	pubs, err := tokenkeys.ParsePublic(cm.Data[render.TokenKeysKey])
	if err != nil {
		t.Fatalf("ConfigMap %s-token-keys: %v", p, err)
	}
	for _, k := range pubs {
		st.public = append(st.public, tokenkeys.KeyID(k))
	}
	d := &appsv1.Deployment{}
	mustGet(t, ns, p+"-"+issuer, d)
	if ref := envByName(d.Spec.Template.Spec.Containers[0])["TOKEN_SIGNING_KEY"].ValueFrom; ref != nil && ref.SecretKeyRef != nil {
		st.signing = ref.SecretKeyRef.Key
	}
	return st
}

func kidOf(t *testing.T, privatePEM string) string {
	t.Helper()
	k, err := tokenkeys.ParsePrivate(privatePEM)
	if err != nil {
		t.Fatal(err)
	}
	return tokenkeys.KeyID(tokenkeys.Public(k))
}

func TestTokenKeysAndAdminAreGeneratedOnceAndKept(t *testing.T) {
	ns := newNamespace(t)
	r, _ := newDirectReconciler(t)
	p := createAndReconcile(t, r, testgen.Platform("pf", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce)))
	first := readKeys(t, ns, "pf", "user")
	if len(first.private) != 1 || first.private["v1"] == "" || first.signing != "v1" {
		t.Fatalf("first keys: %+v", first)
	}
	if !slices.Equal(first.public, []string{kidOf(t, first.private["v1"])}) {
		t.Fatalf("public keys %v are not the signing key's", first.public)
	}
	admin := &corev1.Secret{}
	mustGet(t, ns, "pf-admin", admin)
	if string(admin.Data["email"]) != render.DefaultAdminEmail || len(admin.Data["password"]) < 16 {
		t.Fatalf("admin Secret %q", admin.Data)
	}

	p.Spec.Services = map[string]v1alpha1.ServiceSpec{"order": {Replicas: ptr.To[int32](3)}}
	if err := k8s.Update(testCtx, p); err != nil {
		t.Fatal(err)
	}
	reconcile(t, r, p)
	if again := readKeys(t, ns, "pf", "user"); again.private["v1"] != first.private["v1"] {
		t.Error("a spec change regenerated the signing key")
	}
	kept := &corev1.Secret{}
	mustGet(t, ns, "pf-admin", kept)
	if !mapsEqual(admin.Data, kept.Data) {
		t.Error("a spec change regenerated the first admin")
	}

	// A person sets the admin's email and clears the password: the email
	// is theirs to keep, the password is generated again.
	kept.Data = map[string][]byte{"email": []byte("ops@example.com")}
	if err := k8s.Update(testCtx, kept); err != nil {
		t.Fatal(err)
	}
	reconcile(t, r, p)
	healed := &corev1.Secret{}
	mustGet(t, ns, "pf-admin", healed)
	if string(healed.Data["email"]) != "ops@example.com" || len(healed.Data["password"]) < 16 || string(healed.Data["password"]) == string(admin.Data["password"]) {
		t.Errorf("after the edit the admin Secret holds %q", healed.Data)
	}
	user := &appsv1.Deployment{}
	mustGet(t, ns, "pf-user", user)
	before := &appsv1.Deployment{}
	mustGet(t, ns, "pf-order", before)
	if user.Spec.Template.Annotations[render.AnnotationAdminHash] == "" {
		t.Error("user's pods do not follow the admin Secret")
	}
	if _, ok := before.Spec.Template.Annotations[render.AnnotationAdminHash]; ok {
		t.Error("order's pods follow the admin Secret they do not read")
	}
}

// The procedure of docs/auth.md, step by step: every key survives the
// reconciles it should, the signing key moves only to a key already
// trusted, and the dropped key's private half leaves the cluster.
func TestSigningKeyRotation(t *testing.T) {
	ns := newNamespace(t)
	r, _ := newDirectReconciler(t)
	p := createAndReconcile(t, r, testgen.Platform("pf", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadStreaming)))
	start := readKeys(t, ns, "pf", "account")
	v1 := start.private["v1"]

	step := func(t *testing.T, signing string, verification ...string) keyState {
		t.Helper()
		p = get(t, p)
		p.Spec.Auth.SigningKey = signing
		p.Spec.Auth.VerificationKeys = verification
		if err := k8s.Update(testCtx, p); err != nil {
			t.Fatal(err)
		}
		reconcile(t, r, p)
		return readKeys(t, ns, "pf", "account")
	}

	t.Run("switching straight to a key no service trusts yet is refused", func(t *testing.T) {
		p = get(t, p)
		p.Spec.Auth.SigningKey = "v2"
		err := k8s.Update(testCtx, p)
		if err == nil || !strings.Contains(err.Error(), "must already be listed in auth.verificationKeys") {
			t.Fatalf("update: %v", err)
		}
	})
	var v2 string
	t.Run("introducing the next key keeps the first and publishes both", func(t *testing.T) {
		st := step(t, "v1", "v1", "v2")
		v2 = st.private["v2"]
		if st.private["v1"] != v1 || v2 == "" || st.signing != "v1" {
			t.Fatalf("keys %v, signing %s", keysOf(st.private), st.signing)
		}
		if want := []string{kidOf(t, v1), kidOf(t, v2)}; !slices.Equal(st.public, want) {
			t.Fatalf("public kids %v, want %v", st.public, want)
		}
	})
	t.Run("switching the signing key changes what signs, not what verifies", func(t *testing.T) {
		st := step(t, "v2", "v1", "v2")
		if st.private["v1"] != v1 || st.private["v2"] != v2 || st.signing != "v2" {
			t.Fatalf("keys %v, signing %s", keysOf(st.private), st.signing)
		}
		if want := []string{kidOf(t, v1), kidOf(t, v2)}; !slices.Equal(st.public, want) {
			t.Fatalf("public kids %v, want %v", st.public, want)
		}
		account := &appsv1.Deployment{}
		mustGet(t, ns, "pf-account", account)
		if got := account.Spec.Template.Annotations[render.AnnotationSigningKey]; got != kidOf(t, v2) {
			t.Errorf("account's pods are annotated with signing key %s, want %s", got, kidOf(t, v2))
		}
	})
	t.Run("dropping the old key removes it everywhere", func(t *testing.T) {
		st := step(t, "v2")
		if len(st.private) != 1 || st.private["v2"] != v2 || st.signing != "v2" {
			t.Fatalf("keys %v, signing %s", keysOf(st.private), st.signing)
		}
		if want := []string{kidOf(t, v2)}; !slices.Equal(st.public, want) {
			t.Fatalf("public kids %v, want %v", st.public, want)
		}
	})
	t.Run("a dropped name listed again is a new key", func(t *testing.T) {
		st := step(t, "v2", "v2", "v1")
		if st.private["v1"] == "" || st.private["v1"] == v1 {
			t.Fatal("the old key came back")
		}
	})
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Before asymmetric tokens, <p>-auth also held the shared token key. The
// operator applied it, so after an upgrade the operator removes it.
func TestTheOldSharedTokenKeyIsRemoved(t *testing.T) {
	ns := newNamespace(t)
	r, _ := newDirectReconciler(t)
	p := createAndReconcile(t, r, testgen.Platform("pf", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce)))
	sec := &corev1.Secret{}
	mustGet(t, ns, "pf-auth", sec)
	// What the operator applied then: today's Secret plus the old key.
	then := sec.DeepCopy()
	then.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	then.Data["auth-key"] = []byte("a-shared-hs256-key-of-old")
	applied, err := render.Applied(then)
	if err != nil {
		t.Fatal(err)
	}
	old := &unstructured.Unstructured{Object: applied}
	if err := k8s.Apply(testCtx, client.ApplyConfigurationFromUnstructured(old), client.FieldOwner(render.FieldManager), client.ForceOwnership); err != nil {
		t.Fatal(err)
	}
	reconcile(t, r, p)
	after := &corev1.Secret{}
	mustGet(t, ns, "pf-auth", after)
	if _, ok := after.Data["auth-key"]; ok {
		t.Error("the shared token key of older versions is still in pf-auth")
	}
	if !mapsEqual(after.Data, sec.Data) {
		t.Error("removing the old key changed the broker's credentials")
	}
}
