package render

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

// InternalNetworkPolicyName is the NetworkPolicy that admits only the
// platform's own pods to its internal services.
func InternalNetworkPolicyName(p *v1alpha1.Platform) string { return p.Name + "-services" }

func networkPoliciesEnabled(p *v1alpha1.Platform) bool {
	return ptr.Deref(p.Spec.NetworkPolicy.Enabled, true)
}

// platformPods selects every pod of p: the pod templates carry the full
// Labels, managed-by included.
func platformPods(p *v1alpha1.Platform) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{LabelInstance: p.Name, LabelManagedBy: FieldManager}}
}

func tcpPort(name string) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromString(name))}
}

func networkPolicy(p *v1alpha1.Platform, name, component string, pods metav1.LabelSelector, rules ...networkingv1.NetworkPolicyIngressRule) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		TypeMeta:   typeMeta("networking.k8s.io/v1", "NetworkPolicy"),
		ObjectMeta: objectMeta(p, name, component),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: pods,
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     rules,
		},
	}
}

// networkPolicies admits, on the named ports only: the platform's pods to
// its internal services' APIs (port http), and the gateway to their ops
// ports, where it asks their readiness; anyone to its public services'
// APIs (the gateway); the platform's pods to the broker's client and
// monitor ports, and the broker alone to its cluster port. Egress stays
// open: services reach only DNS, the broker and each other, and a
// default-deny egress would also break any sidecar a user adds.
//
// spec.networkPolicy.metricsFrom adds one rule to each services' policy,
// on port ops (/metrics, never the API) and, when the broker runs its
// metrics sidecar, one to the broker's (port metrics). While a KEDA
// ScaledObject scales a service, spec.networkPolicy.kedaFrom (or KEDA's
// usual namespace and labels) may reach the broker's monitor port; so may
// the operator's pods, which read it for status, when the operator says
// where it runs (Options.OperatorNamespace).
func networkPolicies(p *v1alpha1.Platform, plans []ServicePlan, opts Options) []*networkingv1.NetworkPolicy {
	// Public services come from the catalog whether enabled or not, so the
	// selector does not change when one is switched off.
	excluded := append(publicServiceNames(), ComponentBroker)
	var public []ServicePlan
	for _, s := range plans {
		if s.Public {
			public = append(public, s)
		}
	}

	scrapers := p.Spec.NetworkPolicy.MetricsFrom
	internal := []networkingv1.NetworkPolicyIngressRule{
		{
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: platformPods(p)}},
			Ports: []networkingv1.NetworkPolicyPort{tcpPort(PortNameHTTP)},
		},
		{
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: SelectorLabels(p, catalog.Gateway)}}},
			Ports: []networkingv1.NetworkPolicyPort{tcpPort(PortNameOps)},
		},
	}
	if len(scrapers) > 0 {
		internal = append(internal, metricsRule(scrapers, PortNameOps))
	}
	nps := []*networkingv1.NetworkPolicy{networkPolicy(p, InternalNetworkPolicyName(p), ComponentServices,
		metav1.LabelSelector{
			MatchLabels: map[string]string{LabelName: AppName, LabelInstance: p.Name},
			MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: LabelComponent, Operator: metav1.LabelSelectorOpNotIn, Values: excluded,
			}},
		},
		internal...,
	)}
	for _, s := range public {
		// No From: any source, in or outside the cluster.
		rules := []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{tcpPort(PortNameHTTP)}}}
		if len(scrapers) > 0 {
			rules = append(rules, metricsRule(scrapers, PortNameOps))
		}
		nps = append(nps, networkPolicy(p, ObjectName(p, s.Name), s.Name,
			metav1.LabelSelector{MatchLabels: SelectorLabels(p, s.Name)}, rules...))
	}
	broker := []networkingv1.NetworkPolicyIngressRule{
		{
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: platformPods(p)}},
			Ports: []networkingv1.NetworkPolicyPort{tcpPort("client"), tcpPort(PortNameMonitor)},
		},
		{
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: SelectorLabels(p, ComponentBroker)}}},
			Ports: []networkingv1.NetworkPolicyPort{tcpPort("cluster")},
		},
	}
	if len(scrapers) > 0 && brokerMetricsEnabled(p) {
		broker = append(broker, metricsRule(scrapers, PortNameMetrics))
	}
	if ns := opts.OperatorNamespace; ns != "" {
		// The operator reads each server's monitor for status.
		broker = append(broker, networkingv1.NetworkPolicyIngressRule{
			From: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}},
				PodSelector:       &metav1.LabelSelector{MatchLabels: maps.Clone(OperatorPodLabels)},
			}},
			Ports: []networkingv1.NetworkPolicyPort{tcpPort(PortNameMonitor)},
		})
	}
	if slices.ContainsFunc(plans, func(s ServicePlan) bool { return s.KEDA }) {
		// KEDA reads the consumers' backlog from the monitor of each server.
		broker = append(broker, metricsRule(kedaPeers(p), PortNameMonitor))
	}
	nps = append(nps, networkPolicy(p, BrokerName(p), ComponentBroker,
		metav1.LabelSelector{MatchLabels: SelectorLabels(p, ComponentBroker)},
		broker...,
	))
	return nps
}

// metricsRule admits the metricsFrom peers on port, as given (deep-copied,
// so the objects never share memory with the Platform).
func metricsRule(peers []networkingv1.NetworkPolicyPeer, port string) networkingv1.NetworkPolicyIngressRule {
	from := make([]networkingv1.NetworkPolicyPeer, len(peers))
	for i := range peers {
		peers[i].DeepCopyInto(&from[i])
	}
	return networkingv1.NetworkPolicyIngressRule{From: from, Ports: []networkingv1.NetworkPolicyPort{tcpPort(port)}}
}
