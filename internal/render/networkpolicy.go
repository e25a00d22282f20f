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

// The platform's NetworkPolicies follow the catalog: one per service and
// one for the broker, each selecting that component's pods and holding
// both directions, so `kubectl describe networkpolicy <p>-<s>` answers
// "who may reach <s>, and where may <s> go" in one place. Every pod of the
// platform is selected by exactly one of them, with policy types Ingress
// and Egress: what a policy does not admit is denied.
//
// Ingress, by port:
//   - grpc: the services that list this one among their upstreams
//     (catalog.Callers), the gateway excepted;
//   - http: the gateway, which forwards the public API to every service;
//     the gateway's own http admits anyone;
//   - ops (probes, /metrics): the gateway, which asks the services'
//     readiness for its /health, and spec.networkPolicy.metricsFrom, which
//     reaches no other port;
//   - the broker's client port: the services that use the broker (the
//     gateway has no broker access); cluster: the broker's pods; monitor:
//     the operator, the gateway (its console reads streams and consumers
//     there, with no broker credentials) and, while a service scales on
//     lag, KEDA; metrics: metricsFrom.
//
// Egress: DNS (spec.networkPolicy.dnsEgress, kube-dns by default), the
// broker's client port for the services that use it (the gateway: its
// monitor port), the upstreams' grpc port (the gateway: their http and ops
// ports), the broker's pods to each
// other on the cluster port, and, for notification, the e-mail relay of
// spec.networkPolicy.smtpEgress.
//
// Only enabled services are named: a disabled one has no pods to admit or
// reach, and the policies follow when it is switched on.
//
// Kubelet probes come from the node, which most CNIs (Calico, Cilium and
// others) admit regardless of NetworkPolicy, so ops needs no rule for them.
// A sidecar added to the pods is held to the same egress: give it its own
// (additive) NetworkPolicy.

// emailSender is the catalog service that mails notifications (its
// SMTP_ADDR), the one whose egress spec.networkPolicy.smtpEgress opens.
const emailSender = "notification"

// DNSPort is where the cluster's DNS answers by default (kube-dns).
const DNSPort = 53

// Broker port names, as its pods declare them.
const (
	portNameClient  = "client"
	portNameCluster = "cluster"
)

func networkPoliciesEnabled(p *v1alpha1.Platform) bool {
	return ptr.Deref(p.Spec.NetworkPolicy.Enabled, true)
}

// networkPolicies renders the policy of each enabled service, in catalog
// order, then the broker's.
func networkPolicies(p *v1alpha1.Platform, plans []ServicePlan, opts Options) []*networkingv1.NetworkPolicy {
	enabled := make(map[string]bool, len(plans))
	for _, s := range plans {
		enabled[s.Name] = true
	}
	var nps []*networkingv1.NetworkPolicy
	for _, s := range plans {
		nps = append(nps, networkPolicy(p, ObjectName(p, s.Name), s.Name,
			serviceIngress(p, s, enabled), serviceEgress(p, s, enabled)))
	}
	return append(nps, networkPolicy(p, BrokerName(p), ComponentBroker,
		brokerIngress(p, plans, opts), brokerEgress(p)))
}

// networkPolicy selects component's pods and admits ingress and egress as
// given, nothing else.
func networkPolicy(p *v1alpha1.Platform, name, component string, ingress []networkingv1.NetworkPolicyIngressRule, egress []networkingv1.NetworkPolicyEgressRule) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		TypeMeta:   typeMeta("networking.k8s.io/v1", "NetworkPolicy"),
		ObjectMeta: objectMeta(p, name, component),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: SelectorLabels(p, component)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress:     ingress,
			Egress:      egress,
		},
	}
}

// serviceIngress: the public port to anyone, the API to the gateway, gRPC
// to the catalog's callers, ops to the gateway (its own pods' too) and the
// scrapers.
func serviceIngress(p *v1alpha1.Platform, s ServicePlan, enabled map[string]bool) []networkingv1.NetworkPolicyIngressRule {
	var rules []networkingv1.NetworkPolicyIngressRule
	if s.Public {
		// No From: any source, in or outside the cluster.
		rules = append(rules, networkingv1.NetworkPolicyIngressRule{Ports: tcpPorts(PortNameHTTP)})
	}
	var grpcCallers []string
	for _, c := range catalog.Callers(s.Name) {
		switch {
		case !enabled[c]:
		case c == catalog.Gateway:
			rules = append(rules, networkingv1.NetworkPolicyIngressRule{From: servicePeers(p, c), Ports: tcpPorts(PortNameHTTP, PortNameOps)})
		default:
			grpcCallers = append(grpcCallers, c)
		}
	}
	if len(grpcCallers) > 0 {
		rules = append(rules, networkingv1.NetworkPolicyIngressRule{From: servicePeers(p, grpcCallers...), Ports: tcpPorts(PortNameGRPC)})
	}
	if s.Name == catalog.Gateway {
		// Each gateway pod's console reads the others' trace buffers and
		// metrics.
		rules = append(rules, networkingv1.NetworkPolicyIngressRule{From: servicePeers(p, catalog.Gateway), Ports: tcpPorts(PortNameOps)})
	}
	if scrapers := p.Spec.NetworkPolicy.MetricsFrom; len(scrapers) > 0 {
		rules = append(rules, peersRule(scrapers, PortNameOps))
	}
	return rules
}

// serviceEgress: DNS, the broker if the service uses it, its enabled
// upstreams (gRPC; the gateway: their API and ops, and its own pods' ops),
// and the e-mail relay
// for the sender.
func serviceEgress(p *v1alpha1.Platform, s ServicePlan, enabled map[string]bool) []networkingv1.NetworkPolicyEgressRule {
	rules := []networkingv1.NetworkPolicyEgressRule{dnsEgress(p)}
	brokerPods := []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: SelectorLabels(p, ComponentBroker)}}}
	switch {
	case usesBroker(s.Service):
		rules = append(rules, networkingv1.NetworkPolicyEgressRule{To: brokerPods, Ports: tcpPorts(portNameClient)})
	case s.Name == catalog.Gateway:
		// The console's view of the broker: its monitor, never its clients' port.
		rules = append(rules, networkingv1.NetworkPolicyEgressRule{To: brokerPods, Ports: tcpPorts(PortNameMonitor)})
	}
	var upstreams []string
	for _, up := range s.Upstreams {
		if enabled[up] {
			upstreams = append(upstreams, up)
		}
	}
	if len(upstreams) > 0 {
		ports := tcpPorts(PortNameGRPC)
		if s.Name == catalog.Gateway {
			ports = tcpPorts(PortNameHTTP, PortNameOps)
		}
		rules = append(rules, networkingv1.NetworkPolicyEgressRule{To: servicePeers(p, upstreams...), Ports: ports})
	}
	if s.Name == catalog.Gateway {
		rules = append(rules, networkingv1.NetworkPolicyEgressRule{To: servicePeers(p, catalog.Gateway), Ports: tcpPorts(PortNameOps)})
	}
	if relay := p.Spec.NetworkPolicy.SMTPEgress; relay != nil && s.Name == emailSender {
		rules = append(rules, egressRule(*relay))
	}
	if port, err := OTLPPort(p); err == nil && port > 0 {
		// Every service exports its spans to the collector.
		rule := networkingv1.NetworkPolicyEgressRule{Ports: []networkingv1.NetworkPolicyPort{
			{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(port))}}}
		for _, peer := range p.Spec.Observability.CollectorTo {
			rule.To = append(rule.To, *peer.DeepCopy())
		}
		rules = append(rules, rule)
	}
	return rules
}

// brokerIngress: clients from the services that use the broker, routes
// from its own pods, and the readers of its monitor and metrics.
func brokerIngress(p *v1alpha1.Platform, plans []ServicePlan, opts Options) []networkingv1.NetworkPolicyIngressRule {
	var rules []networkingv1.NetworkPolicyIngressRule
	var clients []string
	for _, s := range plans {
		if usesBroker(s.Service) {
			clients = append(clients, s.Name)
		}
	}
	if len(clients) > 0 {
		rules = append(rules, networkingv1.NetworkPolicyIngressRule{From: servicePeers(p, clients...), Ports: tcpPorts(portNameClient)})
	}
	rules = append(rules, networkingv1.NetworkPolicyIngressRule{
		From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: SelectorLabels(p, ComponentBroker)}}},
		Ports: tcpPorts(portNameCluster),
	})
	if slices.ContainsFunc(plans, func(s ServicePlan) bool { return s.Name == catalog.Gateway }) {
		// The gateway's console reads streams and consumers on the monitor.
		rules = append(rules, networkingv1.NetworkPolicyIngressRule{From: servicePeers(p, catalog.Gateway), Ports: tcpPorts(PortNameMonitor)})
	}
	if scrapers := p.Spec.NetworkPolicy.MetricsFrom; len(scrapers) > 0 && brokerMetricsEnabled(p) {
		rules = append(rules, peersRule(scrapers, PortNameMetrics))
	}
	if ns := opts.OperatorNamespace; ns != "" {
		// The operator reads each server's monitor for status and, when
		// the broker is clustered, logs in as its system user to remove
		// the servers a scale-down took away from the meta group.
		ports := []string{PortNameMonitor}
		if BrokerReplicas(p) > 1 {
			ports = append(ports, portNameClient)
		}
		rules = append(rules, networkingv1.NetworkPolicyIngressRule{
			From: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}},
				PodSelector:       &metav1.LabelSelector{MatchLabels: maps.Clone(OperatorPodLabels)},
			}},
			Ports: tcpPorts(ports...),
		})
	}
	if slices.ContainsFunc(plans, func(s ServicePlan) bool { return s.KEDA }) {
		// KEDA reads the consumers' backlog from the monitor of each server.
		rules = append(rules, peersRule(kedaPeers(p), PortNameMonitor))
	}
	return rules
}

// brokerEgress: DNS, and the other servers' cluster port, for the routes
// of a JetStream cluster (harmless with one replica, and ready for more).
func brokerEgress(p *v1alpha1.Platform) []networkingv1.NetworkPolicyEgressRule {
	return []networkingv1.NetworkPolicyEgressRule{
		dnsEgress(p),
		{
			To:    []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: SelectorLabels(p, ComponentBroker)}}},
			Ports: tcpPorts(portNameCluster),
		},
	}
}

// dnsEgress admits spec.networkPolicy.dnsEgress, else the cluster's
// kube-dns pods on UDP and TCP 53.
func dnsEgress(p *v1alpha1.Platform) networkingv1.NetworkPolicyEgressRule {
	if dns := p.Spec.NetworkPolicy.DNSEgress; dns != nil {
		return egressRule(*dns)
	}
	port := intstr.FromInt32(DNSPort)
	return networkingv1.NetworkPolicyEgressRule{
		To: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: metav1.NamespaceSystem}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}},
		}},
		Ports: []networkingv1.NetworkPolicyPort{
			{Protocol: ptr.To(corev1.ProtocolUDP), Port: &port},
			{Protocol: ptr.To(corev1.ProtocolTCP), Port: &port},
		},
	}
}

// egressRule copies an EgressSpec of the Platform into a rule, so the
// objects never share memory with the Platform.
func egressRule(e v1alpha1.EgressSpec) networkingv1.NetworkPolicyEgressRule {
	var rule networkingv1.NetworkPolicyEgressRule
	for _, peer := range e.To {
		rule.To = append(rule.To, *peer.DeepCopy())
	}
	for _, port := range e.Ports {
		rule.Ports = append(rule.Ports, *port.DeepCopy())
	}
	return rule
}

// servicePeers selects the pods of the named services of p (in p's
// namespace: a peer with no namespaceSelector means the policy's own).
func servicePeers(p *v1alpha1.Platform, names ...string) []networkingv1.NetworkPolicyPeer {
	if len(names) == 1 {
		return []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: SelectorLabels(p, names[0])}}}
	}
	return []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{
		MatchLabels:      map[string]string{LabelName: AppName, LabelInstance: p.Name},
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: LabelComponent, Operator: metav1.LabelSelectorOpIn, Values: slices.Clone(names)}},
	}}}
}

// usesBroker reports whether s talks to the broker at all: it keeps state,
// watches a bucket or exchanges events (what services/kit connects for).
func usesBroker(s catalog.Service) bool {
	return len(s.Buckets)+len(s.Reads)+len(s.Publishes)+len(s.Consumers) > 0
}

func tcpPorts(names ...string) []networkingv1.NetworkPolicyPort {
	out := make([]networkingv1.NetworkPolicyPort, len(names))
	for i, n := range names {
		out[i] = networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromString(n))}
	}
	return out
}

// peersRule admits peers (of the Platform: metricsFrom, kedaFrom) on port,
// deep-copied, so the objects never share memory with the Platform.
func peersRule(peers []networkingv1.NetworkPolicyPeer, port string) networkingv1.NetworkPolicyIngressRule {
	from := make([]networkingv1.NetworkPolicyPeer, len(peers))
	for i := range peers {
		peers[i].DeepCopyInto(&from[i])
	}
	return networkingv1.NetworkPolicyIngressRule{From: from, Ports: tcpPorts(port)}
}
