package render

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"

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

// metricsFrom adds one rule, last, to each service's policy (port ops) and
// to the broker's (port metrics, while its sidecar runs), with the peers as
// given and in order. TestNetworkPoliciesAdmitExactlyTheCatalog shows what
// those rules admit, and that nothing else does.
func TestMetricsFromRules(t *testing.T) {
	monitoring := namespacePeer("monitoring")
	prometheus := prometheusPeer("monitoring")
	office := cidrPeer("10.20.0.0/16")
	rule := func(port string, peers ...networkingv1.NetworkPolicyPeer) *networkingv1.NetworkPolicyIngressRule {
		return &networkingv1.NetworkPolicyIngressRule{From: peers, Ports: tcpPorts(port)}
	}

	tests := []struct {
		name     string
		platform *v1alpha1.Platform
		// The last rule of every service's policy and of the broker's; nil
		// for none naming the scrapers.
		services, broker *networkingv1.NetworkPolicyIngressRule
		wantNoPolicies   bool
	}{
		{
			name:     "without metricsFrom no rule names a scraper",
			platform: platform("shop"),
		},
		{
			name:     "a namespace is admitted to the services' ops and the broker's metrics port",
			platform: platform("shop", testgen.WithMetricsFrom(monitoring)),
			services: rule(PortNameOps, monitoring), broker: rule(PortNameMetrics, monitoring),
		},
		{
			name:     "several peers go into one rule per policy, in order",
			platform: platform("shop", testgen.WithMetricsFrom(prometheus, office)),
			services: rule(PortNameOps, prometheus, office), broker: rule(PortNameMetrics, prometheus, office),
		},
		{
			name:     "without the broker's sidecar there is no metrics port to admit",
			platform: platform("shop", testgen.WithMetricsFrom(monitoring), testgen.WithBrokerMetrics(false)),
			services: rule(PortNameOps, monitoring),
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
			policies := 0
			for _, o := range objs {
				np, ok := o.(*networkingv1.NetworkPolicy)
				if !ok {
					continue
				}
				policies++
				want := tt.services
				if np.Name == BrokerName(tt.platform) {
					want = tt.broker
				}
				rules := np.Spec.Ingress
				if want != nil {
					last := rules[len(rules)-1]
					if !equality.Semantic.DeepEqual(&last, want) {
						got, _ := json.Marshal(last)
						w, _ := json.Marshal(want)
						t.Errorf("%s: last ingress rule\n got %s\nwant %s", np.Name, got, w)
					}
					rules = rules[:len(rules)-1]
				}
				for _, r := range rules {
					for _, peer := range r.From {
						if slices.ContainsFunc(tt.platform.Spec.NetworkPolicy.MetricsFrom, func(m networkingv1.NetworkPolicyPeer) bool {
							return equality.Semantic.DeepEqual(peer, m)
						}) {
							t.Errorf("%s admits the scraper %+v on %v", np.Name, peer, r.Ports)
						}
					}
				}
			}
			if tt.wantNoPolicies != (policies == 0) {
				t.Errorf("%d NetworkPolicies rendered", policies)
			}
		})
	}
}

// metricsFrom changes the NetworkPolicies and nothing else, and the
// rendered peers share no memory with the Platform.
func TestMetricsFromChangesNothingElse(t *testing.T) {
	p := platform("shop", testgen.WithMetricsFrom(prometheusPeer("monitoring")))
	with := mustRender(t, p)
	without := mustRender(t, platform("shop"))
	if d := diffStrings(refs(with), refs(without)); d != "" {
		t.Fatalf("objects differ:\n%s", d)
	}
	for i := range with {
		if _, ok := with[i].(*networkingv1.NetworkPolicy); ok {
			continue
		}
		if !equality.Semantic.DeepEqual(with[i], without[i]) {
			t.Errorf("%s changed with metricsFrom", ref(with[i]))
		}
	}
	lastPeer := func(name string) *networkingv1.NetworkPolicyPeer {
		rules := find[*networkingv1.NetworkPolicy](t, with, name).Spec.Ingress
		return &rules[len(rules)-1].From[0]
	}
	order := lastPeer("shop-order")
	order.PodSelector.MatchLabels["app.kubernetes.io/name"] = "changed"
	if got := p.Spec.NetworkPolicy.MetricsFrom[0].PodSelector.MatchLabels["app.kubernetes.io/name"]; got != "prometheus" {
		t.Errorf("editing a rendered rule edited the Platform: %q", got)
	}
	for _, other := range []string{"shop-product", "shop-nats"} {
		if reflect.DeepEqual(order, lastPeer(other)) {
			t.Errorf("shop-order's and %s's rules share their peers", other)
		}
	}
}
