package controllers_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/controllers"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/internal/testenv"
)

// The suite runs one real kube-apiserver and etcd (envtest) for the package.
// Most tests call Reconcile directly, which is deterministic; the tests in
// liveNamespace run a real manager to prove watches put back what drifts.
const (
	liveNamespace = "live"
	testImage     = "example.test/switchboard:test"
)

var (
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8s       client.Client
	scheme    = runtime.NewScheme()
	testCtx   context.Context
	nsCounter atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	utilruntime.Must(render.AddToScheme(scheme))
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.Level(zapLevel()))))

	var err error
	if testEnv, err = testenv.New(filepath.Join("..", "config", "crd", "bases")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if cfg, err = testEnv.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "starting envtest: %v\n", err)
		return 1
	}
	defer func() { _ = testEnv.Stop() }()

	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	testCtx = ctx
	if err := startManager(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "manager: %v\n", err)
		return 1
	}
	return m.Run()
}

func zapLevel() int8 {
	if os.Getenv("TEST_VERBOSE") != "" {
		return -1
	}
	return 2 // errors only; set TEST_VERBOSE=1 to see the manager's logs
}

// startManager runs the operator as cmd/manager does (cache limited to
// labelled children), watching only liveNamespace.
func startManager(ctx context.Context) error {
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: liveNamespace}}); err != nil {
		return err
	}
	cacheOpts, err := controllers.CacheOptions(scheme)
	if err != nil {
		return err
	}
	cacheOpts.DefaultNamespaces = map[string]cache.Config{liveNamespace: {}}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   cacheOpts,
	})
	if err != nil {
		return err
	}
	r := &controllers.PlatformReconciler{
		Client:        mgr.GetClient(),
		APIReader:     mgr.GetAPIReader(),
		Scheme:        scheme,
		Recorder:      mgr.GetEventRecorder("switchboard-operator"),
		ServicesImage: testImage,
		BrokerUsers:   testBrokerUsers,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "manager stopped: %v\n", err)
		}
	}()
	return nil
}

// writeCounter counts the write requests that pass through a rest.Config,
// and the Events recorded (they are sent asynchronously, so counting them at
// the call is what ties them to one reconcile).
type writeCounter struct {
	writes   atomic.Int64
	last     atomic.Value // string: the last write, for failure messages
	mu       sync.Mutex
	paths    []string // every write, "METHOD path"
	events   atomic.Int64
	recorder events.EventRecorder
}

func (c *writeCounter) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	c.events.Add(1)
	c.last.Store("event " + reason)
	c.recorder.Eventf(regarding, related, eventtype, reason, action, note, args...)
}

func (c *writeCounter) reset() {
	c.writes.Store(0)
	c.events.Store(0)
	c.mu.Lock()
	c.paths = nil
	c.mu.Unlock()
}

// writesTo returns the writes whose path contains fragment.
func (c *writeCounter) writesTo(fragment string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, p := range c.paths {
		if strings.Contains(p, fragment) {
			out = append(out, p)
		}
	}
	return out
}

func (c *writeCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return testenv.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		switch req.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			c.writes.Add(1)
			c.last.Store(req.Method + " " + req.URL.Path)
			c.mu.Lock()
			c.paths = append(c.paths, req.Method+" "+req.URL.Path)
			c.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

// newDirectReconciler returns a reconciler that reads straight from the API
// server, with every write it or its event recorder sends counted.
func newDirectReconciler(t *testing.T) (*controllers.PlatformReconciler, *writeCounter) {
	t.Helper()
	counter := &writeCounter{}
	cl, c, err := testenv.ClientThrough(cfg, scheme, counter.wrap)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	if err := broadcaster.StartRecordingToSinkWithContext(testCtx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broadcaster.Shutdown)
	counter.recorder = broadcaster.NewRecorder(scheme, "switchboard-operator")
	return &controllers.PlatformReconciler{
		Client:        cl,
		APIReader:     cl,
		Scheme:        scheme,
		Recorder:      counter,
		ServicesImage: testImage,
		BrokerUsers:   testBrokerUsers,
	}, counter
}

// newNamespace creates a namespace no manager watches.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%d", time.Now().Unix()%100000, nsCounter.Add(1))
	if err := k8s.Create(testCtx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after 30s: %v", what, err)
}

// markReady plays the kubelet and the workload controllers for p.
func markReady(t *testing.T, p *v1alpha1.Platform) {
	t.Helper()
	if err := testenv.MarkReady(testCtx, k8s, p); err != nil {
		t.Fatal(err)
	}
}
