package render

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/testgen"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

// lagTrigger is what a nats-jetstream trigger of platform shop in namespace
// demo says.
type lagTrigger struct{ stream, consumer, threshold string }

func TestLagScaling(t *testing.T) {
	tests := []struct {
		name     string
		platform *v1alpha1.Platform
		keda     bool
		service  string
		// Exactly one of the three is set: a ScaledObject's lag triggers
		// (with its bounds and CPU target), an HPA, or fixed replicas.
		wantLag        []lagTrigger
		wantMin        int32
		wantMax        int32
		wantUtil       map[string]string // CPU and memory triggers: type → value
		wantHPA        bool
		wantFixed      int32
		wantLagPlanned bool // the plan opts in to lag (shown in status)
	}{
		{name: "analytics scales on its consumer's backlog where KEDA is installed", platform: platform("shop"), keda: true, service: "analytics",
			wantLag: []lagTrigger{{"PLAYBACK", "analytics", "100"}}, wantMin: 2, wantMax: 6, wantUtil: map[string]string{"cpu": "70"}, wantLagPlanned: true},
		{name: "without KEDA analytics keeps its CPU HPA", platform: platform("shop"), service: "analytics", wantHPA: true, wantLagPlanned: true},
		{name: "notification scales on each of its consumers within the fallback bounds", platform: platform("shop"), keda: true, service: "notification",
			wantLag: []lagTrigger{{"ORDERS", "notification-order-confirmed", "20"}, {"ORDERS", "notification-order-cancelled", "20"}, {"ORDERS", "notification-order-refunded", "20"},
				{"PAYMENTS", "notification-payment-completed", "20"}, {"PAYMENTS", "notification-payment-failed", "20"}}, wantMin: 1, wantMax: 5, wantUtil: map[string]string{"cpu": "70"}, wantLagPlanned: true},
		{name: "without KEDA notification keeps its one fixed replica", platform: platform("shop"), service: "notification", wantFixed: 1, wantLagPlanned: true},
		{name: "fixed replicas turn the catalog's lag scaling off", platform: platform("shop", testgen.WithService("notification", testgen.Replicas(3))), keda: true, service: "notification", wantFixed: 3},
		{name: "autoscaling off turns it off", platform: platform("shop", testgen.WithService("analytics", testgen.AutoscalingOff())), keda: true, service: "analytics", wantFixed: 1},
		{name: "lag enabled false keeps the CPU HPA", platform: platform("shop", testgen.WithService("analytics", testgen.Lag(false, 0))), keda: true, service: "analytics", wantHPA: true},
		{name: "the Platform's threshold, bounds and targets override the catalog's", keda: true, service: "analytics",
			platform: platform("shop", testgen.WithService("analytics", testgen.Autoscaling(3, 12, 50), testgen.MemoryTarget(80), testgen.Lag(true, 500))),
			wantLag:  []lagTrigger{{"PLAYBACK", "analytics", "500"}}, wantMin: 3, wantMax: 12, wantUtil: map[string]string{"cpu": "50", "memory": "80"}, wantLagPlanned: true},
		{name: "a Platform opts content in: its one consumer at the default threshold", keda: true, service: "content",
			platform: platform("shop", testgen.WithService("content", testgen.Lag(true, 0))),
			wantLag:  []lagTrigger{{"CONTENT", "content-encoder", "100"}}, wantMin: 1, wantMax: 5, wantUtil: map[string]string{"cpu": "70"}, wantLagPlanned: true},
		{name: "a service that does not opt in keeps its HPA beside KEDA", platform: platform("shop"), keda: true, service: "playback", wantHPA: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			opts.KEDA = tt.keda
			objs := mustRenderWith(t, tt.platform, opts)
			name := ObjectName(tt.platform, tt.service)
			d := find[*appsv1.Deployment](t, objs, name)

			for _, s := range EnabledServices(tt.platform) {
				if s.Name == tt.service && (s.Lag != nil) != tt.wantLagPlanned {
					t.Errorf("plan's Lag %+v, want planned %v", s.Lag, tt.wantLagPlanned)
				}
			}
			if got := has(objs, "HorizontalPodAutoscaler/"+name); got != tt.wantHPA {
				t.Errorf("HPA rendered %v, want %v", got, tt.wantHPA)
			}
			if got := has(objs, "ScaledObject/"+name); got != (tt.wantLag != nil) {
				t.Fatalf("ScaledObject rendered %v, want %v", got, tt.wantLag != nil)
			}
			switch {
			case tt.wantFixed > 0:
				if d.Spec.Replicas == nil || *d.Spec.Replicas != tt.wantFixed {
					t.Errorf("replicas %v, want %d", d.Spec.Replicas, tt.wantFixed)
				}
				return
			case d.Spec.Replicas != nil:
				t.Errorf("a scaled Deployment sets replicas %d: it would fight the autoscaler", *d.Spec.Replicas)
			}
			if tt.wantLag == nil {
				return
			}

			so := find[*kedav1alpha1.ScaledObject](t, objs, name)
			if want := (&kedav1alpha1.ScaleTarget{APIVersion: "apps/v1", Kind: "Deployment", Name: name}); !reflect.DeepEqual(so.Spec.ScaleTargetRef, want) {
				t.Errorf("scaleTargetRef %+v, want %+v", so.Spec.ScaleTargetRef, want)
			}
			if *so.Spec.MinReplicaCount != tt.wantMin || *so.Spec.MaxReplicaCount != tt.wantMax {
				t.Errorf("replicas %d..%d, want %d..%d", *so.Spec.MinReplicaCount, *so.Spec.MaxReplicaCount, tt.wantMin, tt.wantMax)
			}
			var lag []lagTrigger
			util := map[string]string{}
			for _, tr := range so.Spec.Triggers {
				switch tr.Type {
				case "nats-jetstream":
					m := tr.Metadata
					if m["natsServerMonitoringEndpoint"] != "shop-nats-headless.demo.svc.cluster.local:8222" || m["account"] != "$G" || len(m) != 5 {
						t.Errorf("trigger %s metadata %v", tr.Name, m)
					}
					if tr.Name != m["consumer"] {
						t.Errorf("trigger %q is not named after its consumer %q", tr.Name, m["consumer"])
					}
					lag = append(lag, lagTrigger{m["stream"], m["consumer"], m["lagThreshold"]})
				case "cpu", "memory":
					if tr.MetricType != autoscalingv2.UtilizationMetricType {
						t.Errorf("%s trigger metricType %q, want Utilization", tr.Type, tr.MetricType)
					}
					util[tr.Type] = tr.Metadata["value"]
				default:
					t.Errorf("unexpected trigger %+v", tr)
				}
			}
			if !reflect.DeepEqual(lag, tt.wantLag) {
				t.Errorf("lag triggers %+v, want %+v", lag, tt.wantLag)
			}
			if !reflect.DeepEqual(util, tt.wantUtil) {
				t.Errorf("utilization triggers %v, want %v", util, tt.wantUtil)
			}
			reqs := d.Spec.Template.Spec.Containers[0].Resources.Requests
			for r := range util {
				if _, ok := reqs[corev1.ResourceName(r)]; !ok {
					t.Errorf("the container has no %s request for its %s trigger to measure", r, r)
				}
			}
			if !has(objs, "PodDisruptionBudget/"+name) {
				t.Error("a service that can scale past one replica has no PDB")
			}
		})
	}
}

// KEDA copies a ScaledObject's labels onto the HPA it creates. The
// ScaledObject carries ours, like every child, so it tells KEDA to leave
// out those that would make its HPA look like one the operator manages.
func TestScaledObjectKeepsOurLabelsOffKEDAsHPA(t *testing.T) {
	p := platform("shop")
	so := find[*kedav1alpha1.ScaledObject](t, mustRenderWithKEDA(t, p), "shop-analytics")
	if !reflect.DeepEqual(so.Labels, Labels(p, "analytics")) {
		t.Errorf("labels %v, want %v", so.Labels, Labels(p, "analytics"))
	}
	excluded := strings.Split(so.Annotations[kedav1alpha1.ScaledObjectExcludedLabelsAnnotation], ",")
	for _, l := range []string{LabelManagedBy, LabelName, LabelPartOf} {
		if !slices.Contains(excluded, l) {
			t.Errorf("KEDA would copy %s onto its HPA (excluded: %v)", l, excluded)
		}
	}
	if len(so.OwnerReferences) != 1 || so.OwnerReferences[0].UID != testUID || !*so.OwnerReferences[0].Controller {
		t.Errorf("owner references %+v, want the Platform as controller", so.OwnerReferences)
	}
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if gvk, err := apiutil.GVKForObject(so, s); err != nil || gvk != so.GroupVersionKind() || gvk != ScaledObjectKind {
		t.Errorf("TypeMeta %v, scheme says %v (%v)", so.GroupVersionKind(), gvk, err)
	}
}

func TestKEDAReachesTheBrokerMonitorOnlyWhileItScales(t *testing.T) {
	custom := networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "autoscaling"}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "keda-operator"}},
	}
	tests := []struct {
		name     string
		platform *v1alpha1.Platform
		keda     bool
		want     []networkingv1.NetworkPolicyPeer // nil: no rule for KEDA
	}{
		{"KEDA installed, analytics and notification scale on lag: KEDA's usual namespace and labels", platform("shop"), true, []networkingv1.NetworkPolicyPeer{defaultKEDAPeer()}},
		{"kedaFrom replaces the usual peer", platform("shop", testgen.WithKEDAFrom(custom)), true, []networkingv1.NetworkPolicyPeer{custom}},
		{"KEDA not installed: no rule", platform("shop"), false, nil},
		{"no service scales on lag: no rule", platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithService("notification", testgen.Replicas(1))), true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			opts.KEDA = tt.keda
			np := find[*networkingv1.NetworkPolicy](t, mustRenderWith(t, tt.platform, opts), "shop-nats")
			var got []networkingv1.NetworkPolicyPeer
			gateway := servicePeers(tt.platform, catalog.Gateway)
			for _, rule := range np.Spec.Ingress {
				// The gateway's console reads the monitor, KEDA or not.
				if len(rule.Ports) == 1 && *rule.Ports[0].Port == intstr.FromString("monitor") && !reflect.DeepEqual(rule.From, gateway) {
					got = rule.From
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("peers admitted to the monitor alone %+v, want %+v", got, tt.want)
			}
		})
	}
	t.Run("with policies off there is nothing to open", func(t *testing.T) {
		for _, o := range mustRenderWithKEDA(t, platform("shop", testgen.WithNetworkPolicy(false))) {
			if _, ok := o.(*networkingv1.NetworkPolicy); ok {
				t.Errorf("%s rendered with policies off", ref(o))
			}
		}
	})
}

func TestLagScalingErrors(t *testing.T) {
	tests := []struct {
		name     string
		platform *v1alpha1.Platform
		want     string
	}{
		{"lag on a service without consumers", platform("shop", testgen.WithService("order", testgen.Lag(true, 0))), "spec.services.order.autoscaling.lag: order has no durable consumer"},
		{"an empty kedaFrom peer", platform("shop", testgen.WithKEDAFrom(networkingv1.NetworkPolicyPeer{})), "kedaFrom[0]: needs an ipBlock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Refused with KEDA or without: the spec is wrong either way.
			for _, keda := range []bool{false, true} {
				opts := testOptions()
				opts.KEDA = keda
				if _, err := Platform(tt.platform, opts); err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("KEDA %v: error %v, want one containing %q", keda, err, tt.want)
				}
			}
		})
	}
}

// TestGoldenWithKEDA holds what installing KEDA changes in the golden
// Platform: each object that differs or appears, as applied.
func TestGoldenWithKEDA(t *testing.T) {
	without := map[string]client.Object{}
	for _, o := range mustRender(t, fullPlatform()) {
		without[ref(o)] = o
	}
	var changed []client.Object
	for _, o := range mustRenderWithKEDA(t, fullPlatform()) {
		if before, ok := without[ref(o)]; !ok || !reflect.DeepEqual(before, o) {
			changed = append(changed, o)
		}
	}
	var buf bytes.Buffer
	if err := WriteYAML(&buf, changed); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "full-platform-keda.golden.yaml")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/render -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("rendered YAML differs from %s; review the change and run go test ./internal/render -update\n%s",
			path, firstDiff(buf.String(), string(want)))
	}
}

// The ScaledObject passes the same metadata checks as every other child.
func TestScaledObjectMetadata(t *testing.T) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{scheme.AddToScheme, AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range mustRenderWithKEDA(t, fullPlatform()) {
		gvk, err := apiutil.GVKForObject(o, s)
		if err != nil || gvk != o.GetObjectKind().GroupVersionKind() {
			t.Errorf("%s: TypeMeta %v, scheme says %v (%v)", ref(o), o.GetObjectKind().GroupVersionKind(), gvk, err)
		}
		if o.GetNamespace() != "demo" || o.GetLabels()[LabelInstance] != "shop" {
			t.Errorf("%s: namespace %q labels %v", ref(o), o.GetNamespace(), o.GetLabels())
		}
	}
}

// The operator reads each broker server's monitor for status; the broker's
// policy admits its pods there, by namespace and labels, and only there.
func TestTheOperatorReachesTheBrokerMonitor(t *testing.T) {
	opts := testOptions()
	opts.OperatorNamespace = "switchboard-system"
	np := find[*networkingv1.NetworkPolicy](t, mustRenderWith(t, platform("shop"), opts), "shop-nats")
	want := networkingv1.NetworkPolicyIngressRule{
		From: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "switchboard-system"}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{LabelName: "switchboard", LabelComponent: "operator"}},
		}},
		Ports: tcpPorts("monitor"),
	}
	if !slices.ContainsFunc(np.Spec.Ingress, func(r networkingv1.NetworkPolicyIngressRule) bool { return reflect.DeepEqual(r, want) }) {
		t.Errorf("no rule %+v in %+v", want, np.Spec.Ingress)
	}
	without := find[*networkingv1.NetworkPolicy](t, mustRender(t, platform("shop")), "shop-nats")
	if len(without.Spec.Ingress) != len(np.Spec.Ingress)-1 {
		t.Errorf("without an operator namespace %d rules, with one %d: want one rule fewer", len(without.Spec.Ingress), len(np.Spec.Ingress))
	}
	// A clustered broker also admits the operator to its client port, where
	// it logs in as the system user to remove departed servers.
	clustered := find[*networkingv1.NetworkPolicy](t, mustRenderWith(t, platform("shop", testgen.WithBrokerReplicas(3)), opts), "shop-nats")
	want.Ports = tcpPorts("monitor", "client")
	if !slices.ContainsFunc(clustered.Spec.Ingress, func(r networkingv1.NetworkPolicyIngressRule) bool { return reflect.DeepEqual(r, want) }) {
		t.Errorf("no rule %+v in %+v", want, clustered.Spec.Ingress)
	}
	if got := BrokerMonitorURL(platform("shop"), 2); got != "http://shop-nats-2.shop-nats-headless.demo.svc.cluster.local:8222" {
		t.Errorf("BrokerMonitorURL = %s", got)
	}
}
