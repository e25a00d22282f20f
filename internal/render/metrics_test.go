package render

import (
	"encoding/json"
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/testgen"
)

func TestBrokerMetricsSidecar(t *testing.T) {
	tests := []struct {
		name      string
		platform  *v1alpha1.Platform
		wantImage string // "" for no sidecar
	}{
		{"on by default, from the operator's services image", platform("shop"), "ghcr.io/switchboard-dev/switchboard:test"},
		{"spec.image runs it, as it runs the services", platform("shop", testgen.WithImage("registry.example/sb:v9")), "registry.example/sb:v9"},
		{"enabled explicitly is the same as by default", platform("shop", testgen.WithBrokerMetrics(true)), "ghcr.io/switchboard-dev/switchboard:test"},
		{"on beside a five-node memory broker", platform("shop", testgen.WithBrokerReplicas(5), testgen.WithStorage(v1alpha1.StorageMemory, "256Mi", "")), "ghcr.io/switchboard-dev/switchboard:test"},
		{"disabled leaves the broker container alone", platform("shop", testgen.WithBrokerMetrics(false)), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sts := find[*appsv1.StatefulSet](t, mustRender(t, tt.platform), "shop-nats")
			spec := sts.Spec.Template.Spec
			if spec.Containers[0].Name != "nats" {
				t.Errorf("first container %q, want the broker", spec.Containers[0].Name)
			}
			if got := sts.Spec.Template.Annotations["kubectl.kubernetes.io/default-container"]; got != "nats" {
				t.Errorf("default container %q, want nats (kubectl logs)", got)
			}
			if tt.wantImage == "" {
				if len(spec.Containers) != 1 {
					t.Errorf("%d containers, want the broker alone", len(spec.Containers))
				}
				return
			}
			if len(spec.Containers) != 2 {
				t.Fatalf("%d containers, want the broker and its metrics sidecar", len(spec.Containers))
			}
			want := corev1.Container{
				Name:    "metrics",
				Image:   tt.wantImage,
				Command: []string{"/switchboard"},
				Args:    []string{"broker-metrics", "--monitor-url", "http://127.0.0.1:8222", "--addr", ":7777"},
				Ports:   []corev1.ContainerPort{{Name: "metrics", ContainerPort: 7777, Protocol: corev1.ProtocolTCP}},
				LivenessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("metrics"), Scheme: corev1.URISchemeHTTP}},
					PeriodSeconds: 10, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3,
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
				},
				SecurityContext: containerSecurityContext(),
			}
			if got := spec.Containers[1]; !equality.Semantic.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Errorf("sidecar\n got %s\nwant %s", g, w)
			}
			// The monitor it reads is the broker container's.
			if !hasPort(spec.Containers[0].Ports, "monitor", MonitorPort) {
				t.Errorf("the broker declares no monitor port %d: %+v", MonitorPort, spec.Containers[0].Ports)
			}
			checkRestricted(t, spec, brokerUID)
		})
	}
}

func hasPort(ports []corev1.ContainerPort, name string, port int32) bool {
	for _, p := range ports {
		if p.Name == name && p.ContainerPort == port {
			return true
		}
	}
	return false
}

// Switching the sidecar touches the broker's containers and nothing else.
func TestBrokerMetricsChangeNothingElse(t *testing.T) {
	on := mustRender(t, platform("shop", testgen.WithBrokerReplicas(3)))
	off := mustRender(t, platform("shop", testgen.WithBrokerReplicas(3), testgen.WithBrokerMetrics(false)))
	if d := diffStrings(refs(on), refs(off)); d != "" {
		t.Fatalf("objects differ:\n%s", d)
	}
	for i := range on {
		a, b := on[i], off[i]
		if sts, ok := a.(*appsv1.StatefulSet); ok {
			sts = sts.DeepCopy()
			sts.Spec.Template.Spec.Containers = sts.Spec.Template.Spec.Containers[:1]
			a = sts
		}
		if !equality.Semantic.DeepEqual(a, b) {
			t.Errorf("%s differs beyond the sidecar", ref(a))
		}
	}
}

func TestMetricsFromRules(t *testing.T) {
	monitoring := namespacePeer("monitoring")
	prometheus := prometheusPeer("monitoring")
	office := cidrPeer("10.20.0.0/16")

	platformPeer := []networkingv1.NetworkPolicyPeer{{PodSelector: platformPods(platform("shop"))}}
	brokerPeer := []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: SelectorLabels(platform("shop"), "broker")}}}
	ports := func(names ...string) []networkingv1.NetworkPolicyPort {
		var out []networkingv1.NetworkPolicyPort
		for _, n := range names {
			out = append(out, tcpPort(n))
		}
		return out
	}
	gatewayPeer := []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: SelectorLabels(platform("shop"), "gateway")}}}
	baseServices := []networkingv1.NetworkPolicyIngressRule{{From: platformPeer, Ports: ports("http")}, {From: gatewayPeer, Ports: ports("ops")}}
	baseGateway := []networkingv1.NetworkPolicyIngressRule{{Ports: ports("http")}}
	baseBroker := []networkingv1.NetworkPolicyIngressRule{
		{From: platformPeer, Ports: ports("client", "monitor")},
		{From: brokerPeer, Ports: ports("cluster")},
	}
	with := func(base []networkingv1.NetworkPolicyIngressRule, extra ...networkingv1.NetworkPolicyIngressRule) []networkingv1.NetworkPolicyIngressRule {
		return append(append([]networkingv1.NetworkPolicyIngressRule{}, base...), extra...)
	}

	tests := []struct {
		name                 string
		platform             *v1alpha1.Platform
		services, gw, broker []networkingv1.NetworkPolicyIngressRule
		wantNoPolicies       bool
	}{
		{
			name:     "without metricsFrom the policies admit only the platform",
			platform: platform("shop"),
			services: baseServices, gw: baseGateway, broker: baseBroker,
		},
		{
			name:     "a namespace is admitted to every service's ops port and the broker's metrics port, never to an API",
			platform: platform("shop", testgen.WithMetricsFrom(monitoring)),
			services: with(baseServices, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{monitoring}, Ports: ports("ops")}),
			gw:       with(baseGateway, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{monitoring}, Ports: ports("ops")}),
			broker:   with(baseBroker, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{monitoring}, Ports: ports("metrics")}),
		},
		{
			name:     "several peers go into one rule per policy, in order",
			platform: platform("shop", testgen.WithMetricsFrom(prometheus, office)),
			services: with(baseServices, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{prometheus, office}, Ports: ports("ops")}),
			gw:       with(baseGateway, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{prometheus, office}, Ports: ports("ops")}),
			broker:   with(baseBroker, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{prometheus, office}, Ports: ports("metrics")}),
		},
		{
			name:     "without the broker's sidecar there is no metrics port to admit",
			platform: platform("shop", testgen.WithMetricsFrom(monitoring), testgen.WithBrokerMetrics(false)),
			services: with(baseServices, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{monitoring}, Ports: ports("ops")}),
			gw:       with(baseGateway, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{monitoring}, Ports: ports("ops")}),
			broker:   baseBroker,
		},
		{
			name:           "with policies off metricsFrom renders nothing",
			platform:       platform("shop", testgen.WithMetricsFrom(monitoring), testgen.WithNetworkPolicy(false)),
			wantNoPolicies: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := mustRender(t, tt.platform)
			if tt.wantNoPolicies {
				for _, o := range objs {
					if _, ok := o.(*networkingv1.NetworkPolicy); ok {
						t.Errorf("%s rendered with policies off", ref(o))
					}
				}
				return
			}
			for name, want := range map[string][]networkingv1.NetworkPolicyIngressRule{"shop-services": tt.services, "shop-gateway": tt.gw, "shop-nats": tt.broker} {
				np := find[*networkingv1.NetworkPolicy](t, objs, name)
				if !equality.Semantic.DeepEqual(np.Spec.Ingress, want) {
					got, _ := json.Marshal(np.Spec.Ingress)
					w, _ := json.Marshal(want)
					t.Errorf("%s ingress\n got %s\nwant %s", name, got, w)
				}
			}
			// Every named port a rule admits exists on a selected container.
			for _, name := range []string{"shop-services", "shop-gateway", "shop-nats"} {
				np := find[*networkingv1.NetworkPolicy](t, objs, name)
				for _, rule := range np.Spec.Ingress {
					for _, port := range rule.Ports {
						if !declared(t, objs, np, port.Port.String()) {
							t.Errorf("%s admits port %q, which no pod it selects declares", name, port.Port.String())
						}
					}
				}
			}
		})
	}
}

// declared reports whether some pod np selects declares a container port name.
func declared(t *testing.T, objs []client.Object, np *networkingv1.NetworkPolicy, name string) bool {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		t.Fatal(err)
	}
	for _, tpl := range podTemplates(objs) {
		if !sel.Matches(labels.Set(tpl.Labels)) {
			continue
		}
		for _, c := range tpl.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == name {
					return true
				}
			}
		}
	}
	return false
}

// metricsFrom changes the policies it names and nothing else, and the
// rendered peers share no memory with the Platform.
func TestMetricsFromChangesNothingElse(t *testing.T) {
	p := platform("shop", testgen.WithMetricsFrom(prometheusPeer("monitoring")))
	with := mustRender(t, p)
	without := mustRender(t, platform("shop"))
	if d := diffStrings(refs(with), refs(without)); d != "" {
		t.Fatalf("objects differ:\n%s", d)
	}
	for i := range with {
		switch ref(with[i]) {
		case "NetworkPolicy/shop-services", "NetworkPolicy/shop-gateway", "NetworkPolicy/shop-nats":
			continue
		}
		if !equality.Semantic.DeepEqual(with[i], without[i]) {
			t.Errorf("%s changed with metricsFrom", ref(with[i]))
		}
	}
	np := find[*networkingv1.NetworkPolicy](t, with, "shop-services")
	np.Spec.Ingress[2].From[0].PodSelector.MatchLabels["app.kubernetes.io/name"] = "changed"
	if got := p.Spec.NetworkPolicy.MetricsFrom[0].PodSelector.MatchLabels["app.kubernetes.io/name"]; got != "prometheus" {
		t.Errorf("editing a rendered rule edited the Platform: %q", got)
	}
	if reflect.DeepEqual(np.Spec.Ingress[2].From[0], find[*networkingv1.NetworkPolicy](t, with, "shop-nats").Spec.Ingress[2].From[0]) {
		t.Error("the services' and the broker's rules share their peers")
	}
}
