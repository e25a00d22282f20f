package packaging

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/controllers"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/internal/testenv"
)

// TestRenderPrintsWhatTheOperatorApplies: for the sample Platform, the
// documents `switchboard render` prints are, one for one and in order, the
// bodies of the server-side apply requests the operator sends, given the
// same namespace, image and credentials. The only difference is the owner
// reference, which a Platform read from a file has no UID for.
func TestRenderPrintsWhatTheOperatorApplies(t *testing.T) {
	ns := newNamespace(t, "render-applied")
	sample := filepath.Join(root, "config", "samples", "platform.yaml")
	p := &v1alpha1.Platform{}
	if err := yaml.UnmarshalStrict(readFile(t, "config", "samples", "platform.yaml"), p); err != nil {
		t.Fatal(err)
	}
	p.Namespace = ns
	if err := k8s.Create(testCtx, p); err != nil {
		t.Fatal(err)
	}

	applies := &applyRecorder{}
	cl, _, err := testenv.ClientThrough(cfg, scheme, applies.wrap)
	if err != nil {
		t.Fatal(err)
	}
	r := &controllers.PlatformReconciler{Client: cl, APIReader: cl, Scheme: scheme, Recorder: discardEvents{}, ServicesImage: servicesImage}
	if _, err := r.Reconcile(testCtx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: p.Name}}); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(testCtx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	applied := applies.take(t)

	// Render with the secrets the operator generated: every Secret of the
	// Platform (broker, token keys, admin, CA, certificates, broker users).
	var secretsYAML []byte
	secrets := &unstructured.UnstructuredList{}
	secrets.SetAPIVersion("v1")
	secrets.SetKind("SecretList")
	if err := k8s.List(testCtx, secrets, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: render.PlatformSelector(p)}); err != nil {
		t.Fatal(err)
	}
	if len(secrets.Items) < 4 {
		t.Fatalf("the operator wrote %d Secrets", len(secrets.Items))
	}
	for _, secret := range secrets.Items {
		b, err := yaml.Marshal(secret.Object)
		if err != nil {
			t.Fatal(err)
		}
		secretsYAML = append(append(secretsYAML, "---\n"...), b...)
	}
	creds := filepath.Join(t.TempDir(), "secrets.yaml")
	if err := os.WriteFile(creds, secretsYAML, 0o600); err != nil {
		t.Fatal(err)
	}
	printed := decode(t, run(t, nil, switchboardBinary(t), "render", "-f", sample, "-n", ns, "--image", servicesImage, "--credentials", creds))

	if len(printed) != len(applied) {
		t.Fatalf("render printed %d objects, the operator applied %d", len(printed), len(applied))
	}
	owner := metav1.NewControllerRef(p, v1alpha1.GroupVersion.WithKind("Platform"))
	for i, u := range applied {
		refs := u.GetOwnerReferences()
		if len(refs) != 1 || !reflect.DeepEqual(refs[0], *owner) {
			t.Errorf("applied %s %s has owner references %+v, want only %+v", u.GetKind(), u.GetName(), refs, *owner)
		}
		unstructured.RemoveNestedField(u.Object, "metadata", "ownerReferences")
		if want := printed[i]; !reflect.DeepEqual(u.Object, want.Object) {
			got, _ := yaml.Marshal(u.Object)
			printedYAML, _ := yaml.Marshal(want.Object)
			t.Errorf("applied object %d (%s %s) differs from the printed one (%s %s):\napplied:\n%s\nprinted:\n%s",
				i, u.GetKind(), u.GetName(), want.GetKind(), want.GetName(), got, printedYAML)
		}
	}
}

// applyRecorder keeps the body of every server-side apply request sent
// through a rest.Config.
type applyRecorder struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (a *applyRecorder) wrap(rt http.RoundTripper) http.RoundTripper {
	return testenv.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method == http.MethodPatch && req.Header.Get("Content-Type") == string(types.ApplyPatchType) && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			b, err := io.ReadAll(body)
			if err != nil {
				return nil, err
			}
			a.mu.Lock()
			a.bodies = append(a.bodies, b)
			a.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

// take decodes the recorded bodies, as the YAML decoder reads documents.
func (a *applyRecorder) take(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*unstructured.Unstructured
	for _, b := range a.bodies {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(b, &u.Object); err != nil {
			t.Fatalf("apply body %s: %v", b, err)
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		t.Fatal("the operator sent no apply request")
	}
	return out
}

type discardEvents struct{}

func (discardEvents) Eventf(runtime.Object, runtime.Object, string, string, string, string, ...any) {}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// switchboardBinary builds cmd/switchboard once for the package.
func switchboardBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binPath = filepath.Join(buildDir, "switchboard")
		build := exec.Command("go", "build", "-o", binPath, "./cmd/switchboard")
		build.Dir = root
		buildOut, buildErr = build.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, strings.TrimSpace(string(buildOut)))
	}
	return binPath
}
