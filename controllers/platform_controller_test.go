package controllers_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/controllers"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/internal/testgen"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

func TestSampleCreatesEveryChildWithItsWiring(t *testing.T) {
	ns := newNamespace(t)
	r, _ := newDirectReconciler(t)
	p := createAndReconcile(t, r, loadSample(t, "platform.yaml", ns))

	desired := desiredFor(t, p)
	for _, want := range desired {
		live, err := fetch(t, want)
		if err != nil {
			t.Errorf("%T %s: %v", want, want.GetName(), err)
			continue
		}
		if !metav1.IsControlledBy(live, p) {
			t.Errorf("%T %s is not controlled by the Platform: %v", want, want.GetName(), live.GetOwnerReferences())
		}
	}
	t.Logf("the sample rendered %d objects", len(desired))

	order := &appsv1.Deployment{}
	mustGet(t, ns, "shop-order", order)
	c := order.Spec.Template.Spec.Containers[0]
	env := envByName(c)
	for name, want := range map[string]string{
		"NATS_URL":     "nats://shop-nats." + ns + ".svc.cluster.local:4222",
		"PRODUCT_GRPC": "dns:///shop-product." + ns + ".svc.cluster.local:9090",
		"PAYMENT_GRPC": "dns:///shop-payment." + ns + ".svc.cluster.local:9090",
		"HTTP_ADDR":    ":8080",
	} {
		if got := env[name].Value; got != want {
			t.Errorf("order env %s = %q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"NATS_USER", "NATS_PASSWORD"} {
		ref := env[name].ValueFrom
		if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != "shop-order-nats" {
			t.Errorf("order env %s must come from its own Secret shop-order-nats, got %+v", name, env[name])
		}
	}
	if env["TLS_DIR"].Value != "/var/run/switchboard/tls" {
		t.Errorf("order env TLS_DIR = %q", env["TLS_DIR"].Value)
	}
	if ref := env["TOKEN_KEYS"].ValueFrom; ref == nil || ref.ConfigMapKeyRef == nil || ref.ConfigMapKeyRef.Name != "shop-token-keys" {
		t.Errorf("order env TOKEN_KEYS must come from ConfigMap shop-token-keys, got %+v", env["TOKEN_KEYS"])
	}
	for _, name := range []string{"TOKEN_SIGNING_KEY", "ADMIN_PASSWORD"} {
		if _, ok := env[name]; ok {
			t.Errorf("order, which issues no token, gets %s", name)
		}
	}
	user := &appsv1.Deployment{}
	mustGet(t, ns, "shop-user", user)
	uenv := envByName(user.Spec.Template.Spec.Containers[0])
	for name, secret := range map[string]string{"TOKEN_SIGNING_KEY": "shop-token-signing", "ADMIN_EMAIL": "shop-admin", "ADMIN_PASSWORD": "shop-admin"} {
		if ref := uenv[name].ValueFrom; ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != secret {
			t.Errorf("user env %s must come from Secret %s, got %+v", name, secret, uenv[name])
		}
	}
	if c.Image != testImage || !slices.Equal(c.Args, []string{"serve", "order"}) {
		t.Errorf("order runs %s %v, want %s [serve order]", c.Image, c.Args, testImage)
	}
	if got := probePath(c.ReadinessProbe); got != "/readyz" {
		t.Errorf("readiness probe path %q, want /readyz", got)
	}
	if got := probePath(c.LivenessProbe); got != "/healthz" {
		t.Errorf("liveness probe path %q, want /healthz", got)
	}
	if got := probePath(c.StartupProbe); got != "/healthz" {
		t.Errorf("startup probe path %q, want /healthz", got)
	}
	if order.Spec.Replicas == nil || *order.Spec.Replicas != 2 {
		t.Errorf("order replicas %v, want 2 from the sample", order.Spec.Replicas)
	}

	gateway := &appsv1.Deployment{}
	mustGet(t, ns, "shop-gateway", gateway)
	genv := envByName(gateway.Spec.Template.Spec.Containers[0])
	for _, svc := range catalog.ForWorkloads(catalog.Commerce, catalog.Streaming) {
		if svc.Name == catalog.Gateway {
			continue
		}
		if _, ok := genv[catalog.EnvURL(svc.Name)]; !ok {
			t.Errorf("gateway has no %s", catalog.EnvURL(svc.Name))
		}
	}

	playback := &appsv1.Deployment{}
	mustGet(t, ns, "shop-playback", playback)
	if playback.Spec.Replicas != nil && playback.ManagedFields != nil && ownsReplicas(playback) {
		t.Errorf("the operator owns spec.replicas of an autoscaled Deployment")
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	mustGet(t, ns, "shop-playback", hpa)
	if *hpa.Spec.MinReplicas != 2 || hpa.Spec.MaxReplicas != 10 || *hpa.Spec.Metrics[0].Resource.Target.AverageUtilization != 60 {
		t.Errorf("playback HPA %d..%d at %d%%, want 2..10 at 60%% from the sample",
			*hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas, *hpa.Spec.Metrics[0].Resource.Target.AverageUtilization)
	}

	if p.Status.ObservedGeneration != p.Generation {
		t.Errorf("observedGeneration %d, want %d", p.Status.ObservedGeneration, p.Generation)
	}
	if p.Status.ServicesReady != "0/11" || p.Status.Broker.Ready != "0/1" {
		t.Errorf("status counts services %q broker %q, want 0/11 and 0/1", p.Status.ServicesReady, p.Status.Broker.Ready)
	}
	ready := meta.FindStatusCondition(p.Status.Conditions, controllers.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionFalse {
		t.Errorf("Ready condition %+v, want False before any pod runs", ready)
	}
}

func TestPlatformBecomesReadyWhenItsWorkloadsAre(t *testing.T) {
	ns := newNamespace(t)
	r, _ := newDirectReconciler(t)
	p := createAndReconcile(t, r, loadSample(t, "platform.yaml", ns))

	markReady(t, p)
	reconcile(t, r, p)
	p = get(t, p)

	for _, typ := range []string{controllers.ConditionReady, controllers.ConditionBrokerReady, controllers.ConditionServicesReady} {
		if !meta.IsStatusConditionTrue(p.Status.Conditions, typ) {
			t.Errorf("%s is not True: %+v", typ, meta.FindStatusCondition(p.Status.Conditions, typ))
		}
	}
	for _, typ := range []string{controllers.ConditionProgressing, controllers.ConditionDegraded} {
		if !meta.IsStatusConditionFalse(p.Status.Conditions, typ) {
			t.Errorf("%s is not False: %+v", typ, meta.FindStatusCondition(p.Status.Conditions, typ))
		}
	}
	if p.Status.ServicesReady != "11/11" || p.Status.Broker.Ready != "1/1" {
		t.Errorf("status counts services %q broker %q, want 11/11 and 1/1", p.Status.ServicesReady, p.Status.Broker.Ready)
	}
	if want := "http://shop-gateway." + ns + ".svc.cluster.local"; p.Status.GatewayURL != want {
		t.Errorf("gatewayURL %q, want %q", p.Status.GatewayURL, want)
	}
	if want := "nats://shop-nats." + ns + ".svc.cluster.local:4222"; p.Status.Broker.URL != want {
		t.Errorf("broker URL %q, want %q", p.Status.Broker.URL, want)
	}
	for _, s := range p.Status.Services {
		if !s.Ready || s.ReadyReplicas != s.Replicas || s.Endpoint != "http://shop-"+s.Name+"."+ns+".svc.cluster.local" {
			t.Errorf("service status %+v", s)
		}
	}

	// One service losing its pods takes the platform out of Ready, naming it.
	order := &appsv1.Deployment{}
	mustGet(t, ns, "shop-order", order)
	order.Status.ReadyReplicas, order.Status.AvailableReplicas = 0, 0
	if err := k8s.Status().Update(testCtx, order); err != nil {
		t.Fatal(err)
	}
	reconcile(t, r, p)
	p = get(t, p)
	ready := meta.FindStatusCondition(p.Status.Conditions, controllers.ConditionReady)
	if ready.Status != metav1.ConditionFalse || !strings.Contains(ready.Message, "order (0/2 ready)") {
		t.Errorf("Ready = %s %q, want False naming order (0/2 ready)", ready.Status, ready.Message)
	}
	if p.Status.ServicesReady != "10/11" {
		t.Errorf("servicesReady %q, want 10/11", p.Status.ServicesReady)
	}
	eventually(t, "a PlatformNotReady event", func() error { return hasEvent(ns, "PlatformNotReady") })
}

func TestPruningRemovesOnlyWhatIsNoLongerDesired(t *testing.T) {
	cases := []struct {
		name   string
		before []testgen.PlatformOption // on top of both workloads
		change testgen.PlatformOption
		gone   []string // "Kind/name" expected to be pruned
	}{
		{
			name:   "a disabled service loses its Deployment, both its Services and its HPA",
			change: testgen.WithService("analytics", testgen.Disabled()),
			gone:   []string{"Deployment/pf-analytics", "Service/pf-analytics", "Service/pf-analytics-ops", "HorizontalPodAutoscaler/pf-analytics", "PodDisruptionBudget/pf-analytics"},
		},
		{
			name:   "a removed workload loses every service of its own but not the shared gateway",
			change: testgen.WithWorkloads(v1alpha1.WorkloadCommerce),
			gone: []string{"Deployment/pf-account", "Deployment/pf-content", "Deployment/pf-playback", "Deployment/pf-analytics",
				"Deployment/pf-recommendation", "Service/pf-playback", "HorizontalPodAutoscaler/pf-playback"},
		},
		{
			name:   "switching NetworkPolicies off deletes them",
			before: []testgen.PlatformOption{testgen.WithWorkloads(v1alpha1.WorkloadCommerce)},
			change: testgen.WithNetworkPolicy(false),
			gone:   nil, // computed below from what was rendered
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			r, _ := newDirectReconciler(t)
			p := createAndReconcile(t, r, testgen.Platform("pf", append(tc.before, testgen.WithNamespace(ns))...))
			before := desiredFor(t, p)

			// A look-alike the operator does not control must survive pruning.
			stranger := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "pf-stranger", Namespace: ns, Labels: render.Labels(p, "user")}}
			if err := k8s.Create(testCtx, stranger); err != nil {
				t.Fatal(err)
			}

			tc.change(p)
			if err := k8s.Update(testCtx, p); err != nil {
				t.Fatal(err)
			}
			reconcile(t, r, p)
			after := desiredFor(t, p)

			gone := tc.gone
			if gone == nil {
				for _, obj := range before {
					if kind := obj.GetObjectKind().GroupVersionKind().Kind; kind == "NetworkPolicy" {
						gone = append(gone, kind+"/"+obj.GetName())
					}
				}
				if len(gone) == 0 {
					t.Fatal("the default Platform rendered no NetworkPolicy")
				}
			}
			byRef := map[string]client.Object{}
			for _, obj := range before {
				byRef[obj.GetObjectKind().GroupVersionKind().Kind+"/"+obj.GetName()] = obj
			}
			for _, ref := range gone {
				obj, ok := byRef[ref]
				if !ok {
					t.Fatalf("%s was never rendered", ref)
				}
				if _, err := fetch(t, obj); err == nil {
					t.Errorf("%s still exists", ref)
				}
			}
			for _, obj := range after {
				if _, err := fetch(t, obj); err != nil {
					t.Errorf("desired %T %s is missing: %v", obj, obj.GetName(), err)
				}
			}
			if err := k8s.Get(testCtx, client.ObjectKeyFromObject(stranger), &corev1.ConfigMap{}); err != nil {
				t.Errorf("a ConfigMap the Platform does not control was deleted: %v", err)
			}
			eventually(t, "a Pruned event", func() error { return hasEvent(ns, "Pruned") })
		})
	}
}

func TestAutoscaledReplicasAreLeftToTheHPA(t *testing.T) {
	ns := newNamespace(t)
	r, counter := newDirectReconciler(t)
	p := createAndReconcile(t, r, testgen.Platform("pf", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadStreaming)))

	// The HPA controller scales the Deployment through the scale subresource.
	d := &appsv1.Deployment{}
	mustGet(t, ns, "pf-playback", d)
	scale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: 7}}
	if err := k8s.SubResource("scale").Update(testCtx, d, client.WithSubResourceBody(scale)); err != nil {
		t.Fatal(err)
	}
	counter.reset()
	reconcile(t, r, p)
	mustGet(t, ns, "pf-playback", d)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 7 {
		t.Errorf("replicas %v after reconcile, want the HPA's 7", d.Spec.Replicas)
	}
	// The Platform's status may report the new count; no child may be written.
	if w := counter.writesTo("/deployments/"); len(w) != 0 {
		t.Errorf("reconcile after an HPA scale wrote the Deployment: %v", w)
	}
	if p = get(t, p); statusOf(p, "playback").Replicas != 7 {
		t.Errorf("status reports playback replicas %d, want the HPA's 7", statusOf(p, "playback").Replicas)
	}
}

func TestSecondReconcileWritesNothing(t *testing.T) {
	for _, ready := range []bool{false, true} {
		t.Run(fmt.Sprintf("pods ready %v", ready), func(t *testing.T) {
			ns := newNamespace(t)
			r, counter := newDirectReconciler(t)
			p := createAndReconcile(t, r, loadSample(t, "platform.yaml", ns))
			if ready {
				markReady(t, p)
				reconcile(t, r, p)
			}
			before := resourceVersions(t, p)

			counter.reset()
			reconcile(t, r, p)
			if n, e := counter.writes.Load(), counter.events.Load(); n != 0 || e != 0 {
				t.Errorf("a no-op reconcile sent %d write requests and %d events (last: %v), want none", n, e, counter.last.Load())
			}
			after := resourceVersions(t, p)
			for ref, rv := range before {
				if after[ref] != rv {
					t.Errorf("%s changed resourceVersion %s → %s", ref, rv, after[ref])
				}
			}
			t.Logf("no-op reconcile: %d write requests over %d objects", counter.writes.Load(), len(before))
		})
	}
}

func TestAuthSecretIsGeneratedOnceAndKept(t *testing.T) {
	ns := newNamespace(t)
	r, _ := newDirectReconciler(t)
	p := createAndReconcile(t, r, testgen.Platform("pf", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce)))
	first := &corev1.Secret{}
	mustGet(t, ns, "pf-auth", first)
	for _, k := range []string{render.SecretKeyNATSUser, render.SecretKeyNATSPassword} {
		if len(first.Data[k]) < 16 {
			t.Errorf("Secret key %s holds %d bytes, want a generated value", k, len(first.Data[k]))
		}
	}

	p.Spec.Services = map[string]v1alpha1.ServiceSpec{"order": {Replicas: ptr.To[int32](3)}}
	if err := k8s.Update(testCtx, p); err != nil {
		t.Fatal(err)
	}
	reconcile(t, r, p)
	again := &corev1.Secret{}
	mustGet(t, ns, "pf-auth", again)
	if !mapsEqual(first.Data, again.Data) {
		t.Error("a spec change rotated the platform's credentials")
	}

	// A key lost by hand is regenerated; the others are kept.
	delete(again.Data, render.SecretKeyNATSUser)
	if err := k8s.Update(testCtx, again); err != nil {
		t.Fatal(err)
	}
	reconcile(t, r, p)
	healed := &corev1.Secret{}
	mustGet(t, ns, "pf-auth", healed)
	if len(healed.Data[render.SecretKeyNATSUser]) == 0 {
		t.Error("the missing broker user was not regenerated")
	}
	if string(healed.Data[render.SecretKeyNATSPassword]) != string(first.Data[render.SecretKeyNATSPassword]) {
		t.Error("regenerating one key rotated the broker password")
	}
}

func TestNoPodSpecCarriesASecretValue(t *testing.T) {
	ns := newNamespace(t)
	r, _ := newDirectReconciler(t)
	p := createAndReconcile(t, r, loadSample(t, "platform.yaml", ns))
	secret := &corev1.Secret{Data: map[string][]byte{}}
	for _, name := range []string{"shop-auth", "shop-token-signing", "shop-admin"} {
		s := &corev1.Secret{}
		mustGet(t, ns, name, s)
		for k, v := range s.Data {
			secret.Data[name+"/"+k] = v
		}
	}

	var templates []corev1.PodTemplateSpec
	var deps appsv1.DeploymentList
	var sets appsv1.StatefulSetList
	sel := client.MatchingLabelsSelector{Selector: render.PlatformSelector(p)}
	if err := k8s.List(testCtx, &deps, client.InNamespace(ns), sel); err != nil {
		t.Fatal(err)
	}
	if err := k8s.List(testCtx, &sets, client.InNamespace(ns), sel); err != nil {
		t.Fatal(err)
	}
	for _, d := range deps.Items {
		templates = append(templates, d.Spec.Template)
	}
	for _, s := range sets.Items {
		templates = append(templates, s.Spec.Template)
	}
	if len(templates) != 12 {
		t.Fatalf("found %d pod templates, want 11 services and the broker", len(templates))
	}
	for _, tpl := range templates {
		for _, c := range append(tpl.Spec.InitContainers, tpl.Spec.Containers...) {
			for _, e := range c.Env {
				for k, v := range secret.Data {
					if e.Value != "" && strings.Contains(e.Value, string(v)) {
						t.Errorf("%s: env %s carries the literal value of %s", tpl.Labels["app.kubernetes.io/component"], e.Name, k)
					}
				}
			}
		}
	}
	var cms corev1.ConfigMapList
	if err := k8s.List(testCtx, &cms, client.InNamespace(ns), sel); err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms.Items {
		for key, content := range cm.Data {
			for k, v := range secret.Data {
				if strings.Contains(content, string(v)) {
					t.Errorf("ConfigMap %s/%s carries the value of %s", cm.Name, key, k)
				}
			}
		}
	}
}

func TestDeletingThePlatformLeavesChildrenToTheGarbageCollector(t *testing.T) {
	ns := newNamespace(t)
	r, counter := newDirectReconciler(t)
	p := createAndReconcile(t, r, testgen.Platform("pf", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce)))
	desired := desiredFor(t, p)

	if err := k8s.Delete(testCtx, p); err != nil {
		t.Fatal(err)
	}
	counter.reset()
	reconcile(t, r, p)
	if n := counter.writes.Load(); n != 0 {
		t.Errorf("reconciling a deleted Platform sent %d writes (last %v); deletion belongs to the garbage collector", n, counter.last.Load())
	}
	// envtest runs no garbage collector; what makes it collect is a blocking
	// controller reference from every child to the Platform.
	for _, obj := range desired {
		live, err := fetch(t, obj)
		if err != nil {
			t.Errorf("%T %s: %v", obj, obj.GetName(), err)
			continue
		}
		ref := metav1.GetControllerOf(live)
		if ref == nil || ref.UID != p.UID || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
			t.Errorf("%T %s has controller reference %+v, want a blocking one to Platform %s", obj, obj.GetName(), ref, p.UID)
		}
	}
}

func TestTwoPlatformsInOneNamespaceDoNotCollide(t *testing.T) {
	ns := newNamespace(t)
	r, _ := newDirectReconciler(t)
	a := createAndReconcile(t, r, testgen.Platform("alpha", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce)))
	b := createAndReconcile(t, r, testgen.Platform("beta", testgen.WithNamespace(ns)))

	a.Spec.Services = map[string]v1alpha1.ServiceSpec{"order": {Enabled: ptr.To(false)}}
	if err := k8s.Update(testCtx, a); err != nil {
		t.Fatal(err)
	}
	reconcile(t, r, a)
	reconcile(t, r, b)

	for _, tc := range []struct {
		p      *v1alpha1.Platform
		others *v1alpha1.Platform
	}{{a, b}, {b, a}} {
		for _, obj := range desiredFor(t, tc.p) {
			live, err := fetch(t, obj)
			if err != nil {
				t.Errorf("%s: %T %s missing: %v", tc.p.Name, obj, obj.GetName(), err)
				continue
			}
			if !metav1.IsControlledBy(live, tc.p) {
				t.Errorf("%T %s is not controlled by %s", obj, obj.GetName(), tc.p.Name)
			}
		}
	}
	if err := k8s.Get(testCtx, client.ObjectKey{Namespace: ns, Name: "beta-order"}, &appsv1.Deployment{}); err != nil {
		t.Errorf("disabling alpha's order touched beta's: %v", err)
	}
	if err := k8s.Get(testCtx, client.ObjectKey{Namespace: ns, Name: "alpha-order"}, &appsv1.Deployment{}); err == nil {
		t.Error("alpha-order was not pruned")
	}
}

func TestInvalidPlatformsAreRejectedWithTheirOwnMessage(t *testing.T) {
	ns := newNamespace(t)
	files, err := filepath.Glob(filepath.Join("..", "config", "samples", "invalid", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid samples: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			expect := expectation(t, path)
			p := loadSample(t, filepath.Join("invalid", filepath.Base(path)), ns)
			err := k8s.Create(testCtx, p)
			if err == nil {
				t.Fatalf("the API server accepted it; want %q", expect)
			}
			if !strings.Contains(err.Error(), expect) {
				t.Fatalf("rejected with %q, want it to contain %q", err, expect)
			}
		})
	}
}

// The CEL rule on spec.services lists the catalog's services by workload;
// this keeps the two in step.
func TestServiceKeysFollowTheCatalog(t *testing.T) {
	ns := newNamespace(t)
	for _, svc := range catalog.All() {
		for _, w := range catalog.Workloads {
			want := slices.Contains(svc.Workloads, w)
			p := testgen.Platform("keys", testgen.WithNamespace(ns), testgen.WithWorkloads(w), testgen.WithService(svc.Name))
			err := k8s.Create(testCtx, p, client.DryRunAll)
			if got := err == nil; got != want {
				t.Errorf("services.%s with workloads [%s]: accepted=%v, want %v (%v)", svc.Name, w, got, want, err)
			}
		}
	}
	p := testgen.Platform("keys", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithService("inventory"))
	if err := k8s.Create(testCtx, p, client.DryRunAll); err == nil {
		t.Error("an unknown service key was accepted")
	}
}

func TestSampleIsAcceptedByAServerSideDryRun(t *testing.T) {
	ns := newNamespace(t)
	if err := k8s.Create(testCtx, loadSample(t, "platform.yaml", ns), client.DryRunAll); err != nil {
		t.Fatalf("dry-run create: %v", err)
	}
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed; the client dry-run above covered the sample")
	}
	user, err := testEnv.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kcfg := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kcfg, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kubectl, "--kubeconfig", kcfg, "apply", "--dry-run=server", "-n", ns,
		"-f", filepath.Join("..", "config", "samples", "platform.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("platform.platform.switchboard.dev/shop created (server dry run)")) {
		t.Errorf("unexpected kubectl output: %s", out)
	}
	for _, path := range mustGlob(t, filepath.Join("..", "config", "samples", "invalid", "*.yaml")) {
		out, err := exec.Command(kubectl, "--kubeconfig", kcfg, "apply", "--dry-run=server", "-n", ns, "-f", path).CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte(expectation(t, path))) {
			t.Errorf("kubectl apply %s: err=%v, output %s", filepath.Base(path), err, out)
		}
	}
}

// helpers

func mustGet(t *testing.T, ns, name string, obj client.Object) {
	t.Helper()
	if err := k8s.Get(testCtx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatalf("%T %s: %v", obj, name, err)
	}
}

func envByName(c corev1.Container) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		out[e.Name] = e
	}
	return out
}

func probePath(p *corev1.Probe) string {
	if p == nil || p.HTTPGet == nil {
		return ""
	}
	return p.HTTPGet.Path
}

// ownsReplicas reports whether the operator's field manager owns spec.replicas.
func ownsReplicas(d *appsv1.Deployment) bool {
	for _, mf := range d.ManagedFields {
		if mf.Manager == render.FieldManager && mf.FieldsV1 != nil && bytes.Contains(mf.FieldsV1.Raw, []byte(`"f:replicas"`)) {
			return true
		}
	}
	return false
}

func hasEvent(ns, reason string) error {
	var list eventsv1.EventList
	if err := k8s.List(testCtx, &list, client.InNamespace(ns)); err != nil {
		return err
	}
	var seen []string
	for _, e := range list.Items {
		if e.Reason == reason {
			return nil
		}
		seen = append(seen, e.Reason)
	}
	return fmt.Errorf("no %s event among %v", reason, seen)
}

func resourceVersions(t *testing.T, p *v1alpha1.Platform) map[string]string {
	t.Helper()
	out := map[string]string{"Platform/" + p.Name: get(t, p).ResourceVersion}
	for _, obj := range desiredFor(t, p) {
		live, err := fetch(t, obj)
		if err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprintf("%T/%s", obj, obj.GetName())] = live.GetResourceVersion()
	}
	return out
}

func statusOf(p *v1alpha1.Platform, service string) v1alpha1.ServiceStatus {
	for _, s := range p.Status.Services {
		if s.Name == service {
			return s
		}
	}
	return v1alpha1.ServiceStatus{}
}

func mapsEqual(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if string(b[k]) != string(v) {
			return false
		}
	}
	return true
}

// expectation reads the "# expect: ..." line at the top of an invalid sample.
func expectation(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "# expect: "); ok {
			return rest
		}
	}
	t.Fatalf("%s has no '# expect: ' line", path)
	return ""
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) == 0 {
		t.Fatalf("glob %s: %v", pattern, err)
	}
	return m
}
