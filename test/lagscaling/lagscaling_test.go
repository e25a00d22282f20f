// Package lagscaling tests queue-lag autoscaling against a real API server
// whose KEDA CRD comes and goes. It has an envtest of its own, apart from
// the controllers suite, because installing a CRD changes what every
// manager of that API server renders.
package lagscaling

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/controllers"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/internal/testenv"
	"github.com/switchboard-dev/switchboard/internal/testgen"
)

const (
	liveNamespace = "live"
	image         = "example.test/switchboard:lag"
)

var (
	testEnv *envtest.Environment
	cfg     *rest.Config
	k8s     client.Client
	scheme  = runtime.NewScheme()
	testCtx context.Context
	// kedaCRDs is KEDA's ScaledObject CRD, vendored (config/keda).
	kedaCRDs = filepath.Join("..", "..", "config", "keda")
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	utilruntime.Must(render.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))

	var err error
	if testEnv, err = testenv.New(filepath.Join("..", "..", "config", "crd", "bases")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if cfg, err = testEnv.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "starting envtest: %v\n", err)
		return 1
	}
	defer func() { _ = testEnv.Stop() }()
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
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

// startManager runs the operator as cmd/manager does, watching only
// liveNamespace.
func startManager(ctx context.Context) error {
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: liveNamespace}}); err != nil {
		return err
	}
	cacheOpts, err := controllers.CacheOptions(scheme)
	if err != nil {
		return err
	}
	cacheOpts.DefaultNamespaces = map[string]cache.Config{liveNamespace: {}}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, Cache: cacheOpts})
	if err != nil {
		return err
	}
	r := &controllers.PlatformReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Scheme: scheme,
		Recorder: mgr.GetEventRecorder("switchboard-operator"), ServicesImage: image,
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

// installKEDA installs KEDA's ScaledObject CRD and waits until it is
// served; uninstall removes it and waits until it is gone.
func installKEDA(t *testing.T) (uninstall func()) {
	t.Helper()
	crds, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: []string{kedaCRDs}, ErrorIfPathMissing: true})
	if err != nil {
		t.Fatalf("installing KEDA's CRD: %v", err)
	}
	uninstalled := false
	uninstall = func() {
		if uninstalled {
			return
		}
		uninstalled = true
		if err := envtest.UninstallCRDs(cfg, envtest.CRDInstallOptions{Paths: []string{kedaCRDs}}); err != nil {
			t.Fatalf("uninstalling KEDA's CRD: %v", err)
		}
		eventually(t, "KEDA's CRD is gone", func() error {
			err := k8s.Get(testCtx, client.ObjectKey{Name: crds[0].Name}, &apiextensionsv1.CustomResourceDefinition{})
			if err == nil {
				return errors.New("still there")
			}
			return client.IgnoreNotFound(err)
		})
	}
	t.Cleanup(uninstall)
	return uninstall
}

// Without KEDA the services that want lag scaling keep their CPU HPA (or
// fixed replicas) and status says why; KEDA's CRD appearing switches them
// to ScaledObjects with no HPA of the operator's, without a Platform
// change; a ScaledObject edited by hand is put back; the CRD going away
// brings the HPAs back.
func TestLagScalingFollowsKEDAsCRD(t *testing.T) {
	p := testgen.Platform("lag", testgen.WithNamespace(liveNamespace))
	if err := k8s.Create(testCtx, p); err != nil {
		t.Fatal(err)
	}

	eventually(t, "without KEDA: CPU HPA for analytics, fixed notification, LagScaling False", func() error {
		if err := exists(&autoscalingv2.HorizontalPodAutoscaler{}, "lag-analytics"); err != nil {
			return err
		}
		if err := replicas("lag-notification", 1); err != nil {
			return err
		}
		return condition(p, metav1.ConditionFalse, "CRDNotInstalled", "notification, analytics would scale on queue lag, but CustomResourceDefinition scaledobjects.keda.sh is not installed")
	})
	if c := conditionOf(p); !strings.Contains(c.Message, "analytics keeps scaling on CPU and notification keeps fixed replicas") {
		t.Errorf("LagScaling message %q does not say how they scale meanwhile", c.Message)
	}

	uninstall := installKEDA(t)
	eventually(t, "with KEDA: ScaledObjects, no HPA of ours, LagScaling True", func() error {
		for _, name := range []string{"lag-analytics", "lag-notification"} {
			if err := exists(&kedav1alpha1.ScaledObject{}, name); err != nil {
				return err
			}
			if err := gone(&autoscalingv2.HorizontalPodAutoscaler{}, name); err != nil {
				return err
			}
		}
		return condition(p, metav1.ConditionTrue, "KEDAScaledObjects", "notification, analytics scale on their consumers' backlog")
	})
	so := &kedav1alpha1.ScaledObject{}
	get(t, "lag-analytics", so)
	checkAnalyticsTrigger(t, so)
	if err := exists(&autoscalingv2.HorizontalPodAutoscaler{}, "lag-playback"); err != nil {
		t.Errorf("playback, which does not scale on lag, lost its HPA: %v", err)
	}

	t.Run("a ScaledObject edited by hand is put back", func(t *testing.T) {
		so := &kedav1alpha1.ScaledObject{}
		get(t, "lag-analytics", so)
		so.Spec.Triggers[0].Metadata["lagThreshold"] = "1"
		if err := k8s.Update(testCtx, so); err != nil {
			t.Fatal(err)
		}
		eventually(t, "lagThreshold back to 100", func() error {
			get(t, "lag-analytics", so)
			if got := so.Spec.Triggers[0].Metadata["lagThreshold"]; got != "100" {
				return fmt.Errorf("lagThreshold %s", got)
			}
			return nil
		})
	})

	uninstall()
	eventually(t, "KEDA gone: the HPA is back and LagScaling False", func() error {
		if err := exists(&autoscalingv2.HorizontalPodAutoscaler{}, "lag-analytics"); err != nil {
			return err
		}
		if err := replicas("lag-notification", 1); err != nil {
			return err
		}
		return condition(p, metav1.ConditionFalse, "CRDNotInstalled", "")
	})
}

func checkAnalyticsTrigger(t *testing.T, so *kedav1alpha1.ScaledObject) {
	t.Helper()
	if len(so.Spec.Triggers) == 0 || so.Spec.Triggers[0].Type != "nats-jetstream" {
		t.Fatalf("triggers %+v, want nats-jetstream first", so.Spec.Triggers)
	}
	want := map[string]string{
		"natsServerMonitoringEndpoint": "lag-nats-headless." + so.Namespace + ".svc.cluster.local:8222",
		"account":                      "$G",
		"stream":                       "PLAYBACK",
		"consumer":                     "analytics",
		"lagThreshold":                 "100",
	}
	for k, v := range want {
		if got := so.Spec.Triggers[0].Metadata[k]; got != v {
			t.Errorf("trigger %s = %q, want %q", k, got, v)
		}
	}
	if ref := so.Spec.ScaleTargetRef; ref == nil || ref.Name != "lag-analytics" || ref.Kind != "Deployment" {
		t.Errorf("scaleTargetRef %+v", ref)
	}
	if *so.Spec.MinReplicaCount != 2 || *so.Spec.MaxReplicaCount != 6 {
		t.Errorf("replicas %d..%d, want analytics' 2..6", *so.Spec.MinReplicaCount, *so.Spec.MaxReplicaCount)
	}
}

// KEDA's admission webhook refuses a ScaledObject for a Deployment that an
// HPA of someone else scales. Played here by the client: the operator must
// delete its own HPA before it applies the ScaledObject. And the HPA KEDA
// creates, which carries our labels when KEDA copies them all (KEDA before
// hpa-excluded-labels), is KEDA's: no reconcile prunes or patches it.
func TestHandoverToKEDAAndKEDAsHPA(t *testing.T) {
	installKEDA(t)
	ns := "handover"
	if err := k8s.Create(testCtx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	p := testgen.Platform("ho", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadStreaming),
		testgen.WithService("analytics", testgen.Lag(false, 0)))
	if err := k8s.Create(testCtx, p); err != nil {
		t.Fatal(err)
	}
	r := directReconciler(t)
	reconcile(t, r, p)
	get(t, "ho-analytics", &autoscalingv2.HorizontalPodAutoscaler{}) // lag off: our HPA

	edit(t, p, func(p *v1alpha1.Platform) { p.Spec.Services["analytics"] = v1alpha1.ServiceSpec{} })
	reconcile(t, r, p)
	so := &kedav1alpha1.ScaledObject{}
	get(t, "ho-analytics", so)
	if err := gone(&autoscalingv2.HorizontalPodAutoscaler{}, "ho-analytics"); err != nil {
		t.Error(err)
	}

	// KEDA's HPA, as KEDA creates it from that ScaledObject.
	kedaHPA := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{
			Name: "keda-hpa-ho-analytics", Namespace: ns, Labels: render.Labels(p, "analytics"),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(so, render.ScaledObjectKind)},
		},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "ho-analytics"},
			MinReplicas:    ptr.To[int32](2), MaxReplicas: 6,
		},
	}
	if err := k8s.Create(testCtx, kedaHPA); err != nil {
		t.Fatal(err)
	}
	rv := kedaHPA.ResourceVersion
	reconcile(t, r, p)
	get(t, "keda-hpa-ho-analytics", kedaHPA)
	if kedaHPA.ResourceVersion != rv {
		t.Error("a reconcile wrote KEDA's HPA")
	}

	// And back: lag off deletes the ScaledObject before our HPA returns.
	edit(t, p, func(p *v1alpha1.Platform) {
		p.Spec.Services["analytics"] = v1alpha1.ServiceSpec{Autoscaling: &v1alpha1.AutoscalingSpec{Lag: &v1alpha1.LagScalingSpec{Enabled: ptr.To(false)}}}
	})
	reconcile(t, r, p)
	get(t, "ho-analytics", &autoscalingv2.HorizontalPodAutoscaler{})
	if err := gone(&kedav1alpha1.ScaledObject{}, "ho-analytics"); err != nil {
		t.Error(err)
	}
}

// directReconciler reconciles outside a manager, reading straight from the
// API server, through a client that refuses a ScaledObject for a
// Deployment an HPA of ours still scales, as KEDA's webhook does.
func directReconciler(t *testing.T) *controllers.PlatformReconciler {
	t.Helper()
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	webhook := interceptor.Funcs{Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
		// The operator applies unstructured configurations.
		if u, ok := obj.(interface {
			GetKind() string
			GetName() string
			GetNamespace() string
		}); ok && u.GetKind() == "ScaledObject" {
			hpa := &autoscalingv2.HorizontalPodAutoscaler{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: u.GetNamespace(), Name: u.GetName()}, hpa); err == nil {
				return fmt.Errorf("admission webhook denied the request: the workload '%s' of type 'apps/v1.Deployment' is already managed by the hpa '%s'", u.GetName(), hpa.Name)
			}
		}
		return c.Apply(ctx, obj, opts...)
	}}
	cl := interceptor.NewClient(wc, webhook)
	return &controllers.PlatformReconciler{Client: cl, APIReader: cl, Scheme: scheme, Recorder: discard{}, ServicesImage: image}
}

type discard struct{}

func (discard) Eventf(runtime.Object, runtime.Object, string, string, string, string, ...any) {}

func reconcile(t *testing.T, r *controllers.PlatformReconciler, p *v1alpha1.Platform) {
	t.Helper()
	if _, err := r.Reconcile(testCtx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}}); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
}

func edit(t *testing.T, p *v1alpha1.Platform, change func(*v1alpha1.Platform)) {
	t.Helper()
	if err := k8s.Get(testCtx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	change(p)
	if err := k8s.Update(testCtx, p); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, name string, obj client.Object) {
	t.Helper()
	if err := k8s.Get(testCtx, key(name), obj); err != nil {
		t.Fatalf("%T %s: %v", obj, name, err)
	}
}

// key finds a child by name: those of Platform ho live in namespace
// handover, the others in liveNamespace.
func key(name string) client.ObjectKey {
	if strings.HasPrefix(name, "ho-") || strings.HasPrefix(name, "keda-hpa-ho-") {
		return client.ObjectKey{Namespace: "handover", Name: name}
	}
	return client.ObjectKey{Namespace: liveNamespace, Name: name}
}

func exists(obj client.Object, name string) error {
	if err := k8s.Get(testCtx, key(name), obj); err != nil {
		return fmt.Errorf("%T %s: %w", obj, name, err)
	}
	return nil
}

func gone(obj client.Object, name string) error {
	switch err := k8s.Get(testCtx, key(name), obj); {
	case err == nil && obj.GetDeletionTimestamp().IsZero():
		return fmt.Errorf("%T %s still exists", obj, name)
	case err != nil && client.IgnoreNotFound(err) != nil && !meta.IsNoMatchError(err):
		return err
	}
	return nil
}

// replicas checks that the operator applies spec.replicas of a Deployment
// with the value want.
func replicas(name string, want int32) error {
	d := &appsv1.Deployment{}
	if err := exists(d, name); err != nil {
		return err
	}
	owns := false
	for _, mf := range d.ManagedFields {
		if mf.Manager == render.FieldManager && mf.FieldsV1 != nil && bytes.Contains(mf.FieldsV1.Raw, []byte(`"f:replicas"`)) {
			owns = true
		}
	}
	if !owns || d.Spec.Replicas == nil || *d.Spec.Replicas != want {
		return fmt.Errorf("%s replicas %v (owned %v), want %d", name, d.Spec.Replicas, owns, want)
	}
	return nil
}

func conditionOf(p *v1alpha1.Platform) *metav1.Condition {
	got := &v1alpha1.Platform{}
	if err := k8s.Get(testCtx, client.ObjectKeyFromObject(p), got); err != nil {
		return nil
	}
	return meta.FindStatusCondition(got.Status.Conditions, controllers.ConditionLagScaling)
}

func condition(p *v1alpha1.Platform, status metav1.ConditionStatus, reason, message string) error {
	c := conditionOf(p)
	if c == nil || c.Status != status || c.Reason != reason || !strings.Contains(c.Message, message) {
		return fmt.Errorf("LagScaling %+v, want %s %s containing %q", c, status, reason, message)
	}
	return nil
}

// eventually polls cond until it returns nil or 30 s pass.
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
