package controllers_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/controllers"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/internal/testgen"
)

// testBrokerUsers keeps the broker users of every reconciler of the suite
// at bcrypt's least cost: the passwords are as random as in production,
// and the suite creates many Platforms.
var testBrokerUsers = &render.BrokerUserKeeper{Cost: bcrypt.MinCost}

// loadSample reads a Platform from a YAML file under config/samples.
func loadSample(t *testing.T, path, namespace string) *v1alpha1.Platform {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "config", "samples", path))
	if err != nil {
		t.Fatal(err)
	}
	p := &v1alpha1.Platform{}
	if err := yaml.UnmarshalStrict(data, p); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	p.Namespace = namespace
	return p
}

// createAndReconcile creates p, reconciles it once with r and returns the
// Platform as stored.
func createAndReconcile(t *testing.T, r *controllers.PlatformReconciler, p *v1alpha1.Platform) *v1alpha1.Platform {
	t.Helper()
	if err := k8s.Create(testCtx, p); err != nil {
		t.Fatalf("creating Platform %s: %v", p.Name, err)
	}
	reconcile(t, r, p)
	return get(t, p)
}

func reconcile(t *testing.T, r *controllers.PlatformReconciler, p *v1alpha1.Platform) {
	t.Helper()
	if _, err := r.Reconcile(testCtx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}}); err != nil {
		t.Fatalf("reconcile %s: %v", p.Name, err)
	}
}

func get(t *testing.T, p *v1alpha1.Platform) *v1alpha1.Platform {
	t.Helper()
	out := &v1alpha1.Platform{}
	if err := k8s.Get(testCtx, client.ObjectKeyFromObject(p), out); err != nil {
		t.Fatal(err)
	}
	return out
}

// desiredFor renders p the way the reconciler does, for the names and kinds
// of the expected children. Credentials and keys do not affect names.
func desiredFor(t testing.TB, p *v1alpha1.Platform) []client.Object {
	t.Helper()
	keys := render.TokenKeys{}
	for _, name := range render.KeyNames(p) {
		keys[name] = testgen.TokenKey(name)
	}
	users, _, err := testBrokerUsers.Keep(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	identity, _, err := render.KeepIdentity(p, render.Identity{}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := render.Platform(p, render.Options{
		ServicesImage: testImage,
		Credentials:   render.Credentials{NATSUser: "user-for-names-only", NATSPassword: "password-for-names-only", SystemUser: "system-user-for-names-only", SystemPassword: "system-password-for-names-only"},
		BrokerUsers:   users,
		Identity:      identity,
		TokenKeys:     keys,
		Admin:         render.Admin{Email: "names@example.com", Password: "password-for-names-only"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// fetch reads the live copy of a desired object, by its type and key.
func fetch(t *testing.T, want client.Object) (client.Object, error) {
	t.Helper()
	live := want.DeepCopyObject().(client.Object)
	err := k8s.Get(testCtx, client.ObjectKeyFromObject(want), live)
	return live, err
}
