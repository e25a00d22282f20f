package render

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/testgen"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

// These tests read the rendered NetworkPolicies the way a CNI does, with a
// small evaluator of networking.k8s.io/v1, and ask "may this pod open a
// connection to that port", rather than comparing YAML.

// endpoint is one end of a connection: a pod (its labels, in a namespace)
// or an address outside the cluster.
type endpoint struct {
	name      string
	namespace string     // "" outside the cluster
	labels    labels.Set // nil outside the cluster
	ip        netip.Addr // only outside the cluster
	ports     []port     // what it listens on
	// platform is the Platform whose pod this is, "" for any other.
	platform string
}

func (e endpoint) isPod() bool { return e.labels != nil }

// component is the component label of a platform pod ("order", "broker").
func (e endpoint) component() string { return e.labels[LabelComponent] }

// port is a listening port: its name on the pod ("" if unnamed), number and protocol.
type port struct {
	name     string
	number   int32
	protocol corev1.Protocol
}

func (p port) String() string {
	s := fmt.Sprint(p.number)
	if p.name != "" {
		s = p.name
	}
	if p.protocol != corev1.ProtocolTCP {
		s += "/" + strings.ToLower(string(p.protocol))
	}
	return s
}

// cluster holds the policies in force and the namespaces' labels.
type cluster struct {
	policies   []*networkingv1.NetworkPolicy
	namespaces map[string]labels.Set
}

// admits: src's egress and dst's ingress both let the connection through.
func (c cluster) admits(src, dst endpoint, p port) bool {
	return c.egressAdmits(src, dst, p) && c.ingressAdmits(src, dst, p)
}

// A pod no policy of a type selects is open in that direction; a selected
// one admits what some rule of some selecting policy admits.
func (c cluster) ingressAdmits(src, dst endpoint, p port) bool {
	if !dst.isPod() {
		return true
	}
	selected := false
	for _, np := range c.selecting(dst, networkingv1.PolicyTypeIngress) {
		selected = true
		for _, r := range np.Spec.Ingress {
			if c.peersMatch(r.From, np.Namespace, src) && portsMatch(r.Ports, p) {
				return true
			}
		}
	}
	return !selected
}

func (c cluster) egressAdmits(src, dst endpoint, p port) bool {
	if !src.isPod() {
		return true
	}
	selected := false
	for _, np := range c.selecting(src, networkingv1.PolicyTypeEgress) {
		selected = true
		for _, r := range np.Spec.Egress {
			if c.peersMatch(r.To, np.Namespace, dst) && portsMatch(r.Ports, p) {
				return true
			}
		}
	}
	return !selected
}

func (c cluster) selecting(pod endpoint, typ networkingv1.PolicyType) []*networkingv1.NetworkPolicy {
	var out []*networkingv1.NetworkPolicy
	for _, np := range c.policies {
		if np.Namespace == pod.namespace && selects(&np.Spec.PodSelector, pod.labels) && slices.Contains(np.Spec.PolicyTypes, typ) {
			out = append(out, np)
		}
	}
	return out
}

// peersMatch: no peers means any endpoint.
func (c cluster) peersMatch(peers []networkingv1.NetworkPolicyPeer, policyNamespace string, e endpoint) bool {
	if len(peers) == 0 {
		return true
	}
	return slices.ContainsFunc(peers, func(peer networkingv1.NetworkPolicyPeer) bool {
		return c.peerMatches(peer, policyNamespace, e)
	})
}

// peerMatches: an ipBlock matches addresses outside the cluster (pod
// addresses are the CNI's business, and no rule here relies on them);
// selectors match pods, in the policy's namespace unless a
// namespaceSelector says which.
func (c cluster) peerMatches(peer networkingv1.NetworkPolicyPeer, policyNamespace string, e endpoint) bool {
	if peer.IPBlock != nil {
		if !e.ip.IsValid() || !inCIDR(peer.IPBlock.CIDR, e.ip) {
			return false
		}
		return !slices.ContainsFunc(peer.IPBlock.Except, func(cidr string) bool { return inCIDR(cidr, e.ip) })
	}
	if !e.isPod() {
		return false
	}
	if peer.NamespaceSelector != nil {
		if !selects(peer.NamespaceSelector, c.namespaces[e.namespace]) {
			return false
		}
	} else if e.namespace != policyNamespace {
		return false
	}
	return peer.PodSelector == nil || selects(peer.PodSelector, e.labels)
}

// portsMatch: no ports means every port; a named port matches the
// destination's port of that name, a number (and endPort) its number.
func portsMatch(ports []networkingv1.NetworkPolicyPort, p port) bool {
	if len(ports) == 0 {
		return true
	}
	return slices.ContainsFunc(ports, func(np networkingv1.NetworkPolicyPort) bool {
		if ptr.Deref(np.Protocol, corev1.ProtocolTCP) != p.protocol {
			return false
		}
		switch {
		case np.Port == nil:
			return true
		case np.Port.Type == intstr.String:
			return p.name != "" && np.Port.StrVal == p.name
		default:
			return p.number >= np.Port.IntVal && p.number <= ptr.Deref(np.EndPort, np.Port.IntVal)
		}
	})
}

func selects(sel *metav1.LabelSelector, set labels.Set) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		panic(err)
	}
	return s.Matches(set)
}

func inCIDR(cidr string, ip netip.Addr) bool {
	return netip.MustParsePrefix(cidr).Contains(ip)
}

// The ports pods listen on, by the names the issue-11 wiring gives them.
var (
	servicePorts = []port{
		{PortNameHTTP, catalog.HTTPPort, corev1.ProtocolTCP},
		{PortNameOps, 8081, corev1.ProtocolTCP},
		{PortNameGRPC, 9090, corev1.ProtocolTCP},
	}
	brokerPorts = []port{
		{portNameClient, ClientPort, corev1.ProtocolTCP},
		{portNameCluster, ClusterPort, corev1.ProtocolTCP},
		{PortNameMonitor, MonitorPort, corev1.ProtocolTCP},
		{PortNameMetrics, MetricsPort, corev1.ProtocolTCP},
	}
	dnsPorts = []port{{"dns", 53, corev1.ProtocolUDP}, {"dns-tcp", 53, corev1.ProtocolTCP}}
	// anyPort is where a pod outside the platform listens.
	anyPort = []port{{"", 8080, corev1.ProtocolTCP}}
)

// Addresses outside the platform, of the test's world.
const (
	smtpRelayIP    = "198.51.100.25"
	nodeLocalDNSIP = "169.254.20.10"
	internetIP     = "203.0.113.7"
)

// world is a cluster running the rendered objects of one Platform (and,
// if given, of a neighbour in the same namespace), with the pods around
// them the policies talk about.
type world struct {
	cluster
	p         *v1alpha1.Platform
	opts      Options
	endpoints map[string]endpoint
}

func newWorld(t *testing.T, p *v1alpha1.Platform, opts Options, neighbour *v1alpha1.Platform) world {
	t.Helper()
	w := world{p: p, opts: opts, endpoints: map[string]endpoint{}, cluster: cluster{namespaces: map[string]labels.Set{}}}
	for _, ns := range []string{p.Namespace, "kube-system", "monitoring", "switchboard-system", "keda", "elsewhere"} {
		w.namespaces[ns] = labels.Set{corev1.LabelMetadataName: ns}
	}
	w.addPlatform(t, p, "", mustRenderWith(t, p, opts))
	if neighbour != nil {
		w.addPlatform(t, neighbour, neighbour.Name+"/", mustRenderWith(t, neighbour, opts))
	}
	pod := func(name, ns string, set labels.Set, ports []port) {
		w.endpoints[name] = endpoint{name: name, namespace: ns, labels: set, ports: ports}
	}
	external := func(name, ip string, ports []port) {
		w.endpoints[name] = endpoint{name: name, ip: netip.MustParseAddr(ip), ports: ports}
	}
	pod("kube-dns", "kube-system", labels.Set{"k8s-app": "kube-dns"}, dnsPorts)
	pod("prometheus", "monitoring", labels.Set{"app.kubernetes.io/name": "prometheus"}, anyPort)
	pod("operator", "switchboard-system", labels.Set(OperatorPodLabels), anyPort)
	pod("keda", "keda", labels.Set{"app": "keda-operator"}, anyPort)
	pod("elsewhere", "elsewhere", labels.Set{"app": "web"}, anyPort)
	// A pod of no platform in the platform's own namespace.
	pod("intruder", p.Namespace, labels.Set{"app": "debug"}, anyPort)
	external("internet", internetIP, []port{{"", 443, corev1.ProtocolTCP}})
	external("smtp-relay", smtpRelayIP, []port{{"", 587, corev1.ProtocolTCP}})
	external("node-local-dns", nodeLocalDNSIP, []port{{"", 53, corev1.ProtocolUDP}})
	return w
}

// addPlatform adds the policies and the pods (one per pod template) of a
// render, named by component with prefix.
func (w *world) addPlatform(t *testing.T, p *v1alpha1.Platform, prefix string, objs []client.Object) {
	t.Helper()
	for _, o := range objs {
		if np, ok := o.(*networkingv1.NetworkPolicy); ok {
			w.policies = append(w.policies, np)
		}
	}
	for _, tpl := range podTemplates(objs) {
		set := labels.Set(tpl.Labels)
		ports := servicePorts
		if set[LabelComponent] == ComponentBroker {
			ports = brokerPorts
		}
		name := prefix + set[LabelComponent]
		w.endpoints[name] = endpoint{name: name, namespace: p.Namespace, labels: set, ports: ports, platform: p.Name}
	}
}

// may is the catalog's answer: whether src may open a connection to dst's
// port p, written from the rules rather than from the render.
func (w world) may(src, dst endpoint, p port) bool {
	mine := func(e endpoint) bool { return e.platform == w.p.Name }
	np := w.p.Spec.NetworkPolicy
	switch {
	case src.platform != "" && !mine(src), dst.platform != "" && !mine(dst):
		// Another Platform's pods, even in the same namespace, are strangers.
		return false
	case mine(dst) && dst.component() == ComponentBroker:
		switch p.name {
		case portNameClient:
			// The gateway alone has no broker access; every other
			// service keeps its state in the broker. The operator logs in
			// to a clustered broker as its system user, to remove the
			// servers a scale-down took away.
			if src.name == "operator" {
				return w.opts.OperatorNamespace == "switchboard-system" && BrokerReplicas(w.p) > 1
			}
			return mine(src) && src.component() != ComponentBroker && src.component() != catalog.Gateway
		case portNameCluster:
			return mine(src) && src.component() == ComponentBroker
		case PortNameMonitor:
			// The gateway's console reads streams and consumers there.
			return (src.name == "operator" && w.opts.OperatorNamespace == "switchboard-system") || (src.name == "keda" && w.scalesOnLag()) ||
				(mine(src) && src.component() == catalog.Gateway)
		case PortNameMetrics:
			return src.name == "prometheus" && len(np.MetricsFrom) > 0 && brokerMetricsEnabled(w.p)
		}
		return false
	case mine(dst):
		d := dst.component()
		callers := catalog.Callers(d)
		if mine(src) {
			s := src.component()
			switch p.name {
			case PortNameGRPC:
				return s != catalog.Gateway && slices.Contains(callers, s)
			case PortNameHTTP:
				return s == catalog.Gateway && slices.Contains(callers, s)
			case PortNameOps:
				// The console reads every instance, the gateway's own.
				return s == catalog.Gateway && (slices.Contains(callers, s) || d == catalog.Gateway)
			}
			return false
		}
		switch p.name {
		case PortNameHTTP:
			return d == catalog.Gateway
		case PortNameOps:
			return src.name == "prometheus" && len(np.MetricsFrom) > 0
		}
		return false
	case mine(src):
		// Egress to what is not the platform: DNS and the e-mail relay.
		switch dst.name {
		case "kube-dns":
			return np.DNSEgress == nil
		case "node-local-dns":
			return np.DNSEgress != nil
		case "smtp-relay":
			return src.component() == emailSender && np.SMTPEgress != nil
		}
		return false
	}
	return true // neither end is the platform's: not its business
}

// scalesOnLag: KEDA is installed and some enabled service opts in to
// queue-lag autoscaling, so KEDA reads the broker's monitor.
func (w world) scalesOnLag() bool {
	return w.opts.KEDA && slices.ContainsFunc(EnabledServices(w.p), func(s ServicePlan) bool { return s.Lag != nil })
}

// names lists the endpoints in a stable order: the platform's own first.
func (w world) names() []string {
	var names []string
	for name := range w.endpoints {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := w.endpoints[names[i]], w.endpoints[names[j]]
		if (a.platform == w.p.Name) != (b.platform == w.p.Name) {
			return a.platform == w.p.Name
		}
		return names[i] < names[j]
	})
	return names
}

// check compares every (source, destination, port) with the catalog's
// answer, where either end is the platform's, and returns the admitted
// connections, one line per source.
//
// Each side holds the line on its own, so that neither relies on the
// other: a platform pod's egress admits exactly what the catalog lets it
// reach, and a platform pod's ingress exactly what the catalog lets reach
// it, but for the gateway's public port, which admits anyone by design
// (the platform's own pods are kept from it by their egress).
func (w world) check(t *testing.T) []string {
	t.Helper()
	var matrix []string
	for _, sn := range w.names() {
		src := w.endpoints[sn]
		var reached []string
		for _, dn := range w.names() {
			dst := w.endpoints[dn]
			if src.platform != w.p.Name && dst.platform != w.p.Name {
				continue
			}
			for _, p := range dst.ports {
				want := w.may(src, dst, p)
				if got := w.admits(src, dst, p); got != want {
					t.Errorf("%s → %s:%s: admitted %v, the catalog says %v", sn, dn, p, got, want)
				}
				if got := w.egressAdmits(src, dst, p); src.platform == w.p.Name && got != want {
					t.Errorf("%s → %s:%s: %s's egress admits %v, the catalog says %v", sn, dn, p, sn, got, want)
				}
				public := dst.component() == catalog.Gateway && p.name == PortNameHTTP
				if got := w.ingressAdmits(src, dst, p); dst.platform == w.p.Name && !public && got != want {
					t.Errorf("%s → %s:%s: %s's ingress admits %v, the catalog says %v", sn, dn, p, dn, got, want)
				}
				if want {
					reached = append(reached, dn+":"+p.String())
				}
			}
		}
		if len(reached) > 0 {
			matrix = append(matrix, fmt.Sprintf("%-16s → %s", sn, strings.Join(reached, " ")))
		}
	}
	return matrix
}

// fullWorld is a Platform with both workloads and every policy input set:
// metricsFrom, an e-mail relay, KEDA, the operator's namespace, and a
// neighbouring Platform in the same namespace.
func fullWorld(t *testing.T, opts ...testgen.PlatformOption) world {
	t.Helper()
	p := platform("shop", append([]testgen.PlatformOption{
		testgen.WithBrokerReplicas(3),
		testgen.WithMetricsFrom(prometheusPeer("monitoring")),
		testgen.WithSMTPEgress([]networkingv1.NetworkPolicyPeer{cidrPeer(smtpRelayIP + "/32")}, numericPort(587, corev1.ProtocolTCP)),
	}, opts...)...)
	o := testOptions()
	o.KEDA = true
	o.OperatorNamespace = "switchboard-system"
	return newWorld(t, p, o, platform("shopping"))
}

func numericPort(n int32, proto corev1.Protocol) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: ptr.To(proto), Port: ptr.To(intstr.FromInt32(n))}
}

// TestNetworkPoliciesAdmitExactlyTheCatalog: for every source, destination
// and port where one end is the platform's, the rendered policies admit
// the connection exactly when the catalog says so. Run with -v to see the
// admitted matrix.
func TestNetworkPoliciesAdmitExactlyTheCatalog(t *testing.T) {
	for _, tc := range []struct {
		name  string
		world func(t *testing.T) world
	}{
		{"both workloads, metricsFrom, an e-mail relay, KEDA and the operator's namespace", func(t *testing.T) world { return fullWorld(t) }},
		{"commerce without product: order reaches payment only, and nobody is admitted for product", func(t *testing.T) world {
			p := platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithService("product", testgen.Disabled()))
			return newWorld(t, p, testOptions(), nil)
		}},
		{"without the gateway nobody reaches the services' API or ops", func(t *testing.T) world {
			p := platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadStreaming), testgen.WithService("gateway", testgen.Disabled()),
				testgen.WithMetricsFrom(prometheusPeer("monitoring")), testgen.WithBrokerMetrics(false))
			return newWorld(t, p, testOptions(), nil)
		}},
		{"DNS elsewhere (NodeLocal DNSCache) replaces kube-dns", func(t *testing.T) world {
			return fullWorld(t, testgen.WithDNSEgress([]networkingv1.NetworkPolicyPeer{cidrPeer(nodeLocalDNSIP + "/32")},
				numericPort(53, corev1.ProtocolUDP), numericPort(53, corev1.ProtocolTCP)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			matrix := tc.world(t).check(t)
			t.Logf("admitted:\n%s", strings.Join(matrix, "\n"))
		})
	}
}

// Who can reach whom, in the full world, sentence by sentence: the rules
// the matrix test checks wholesale, where a reader can see them.
func TestNetworkPolicySentences(t *testing.T) {
	w := fullWorld(t)
	for _, tc := range []struct {
		name     string
		src, dst string
		port     string
		want     bool
	}{
		{"order calls product's gRPC", "order", "product", "grpc", true},
		{"order calls payment's gRPC", "order", "payment", "grpc", true},
		{"content calls account's gRPC", "content", "account", "grpc", true},
		{"playback calls content's gRPC", "playback", "content", "grpc", true},
		{"notification cannot call payment's gRPC", "notification", "payment", "grpc", false},
		{"order cannot call product's REST API", "order", "product", "http", false},
		{"the gateway calls order's REST API", "gateway", "order", "http", true},
		{"the gateway reads product's readiness on ops", "gateway", "product", "ops", true},
		{"the gateway cannot call payment's gRPC", "gateway", "payment", "grpc", false},
		{"the internet reaches the gateway's public port", "internet", "gateway", "http", true},
		{"a pod of another namespace reaches the gateway's public port", "elsewhere", "gateway", "http", true},
		{"the internet cannot reach the gateway's ops port", "internet", "gateway", "ops", false},
		{"a gateway pod's console reads the other gateway pods' ops port", "gateway", "gateway", "ops", true},
		{"order cannot read the gateway's ops port", "order", "gateway", "ops", false},
		{"a pod of another namespace cannot call order's API", "elsewhere", "order", "http", false},
		{"a stray pod in the namespace cannot call payment's gRPC", "intruder", "payment", "grpc", false},
		{"the neighbouring platform's order cannot call this product's gRPC", "shopping/order", "product", "grpc", false},
		{"metricsFrom scrapes order's ops port", "prometheus", "order", "ops", true},
		{"metricsFrom scrapes the gateway's ops port", "prometheus", "gateway", "ops", true},
		{"metricsFrom cannot call order's REST API", "prometheus", "order", "http", false},
		{"metricsFrom cannot call payment's gRPC", "prometheus", "payment", "grpc", false},
		{"metricsFrom scrapes the broker's metrics sidecar", "prometheus", "broker", "metrics", true},
		{"metricsFrom cannot reach the broker's clients' port", "prometheus", "broker", "client", false},
		{"order reaches the broker", "order", "broker", "client", true},
		{"the gateway has no broker access", "gateway", "broker", "client", false},
		{"the gateway's console reads the broker's monitor", "gateway", "broker", "monitor", true},
		{"order cannot read the broker's monitor", "order", "broker", "monitor", false},
		{"a stray pod in the namespace cannot reach the broker", "intruder", "broker", "client", false},
		{"a pod of another namespace cannot reach the broker", "elsewhere", "broker", "client", false},
		{"the broker's pods route to each other", "broker", "broker", "cluster", true},
		{"order cannot reach the broker's cluster port", "order", "broker", "cluster", false},
		{"the operator reads the broker's monitor", "operator", "broker", "monitor", true},
		{"the operator logs in to the clustered broker as its system user", "operator", "broker", "client", true},
		{"KEDA reads the broker's monitor", "keda", "broker", "monitor", true},
		{"order resolves names with kube-dns over UDP", "order", "kube-dns", "dns/udp", true},
		{"the gateway resolves names with kube-dns over TCP", "gateway", "kube-dns", "dns-tcp", true},
		{"the broker resolves names with kube-dns", "broker", "kube-dns", "dns/udp", true},
		{"notification reaches the e-mail relay", "notification", "smtp-relay", "587", true},
		{"order cannot reach the e-mail relay", "order", "smtp-relay", "587", false},
		{"notification cannot reach the internet", "notification", "internet", "443", false},
		{"the gateway cannot reach a pod of another namespace", "gateway", "elsewhere", "8080", false},
		{"payment cannot call order's gRPC: order calls payment, not back", "payment", "order", "grpc", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, ok := w.endpoints[tc.src]
			if !ok {
				t.Fatalf("no endpoint %q", tc.src)
			}
			dst, ok := w.endpoints[tc.dst]
			if !ok {
				t.Fatalf("no endpoint %q", tc.dst)
			}
			i := slices.IndexFunc(dst.ports, func(p port) bool { return p.String() == tc.port })
			if i < 0 {
				t.Fatalf("%s has no port %q (has %v)", tc.dst, tc.port, dst.ports)
			}
			if got := w.admits(src, dst, dst.ports[i]); got != tc.want {
				t.Errorf("%s → %s:%s admitted %v, want %v", tc.src, tc.dst, tc.port, got, tc.want)
			}
		})
	}
}

// Every pod of the platform is selected by exactly one policy, its own,
// for both directions: what it does not admit is denied.
func TestEveryPodHasOnePolicyBothWays(t *testing.T) {
	w := fullWorld(t)
	for _, name := range w.names() {
		pod := w.endpoints[name]
		if pod.platform == "" {
			continue
		}
		for _, typ := range []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress} {
			var got []string
			for _, np := range w.selecting(pod, typ) {
				got = append(got, np.Name)
			}
			want := []string{ObjectName(platform(pod.platform), pod.component())}
			if pod.component() == ComponentBroker {
				want = []string{BrokerName(platform(pod.platform))}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: %s policies %v, want %v", name, typ, got, want)
			}
		}
	}
}

// Every named port a rule of the platform's policies uses is a port the
// platform's pods listen on, so no rule is a typo that admits nothing.
func TestNetworkPolicyPortNamesExist(t *testing.T) {
	w := fullWorld(t)
	known := map[string]bool{}
	for _, p := range slices.Concat(servicePorts, brokerPorts) {
		known[p.name] = true
	}
	for _, np := range w.policies {
		var ports []networkingv1.NetworkPolicyPort
		for _, r := range np.Spec.Ingress {
			ports = append(ports, r.Ports...)
		}
		for _, r := range np.Spec.Egress {
			ports = append(ports, r.Ports...)
		}
		for _, p := range ports {
			if p.Port != nil && p.Port.Type == intstr.String && !known[p.Port.StrVal] {
				t.Errorf("%s names port %q, which no pod of the platform declares", np.Name, p.Port.StrVal)
			}
		}
	}
	// And the ports the services and the broker declare today carry those names.
	for owner, tpl := range podTemplates(mustRender(t, platform("shop"))) {
		for _, c := range tpl.Spec.Containers {
			for _, cp := range c.Ports {
				if !known[cp.Name] {
					t.Errorf("%s declares port %q, unknown to the policy tests", owner, cp.Name)
				}
			}
		}
	}
}
