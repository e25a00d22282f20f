// Package packaging tests what users install: the Helm chart, the kustomize
// config and `switchboard render` output are applied to a real API server
// (envtest), and the operator runs as the chart's ServiceAccount to prove
// the chart's RBAC is enough.
package packaging

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/internal/testenv"
)

// root is the repository root, relative to this package.
var root = filepath.Join("..", "..")

const fieldManager = "switchboard-packaging-test"

var (
	cfg      *rest.Config
	k8s      client.Client
	scheme   = runtime.NewScheme()
	testCtx  context.Context
	warnings = &warningRecorder{}
	helmBin  string
	// buildDir holds what the suite builds; it is removed when the suite ends.
	buildDir string
)

func TestMain(m *testing.M) { os.Exit(runSuite(m)) }

func runSuite(m *testing.M) int {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	utilruntime.Must(render.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	level := zapcore.Level(3) // quiet: the RBAC test provokes errors on purpose; TEST_VERBOSE=1 shows every log
	if os.Getenv("TEST_VERBOSE") != "" {
		level = -1
	}
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(level)))

	var err error
	if buildDir, err = os.MkdirTemp("", "switchboard-packaging-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(buildDir)
	if helmBin, err = tool("HELM", "helm", filepath.Join(root, "bin", "helm")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The chart's copy of the CRD is what users install with helm;
	// TestChartMatchesConfig proves it equals config/crd/bases.
	env, err := testenv.New(filepath.Join(root, "charts", "switchboard", "crds"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if cfg, err = env.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "starting envtest: %v\n", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	cfg.WarningHandler = warnings
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	testCtx = ctx
	return m.Run()
}

// tool finds a binary: the path in $env (the Makefile sets it to the one it
// built), else the fallback path, else one named name on PATH.
func tool(env, name, fallback string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", env, p, err)
		}
		return p, nil
	}
	if _, err := os.Stat(fallback); err == nil {
		return filepath.Abs(fallback)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found: run the tests with `make test` (which builds it into ./bin), or set %s", name, env)
}

// warningRecorder keeps every warning the API server sends, such as Pod
// Security violations in namespaces labelled warn=restricted.
type warningRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, text)
}

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.seen
	w.seen = nil
	return out
}

// run runs a command and returns its stdout; stderr goes into the error.
func run(t *testing.T, stdin io.Reader, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(testCtx, name, args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// helmTemplate renders the chart with helm, as `helm install` would.
func helmTemplate(t *testing.T, release, namespace string, set ...string) []byte {
	t.Helper()
	args := []string{"template", release, filepath.Join(root, "charts", "switchboard"), "--namespace", namespace, "--include-crds"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return run(t, nil, helmBin, args...)
}

// decode splits a YAML stream into objects, skipping empty documents.
func decode(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatalf("decoding %s: %v", doc, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		out = append(out, u)
	}
}

// newNamespace creates a namespace that warns on anything short of Pod
// Security "restricted", so applying a workload that violates it yields a
// warning the tests fail on.
func newNamespace(t *testing.T, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/warn":    "restricted",
		"pod-security.kubernetes.io/enforce": "restricted",
	}}}
	if err := k8s.Create(testCtx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return name
}

type applyMode int

const (
	dryRun applyMode = iota
	persist
)

// apply applies objs with server-side apply, CRDs and Namespaces first (and
// waits for the CRDs to be served), namespaced objects without a namespace
// into ns. It fails the test on any error or API server warning.
func apply(t *testing.T, c client.Client, objs []*unstructured.Unstructured, ns string, mode applyMode) {
	t.Helper()
	warnings.take()
	rank := func(u *unstructured.Unstructured) int {
		switch u.GetKind() {
		case "CustomResourceDefinition":
			return 0
		case "Namespace":
			return 1
		}
		return 2
	}
	for r := 0; r <= 2; r++ {
		for _, u := range objs {
			if rank(u) != r {
				continue
			}
			u = u.DeepCopy()
			namespaced, err := c.IsObjectNamespaced(u)
			if err != nil {
				t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
			}
			if namespaced && u.GetNamespace() == "" {
				u.SetNamespace(ns)
			}
			opts := []client.ApplyOption{client.FieldOwner(fieldManager), client.ForceOwnership}
			// A CRD or Namespace is needed for real by what follows it.
			if mode == dryRun && r == 2 {
				opts = append(opts, client.DryRunAll)
			}
			if err := c.Apply(testCtx, client.ApplyConfigurationFromUnstructured(u), opts...); err != nil {
				t.Errorf("applying %s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
			}
			if u.GetKind() == "CustomResourceDefinition" {
				waitEstablished(t, u.GetName())
			}
		}
	}
	if w := warnings.take(); len(w) > 0 {
		t.Errorf("the API server warned:\n  %s", strings.Join(w, "\n  "))
	}
}

func waitEstablished(t *testing.T, name string) {
	t.Helper()
	eventually(t, 30*time.Second, "CRD "+name+" established", func() error {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := k8s.Get(testCtx, client.ObjectKey{Name: name}, crd); err != nil {
			return err
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return nil
			}
		}
		return errors.New("not established")
	})
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after %s: %v", what, timeout, err)
}

func kinds(objs []*unstructured.Unstructured) map[string]int {
	out := map[string]int{}
	for _, u := range objs {
		out[u.GetKind()]++
	}
	return out
}

func find(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, u := range objs {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

func readFile(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{root}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
