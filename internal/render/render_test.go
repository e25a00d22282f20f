package render

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/testgen"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

// Expected object lists, in render order.

// brokerRefs lists the shared Secrets and token keys, then the broker.
func brokerRefs(p string, pdb bool) []string {
	out := []string{"Secret/" + p + "-auth", "Secret/" + p + "-token-signing", "ConfigMap/" + p + "-token-keys", "Secret/" + p + "-admin",
		"Secret/" + p + "-ca", "ConfigMap/" + p + "-nats-config", "Service/" + p + "-nats-headless", "Service/" + p + "-nats", "StatefulSet/" + p + "-nats"}
	if pdb {
		out = append(out, "PodDisruptionBudget/"+p+"-nats")
	}
	return out
}

// policyRefs lists the NetworkPolicies: one per service, then the broker's.
func policyRefs(p string, services ...string) []string {
	var out []string
	for _, s := range services {
		out = append(out, "NetworkPolicy/"+p+"-"+s)
	}
	return append(out, "NetworkPolicy/"+p+"-nats")
}

var (
	commerceServices  = []string{"user", "product", "order", "payment", "notification"}
	streamingServices = []string{"account", "content", "playback", "analytics", "recommendation"}
)

// withGateway puts the gateway first, as the catalog does.
func withGateway(services ...[]string) []string {
	return slices.Concat(append([][]string{{"gateway"}}, services...)...)
}

// svcRefs lists a service's objects: its certificate's Secret, its broker
// user's (every service but the gateway), Deployment and Service, then
// extra kinds.
func svcRefs(p, name string, extraKinds ...string) []string {
	out := []string{"Secret/" + p + "-" + name + "-tls"}
	if name != catalog.Gateway {
		out = append(out, "Secret/"+p+"-"+name+"-nats")
	}
	out = append(out, "Deployment/"+p+"-"+name, "Service/"+p+"-"+name, "Service/"+p+"-"+name+"-ops")
	for _, k := range extraKinds {
		out = append(out, k+"/"+p+"-"+name)
	}
	return out
}

const (
	kindHPA = "HorizontalPodAutoscaler"
	kindPDB = "PodDisruptionBudget"
)

func concat(lists ...[]string) []string { return slices.Concat(lists...) }

func TestPlatformObjects(t *testing.T) {
	commerce := func(p string) []string {
		return concat(svcRefs(p, "user"), svcRefs(p, "product"), svcRefs(p, "order"), svcRefs(p, "payment"), svcRefs(p, "notification"))
	}
	streaming := func(p string) []string {
		return concat(svcRefs(p, "account"), svcRefs(p, "content"), svcRefs(p, "playback", kindHPA, kindPDB), svcRefs(p, "analytics", kindHPA, kindPDB), svcRefs(p, "recommendation"))
	}
	tests := []struct {
		name     string
		platform *v1alpha1.Platform
		want     []string
	}{
		{
			name:     "commerce alone renders the broker, a policy per pod, the gateway and five services",
			platform: platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce)),
			want:     concat(brokerRefs("shop", false), policyRefs("shop", withGateway(commerceServices)...), svcRefs("shop", "gateway", kindPDB), commerce("shop")),
		},
		{
			name:     "streaming alone autoscales playback and analytics",
			platform: platform("tv", testgen.WithWorkloads(v1alpha1.WorkloadStreaming)),
			want:     concat(brokerRefs("tv", false), policyRefs("tv", withGateway(streamingServices)...), svcRefs("tv", "gateway", kindPDB), streaming("tv")),
		},
		{
			name:     "both workloads share one gateway, in catalog order",
			platform: platform("shop"),
			want:     concat(brokerRefs("shop", false), policyRefs("shop", withGateway(commerceServices, streamingServices)...), svcRefs("shop", "gateway", kindPDB), commerce("shop"), streaming("shop")),
		},
		{
			name:     "a disabled service renders nothing of its own",
			platform: platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadStreaming), testgen.WithService("recommendation", testgen.Disabled()), testgen.WithService("analytics", testgen.Disabled())),
			want: concat(brokerRefs("shop", false), policyRefs("shop", "gateway", "account", "content", "playback"), svcRefs("shop", "gateway", kindPDB),
				svcRefs("shop", "account"), svcRefs("shop", "content"), svcRefs("shop", "playback", kindHPA, kindPDB)),
		},
		{
			name:     "a disabled gateway loses its NetworkPolicy too",
			platform: platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithService("gateway", testgen.Disabled())),
			want:     concat(brokerRefs("shop", false), policyRefs("shop", commerceServices...), commerce("shop")),
		},
		{
			name:     "NetworkPolicies switched off renders none",
			platform: platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithNetworkPolicy(false)),
			want:     concat(brokerRefs("shop", false), svcRefs("shop", "gateway", kindPDB), commerce("shop")),
		},
		{
			name:     "NetworkPolicies enabled explicitly are the same as by default",
			platform: platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithNetworkPolicy(true)),
			want:     concat(brokerRefs("shop", false), policyRefs("shop", withGateway(commerceServices)...), svcRefs("shop", "gateway", kindPDB), commerce("shop")),
		},
		{
			name:     "three broker replicas add the broker PDB",
			platform: platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithBrokerReplicas(3)),
			want:     concat(brokerRefs("shop", true), policyRefs("shop", withGateway(commerceServices)...), svcRefs("shop", "gateway", kindPDB), commerce("shop")),
		},
		{
			name: "replica and autoscaling overrides move HPAs and PDBs",
			platform: platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadStreaming),
				testgen.WithService("gateway", testgen.Replicas(1)),
				testgen.WithService("account", testgen.Replicas(3)),
				testgen.WithService("content", testgen.Autoscaling(0, 0, 0)),
				testgen.WithService("playback", testgen.Replicas(1)),
				testgen.WithService("analytics", testgen.Autoscaling(1, 1, 0))),
			want: concat(brokerRefs("shop", false), policyRefs("shop", withGateway(streamingServices)...), svcRefs("shop", "gateway"),
				svcRefs("shop", "account", kindPDB), svcRefs("shop", "content", kindHPA, kindPDB), svcRefs("shop", "playback"),
				svcRefs("shop", "analytics", kindHPA), svcRefs("shop", "recommendation")),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := diffStrings(refs(mustRender(t, tt.platform)), tt.want); d != "" {
				t.Error(d)
			}
		})
	}
}

func TestFullPlatformObjectCount(t *testing.T) {
	objs := mustRender(t, fullPlatform())
	// Before issue 11: 38, with three policies (the internal services, the
	// gateway, the broker); now one policy per service (ten, recommendation
	// being off) and the broker's: eight more; the CA, ten certificates and
	// nine broker users (not the gateway): twenty more; a headless ops
	// Service per service: ten more.
	if got, want := len(objs), 76; got != want {
		t.Errorf("full platform renders %d objects, want %d:\n%s", got, want, strings.Join(refs(objs), "\n"))
	}
}

// allPlatforms are varied inputs for the invariants every render must keep.
func allPlatforms() map[string]*v1alpha1.Platform {
	return map[string]*v1alpha1.Platform{
		"the full golden platform":          fullPlatform(),
		"commerce with defaults":            platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce)),
		"streaming in memory, one replica":  platform("tv", testgen.WithWorkloads(v1alpha1.WorkloadStreaming), testgen.WithStorage(v1alpha1.StorageMemory, "512Mi", "")),
		"five broker replicas, no policies": platform("big", testgen.WithBrokerReplicas(5), testgen.WithNetworkPolicy(false), testgen.WithNamespace("prod")),
		"a NodePort gateway with overrides": platform("edge", testgen.WithGateway(corev1.ServiceTypeNodePort, 30080), testgen.WithService("order", testgen.Replicas(3)), testgen.WithService("playback", testgen.AutoscalingOff())),
		"metrics open to monitoring":        platform("obs", testgen.WithMetricsFrom(prometheusPeer("monitoring"), cidrPeer("10.0.0.0/8"))),
		"no broker metrics":                 platform("quiet", testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithBrokerMetrics(false)),
	}
}

func TestEveryObjectHasMetadata(t *testing.T) {
	for name, p := range allPlatforms() {
		t.Run(name, func(t *testing.T) {
			for _, o := range mustRender(t, p) {
				gvk := o.GetObjectKind().GroupVersionKind()
				want, err := apiutil.GVKForObject(o, scheme.Scheme)
				if err != nil {
					t.Fatal(err)
				}
				if gvk != want {
					t.Errorf("%s: TypeMeta %v, want %v", ref(o), gvk, want)
				}
				if o.GetNamespace() != p.Namespace {
					t.Errorf("%s: namespace %q, want %q", ref(o), o.GetNamespace(), p.Namespace)
				}
				l := o.GetLabels()
				for k, v := range map[string]string{
					LabelName: "switchboard", LabelPartOf: "switchboard", LabelInstance: p.Name, LabelManagedBy: FieldManager,
				} {
					if l[k] != v {
						t.Errorf("%s: label %s=%q, want %q", ref(o), k, l[k], v)
					}
				}
				if l[LabelComponent] == "" {
					t.Errorf("%s: no component label", ref(o))
				}
				if !PlatformSelector(p).Matches(labels.Set(l)) || !ManagedBySelector().Matches(labels.Set(l)) {
					t.Errorf("%s: labels %v escape the platform's selectors", ref(o), l)
				}
				owners := o.GetOwnerReferences()
				wantOwner := metav1.OwnerReference{
					APIVersion: "platform.switchboard.dev/v1alpha1", Kind: "Platform", Name: p.Name, UID: p.UID,
					Controller: ptrTo(true), BlockOwnerDeletion: ptrTo(true),
				}
				if len(owners) != 1 || !reflect.DeepEqual(owners[0], wantOwner) {
					t.Errorf("%s: owner references %+v, want [%+v]", ref(o), owners, wantOwner)
				}
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestPlatformFromAFileHasNoOwner(t *testing.T) {
	for _, o := range mustRender(t, platform("shop", testgen.WithUID(""))) {
		if len(o.GetOwnerReferences()) != 0 {
			t.Errorf("%s: owner reference to a Platform without a UID: %+v", ref(o), o.GetOwnerReferences())
		}
	}
}

func TestComponentLabels(t *testing.T) {
	objs := mustRender(t, platform("shop", testgen.WithBrokerReplicas(3)))
	want := map[string]string{
		"Secret/shop-auth":                      "auth",
		"ConfigMap/shop-nats-config":            "broker",
		"Service/shop-nats-headless":            "broker",
		"StatefulSet/shop-nats":                 "broker",
		"PodDisruptionBudget/shop-nats":         "broker",
		"NetworkPolicy/shop-order":              "order",
		"NetworkPolicy/shop-gateway":            "gateway",
		"NetworkPolicy/shop-nats":               "broker",
		"Deployment/shop-order":                 "order",
		"Service/shop-order":                    "order",
		"Service/shop-order-ops":                "order",
		"HorizontalPodAutoscaler/shop-playback": "playback",
	}
	for _, o := range objs {
		if w, ok := want[ref(o)]; ok && o.GetLabels()[LabelComponent] != w {
			t.Errorf("%s: component %q, want %q", ref(o), o.GetLabels()[LabelComponent], w)
		}
	}
}

// Selectors must select exactly the pods meant: checked by evaluating them
// against the rendered pod templates, of this platform and of a neighbour
// in the same namespace.
func TestSelectorsMatchTheirPods(t *testing.T) {
	p := platform("shop", testgen.WithBrokerReplicas(3))
	objs := mustRender(t, p)
	neighbour := mustRender(t, platform("shopping"))

	type pod struct {
		owner  string
		labels labels.Set
	}
	var pods, foreign []pod
	for owner, tpl := range podTemplates(objs) {
		pods = append(pods, pod{owner, tpl.Labels})
	}
	for owner, tpl := range podTemplates(neighbour) {
		foreign = append(foreign, pod{owner, tpl.Labels})
	}
	selected := func(sel *metav1.LabelSelector) []string {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range pods {
			if s.Matches(p.labels) {
				out = append(out, p.owner)
			}
		}
		for _, p := range foreign {
			if s.Matches(p.labels) {
				t.Errorf("selector %v matches %s of another platform", s, p.owner)
			}
		}
		slices.Sort(out)
		return out
	}
	one := func(r string) []string { return []string{r} }

	for _, o := range objs {
		var sel *metav1.LabelSelector
		var want []string
		switch o := o.(type) {
		case *appsv1.Deployment:
			sel, want = o.Spec.Selector, one(ref(o))
		case *appsv1.StatefulSet:
			sel, want = o.Spec.Selector, one(ref(o))
		case *policyv1.PodDisruptionBudget:
			sel, want = o.Spec.Selector, one(strings.Replace(ref(o), "PodDisruptionBudget/", "Deployment/", 1))
			if o.Name == BrokerName(p) {
				want = one("StatefulSet/" + o.Name)
			}
		case *corev1.Service:
			sel, want = &metav1.LabelSelector{MatchLabels: o.Spec.Selector}, one("Deployment/"+strings.TrimSuffix(o.Name, "-ops"))
			if strings.HasPrefix(o.Name, BrokerName(p)) {
				want = one("StatefulSet/" + BrokerName(p))
			}
		case *networkingv1.NetworkPolicy:
			sel, want = &o.Spec.PodSelector, one("Deployment/"+o.Name)
			if o.Name == BrokerName(p) {
				want = one("StatefulSet/" + o.Name)
			}
			// Every peer of the platform's own pods (a podSelector
			// alone) selects some of them, and none of another platform.
			var peers []networkingv1.NetworkPolicyPeer
			for _, rule := range o.Spec.Ingress {
				peers = append(peers, rule.From...)
			}
			for _, rule := range o.Spec.Egress {
				peers = append(peers, rule.To...)
			}
			for _, peer := range peers {
				if peer.PodSelector != nil && peer.NamespaceSelector == nil && peer.IPBlock == nil {
					if got := selected(peer.PodSelector); len(got) == 0 {
						t.Errorf("%s: a peer selects no pod", ref(o))
					}
				}
			}
		default:
			continue
		}
		if d := diffStrings(selected(sel), want); d != "" {
			t.Errorf("%s selects the wrong pods:\n%s", ref(o), d)
		}
	}
}

// Order's policy, as `kubectl describe` shows it: the gateway on its API
// and ops, no gRPC caller (nobody calls order); out to DNS, the broker and
// its two upstreams' gRPC.
func TestOrderNetworkPolicy(t *testing.T) {
	p := platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce))
	np := find[*networkingv1.NetworkPolicy](t, mustRender(t, p), "shop-order")
	pods := func(component string) []networkingv1.NetworkPolicyPeer {
		return []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: SelectorLabels(p, component)}}}
	}
	want := networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: SelectorLabels(p, "order")},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		Ingress: []networkingv1.NetworkPolicyIngressRule{
			{From: pods("gateway"), Ports: tcpPorts("http", "ops")},
		},
		Egress: []networkingv1.NetworkPolicyEgressRule{
			dnsEgress(p),
			{To: pods("broker"), Ports: tcpPorts("client")},
			{To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{
				MatchLabels:      map[string]string{LabelName: AppName, LabelInstance: "shop"},
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: LabelComponent, Operator: metav1.LabelSelectorOpIn, Values: []string{"product", "payment"}}},
			}}}, Ports: tcpPorts("grpc")},
		},
	}
	if !equality.Semantic.DeepEqual(np.Spec, want) {
		got, _ := json.MarshalIndent(np.Spec, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("shop-order\n got %s\nwant %s", got, w)
	}
	dns := dnsEgress(p)
	if peers := dns.To; len(peers) != 1 || peers[0].NamespaceSelector.MatchLabels[corev1.LabelMetadataName] != "kube-system" ||
		peers[0].PodSelector.MatchLabels["k8s-app"] != "kube-dns" || len(dns.Ports) != 2 {
		t.Errorf("default DNS egress %+v, want kube-dns in kube-system on UDP and TCP 53", dns)
	}
}

// pemBody is the base64 of a PEM block, as it would show if leaked.
func pemBody(pemText string) string {
	lines := strings.Split(strings.TrimSpace(pemText), "\n")
	return strings.Join(lines[1:len(lines)-1], "")
}

// The broker is never open and the tokens' private keys never leave their
// Secret: every generated value exists in its Secret and nowhere else; pods
// reach them only through secretKeyRef, and only the issuers reach the
// signing key and the first admin.
func TestSecretsOnlyInTheirSecrets(t *testing.T) {
	secrets := []string{testCredentials.NATSUser, testCredentials.NATSPassword, testAdmin.Password, "test CA key"}
	for _, k := range testTokenKeys() {
		secrets = append(secrets, pemBody(k))
	}
	for _, u := range testBrokerUsers {
		secrets = append(secrets, u.Password)
	}
	for _, l := range testIdentity().Leaves {
		secrets = append(secrets, string(l.Key))
	}
	for name, p := range allPlatforms() {
		t.Run(name, func(t *testing.T) {
			objs := mustRender(t, p)
			rendered := map[string]*corev1.Secret{}
			for _, o := range objs {
				if s, ok := o.(*corev1.Secret); ok {
					rendered[s.Name] = s
					continue
				}
				b, err := json.Marshal(o)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range secrets {
					if strings.Contains(strings.ReplaceAll(string(b), `\n`, ""), strings.TrimSpace(s)) {
						t.Errorf("%s contains a secret", ref(o))
					}
				}
			}
			for owner, tpl := range podTemplates(objs) {
				name := strings.TrimPrefix(owner, "Deployment/")
				svc := strings.TrimPrefix(name, p.Name+"-")
				issuer := slices.Contains([]string{ObjectName(p, "user"), ObjectName(p, "account")}, name)
				broker := owner == "StatefulSet/"+BrokerName(p)
				for _, c := range slices.Concat(tpl.Spec.InitContainers, tpl.Spec.Containers) {
					for _, e := range c.Env {
						for _, s := range secrets {
							if strings.Contains(e.Value, strings.TrimSpace(s)) {
								t.Errorf("%s container %s: env %s holds a secret literally", owner, c.Name, e.Name)
							}
						}
						if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
							continue
						}
						r := e.ValueFrom.SecretKeyRef
						sec, ok := rendered[r.Name]
						switch {
						case !ok:
							t.Errorf("%s: env %s refers to Secret %q, which is not rendered", owner, e.Name, r.Name)
						case broker && r.Name != AuthSecretName(p):
							t.Errorf("%s: env %s refers to Secret %q; the broker reads %s only", owner, e.Name, r.Name, AuthSecretName(p))
						case !broker && r.Name == AuthSecretName(p):
							t.Errorf("%s: env %s refers to the route credentials of %s", owner, e.Name, r.Name)
						case !broker && strings.HasSuffix(r.Name, "-nats") && r.Name != BrokerUserSecretName(p, svc):
							t.Errorf("%s: env %s refers to another service's broker user %q", owner, e.Name, r.Name)
						case slices.Contains([]string{TokenSigningSecretName(p), AdminSecretName(p)}, r.Name) && !issuer:
							t.Errorf("%s: env %s refers to Secret %q, which only user and account may read", owner, e.Name, r.Name)
						case r.Key == SecretKeyNATSPasswordHash:
							t.Errorf("%s: env %s reads the bcrypt hash, which is the broker's", owner, e.Name)
						case sec.Data[r.Key] == nil:
							t.Errorf("%s: env %s refers to missing key %q of %s", owner, e.Name, r.Key, r.Name)
						}
					}
					if c.Name == metricsContainer {
						// It reads only the monitor, which asks for no credentials.
						if len(c.Env) != 0 || len(c.EnvFrom) != 0 {
							t.Errorf("%s container %s: env %v, want none", owner, c.Name, envNames(c))
						}
						continue
					}
					if broker || svc == catalog.Gateway {
						continue
					}
					env := envMap(c)
					for _, v := range []string{"NATS_USER", "NATS_PASSWORD"} {
						if e, ok := env[v]; !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != BrokerUserSecretName(p, svc) {
							t.Errorf("%s container %s: %s is not a secretKeyRef to its own %s", owner, c.Name, v, BrokerUserSecretName(p, svc))
						}
					}
				}
				for _, v := range tpl.Spec.Volumes {
					if v.Secret == nil {
						continue
					}
					if broker || v.Secret.SecretName != TLSSecretName(p, svc) {
						t.Errorf("%s mounts Secret %s; a service mounts its own %s only", owner, v.Secret.SecretName, TLSSecretName(p, svc))
					}
					if _, ok := rendered[v.Secret.SecretName]; !ok {
						t.Errorf("%s mounts Secret %s, which is not rendered", owner, v.Secret.SecretName)
					}
				}
			}
			sec := rendered[AuthSecretName(p)]
			want := map[string][]byte{
				"nats-user": []byte(testCredentials.NATSUser), "nats-password": []byte(testCredentials.NATSPassword),
				"nats-system-user": []byte(testCredentials.SystemUser), "nats-system-password": []byte(testCredentials.SystemPassword),
			}
			if sec.Type != corev1.SecretTypeOpaque || !reflect.DeepEqual(sec.Data, want) || sec.StringData != nil {
				t.Errorf("auth Secret: type %q data %q stringData %v", sec.Type, sec.Data, sec.StringData)
			}
		})
	}
}

func TestServiceEnv(t *testing.T) {
	fromSecret := func(name, secret, key string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}}}
	}
	// identity is what every service gets first: its API's and ops port's
	// addresses and its certificate's directory, then gRPC's address if it
	// serves gRPC.
	identity := func(grpc bool) []corev1.EnvVar {
		env := []corev1.EnvVar{{Name: "HTTP_ADDR", Value: ":8080"}, {Name: "OPS_ADDR", Value: ":8081"}, {Name: "TLS_DIR", Value: "/var/run/switchboard/tls"}}
		if grpc {
			env = append(env, corev1.EnvVar{Name: "GRPC_ADDR", Value: ":9090"})
		}
		return env
	}
	// broker is the broker's URL and the service's own user.
	broker := func(p, ns, svc string) []corev1.EnvVar {
		return []corev1.EnvVar{
			{Name: "NATS_URL", Value: "nats://" + p + "-nats." + ns + ".svc.cluster.local:4222"},
			fromSecret("NATS_USER", p+"-"+svc+"-nats", "nats-user"),
			fromSecret("NATS_PASSWORD", p+"-"+svc+"-nats", "nats-password"),
		}
	}
	// lifecycle is the same for every service of a platform that talks to
	// the broker, with the platform's broker services, from which each
	// learns what it owns; the gateway gets only the drain.
	lifecycle := func(replicas, bytes, services string) []corev1.EnvVar {
		return []corev1.EnvVar{{Name: "BROKER_REPLICAS", Value: replicas}, {Name: "BROKER_STORE_BYTES", Value: bytes},
			{Name: "BROKER_SERVICES", Value: services}, {Name: "SHUTDOWN_DRAIN", Value: "5s"}}
	}
	commerce, streaming := "user,product,order,payment,notification", "account,content,playback,analytics,recommendation"
	oneGi := func(services string) []corev1.EnvVar { return lifecycle("1", "1073741824", services) }
	drain := []corev1.EnvVar{{Name: "SHUTDOWN_DRAIN", Value: "5s"}}
	tokenKeys := func(p string) []corev1.EnvVar {
		return []corev1.EnvVar{{Name: "TOKEN_KEYS", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: p + "-token-keys"}, Key: "keys.pem"}}}}
	}
	tests := []struct {
		name     string
		platform *v1alpha1.Platform
		service  string
		want     []corev1.EnvVar
	}{
		{
			name:     "order gets the broker as its own user and both upstreams",
			platform: platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce)),
			service:  "order",
			want: slices.Concat(identity(false), broker("shop", "demo", "order"), tokenKeys("shop"),
				[]corev1.EnvVar{
					{Name: "PRODUCT_GRPC", Value: "dns:///shop-product.demo.svc.cluster.local:9090"},
					{Name: "PAYMENT_GRPC", Value: "dns:///shop-payment.demo.svc.cluster.local:9090"},
				}, oneGi(commerce)),
		},
		{
			name:     "order keeps the gRPC target of a disabled product, to fail loudly, and knows product runs no broker user",
			platform: platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithService("product", testgen.Disabled())),
			service:  "order",
			want: slices.Concat(identity(false), broker("shop", "demo", "order"), tokenKeys("shop"),
				[]corev1.EnvVar{
					{Name: "PRODUCT_GRPC", Value: "dns:///shop-product.demo.svc.cluster.local:9090"},
					{Name: "PAYMENT_GRPC", Value: "dns:///shop-payment.demo.svc.cluster.local:9090"},
				}, oneGi("user,order,payment,notification")),
		},
		{
			name:     "payment serves gRPC and calls no one",
			platform: platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce)),
			service:  "payment",
			want:     slices.Concat(identity(true), broker("shop", "demo", "payment"), tokenKeys("shop"), oneGi(commerce)),
		},
		{
			name:     "a service without upstreams gets only the broker",
			platform: platform("tv", testgen.WithWorkloads(v1alpha1.WorkloadStreaming), testgen.WithNamespace("media")),
			service:  "analytics",
			want:     slices.Concat(identity(false), broker("tv", "media", "analytics"), tokenKeys("tv"), oneGi(streaming)),
		},
		{
			name:     "the gateway gets each enabled upstream's API and ops URL, and the proxies it trusts",
			platform: platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithService("notification", testgen.Disabled()), testgen.WithTrustedProxies("10.0.0.0/8", "fd00::/8")),
			service:  "gateway",
			want: slices.Concat(identity(false), tokenKeys("shop"),
				[]corev1.EnvVar{
					{Name: "USER_URL", Value: "https://shop-user.demo.svc.cluster.local:80"},
					{Name: "USER_OPS_URL", Value: "http://shop-user-ops.demo.svc.cluster.local:8081"},
					{Name: "PRODUCT_URL", Value: "https://shop-product.demo.svc.cluster.local:80"},
					{Name: "PRODUCT_OPS_URL", Value: "http://shop-product-ops.demo.svc.cluster.local:8081"},
					{Name: "ORDER_URL", Value: "https://shop-order.demo.svc.cluster.local:80"},
					{Name: "ORDER_OPS_URL", Value: "http://shop-order-ops.demo.svc.cluster.local:8081"},
					{Name: "PAYMENT_URL", Value: "https://shop-payment.demo.svc.cluster.local:80"},
					{Name: "PAYMENT_OPS_URL", Value: "http://shop-payment-ops.demo.svc.cluster.local:8081"},
					{Name: "BROKER_MONITOR_URL", Value: "http://shop-nats.demo.svc.cluster.local:8222"},
					{Name: "GATEWAY_OPS_URL", Value: "http://shop-gateway-ops.demo.svc.cluster.local:8081"},
					{Name: "TRUSTED_PROXY_CIDRS", Value: "10.0.0.0/8,fd00::/8"},
				}, drain),
		},
		{
			name:     "an issuer also gets the signing key spec.auth names, the token lifetime and the first admin",
			platform: platform("tv", testgen.WithWorkloads(v1alpha1.WorkloadStreaming), testgen.WithSigningKey("v2", "v1", "v2"), testgen.WithTokenTTL(30*time.Minute)),
			service:  "account",
			want: slices.Concat(identity(true), broker("tv", "demo", "account"), tokenKeys("tv"),
				[]corev1.EnvVar{
					fromSecret("TOKEN_SIGNING_KEY", "tv-token-signing", "v2"),
					{Name: "TOKEN_TTL", Value: "30m0s"},
					fromSecret("ADMIN_EMAIL", "tv-admin", "email"),
					fromSecret("ADMIN_PASSWORD", "tv-admin", "password"),
				}, oneGi(streaming)),
		},
		{
			name:     "the gateway verifies tokens, signs none and has no broker at all",
			platform: platform("tv", testgen.WithWorkloads(v1alpha1.WorkloadStreaming)),
			service:  "gateway",
			want: slices.Concat(identity(false), tokenKeys("tv"),
				[]corev1.EnvVar{
					{Name: "ACCOUNT_URL", Value: "https://tv-account.demo.svc.cluster.local:80"},
					{Name: "ACCOUNT_OPS_URL", Value: "http://tv-account-ops.demo.svc.cluster.local:8081"},
					{Name: "CONTENT_URL", Value: "https://tv-content.demo.svc.cluster.local:80"},
					{Name: "CONTENT_OPS_URL", Value: "http://tv-content-ops.demo.svc.cluster.local:8081"},
					{Name: "PLAYBACK_URL", Value: "https://tv-playback.demo.svc.cluster.local:80"},
					{Name: "PLAYBACK_OPS_URL", Value: "http://tv-playback-ops.demo.svc.cluster.local:8081"},
					{Name: "ANALYTICS_URL", Value: "https://tv-analytics.demo.svc.cluster.local:80"},
					{Name: "ANALYTICS_OPS_URL", Value: "http://tv-analytics-ops.demo.svc.cluster.local:8081"},
					{Name: "RECOMMENDATION_URL", Value: "https://tv-recommendation.demo.svc.cluster.local:80"},
					{Name: "RECOMMENDATION_OPS_URL", Value: "http://tv-recommendation-ops.demo.svc.cluster.local:8081"},
					{Name: "BROKER_MONITOR_URL", Value: "http://tv-nats.demo.svc.cluster.local:8222"},
					{Name: "GATEWAY_OPS_URL", Value: "http://tv-gateway-ops.demo.svc.cluster.local:8081"},
				}, drain),
		},
		{
			name:     "a three-server broker with 10Gi: replicas and store for every service",
			platform: platform("big", testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithBrokerReplicas(3), testgen.WithStorage(v1alpha1.StorageFile, "10Gi", "")),
			service:  "product",
			want:     slices.Concat(identity(true), broker("big", "demo", "product"), tokenKeys("big"), lifecycle("3", "10737418240", commerce)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := find[*appsv1.Deployment](t, mustRender(t, tt.platform), ObjectName(tt.platform, tt.service))
			if got := d.Spec.Template.Spec.Containers[0].Env; !reflect.DeepEqual(got, tt.want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(tt.want)
				t.Errorf("env\n got %s\nwant %s", g, w)
			}
		})
	}
}

func TestGatewayRoutesOnlyEnabledServices(t *testing.T) {
	upstreamURLs := func(c corev1.Container) []string {
		var out []string
		for _, n := range envNames(c) {
			if strings.HasSuffix(n, "_URL") && !strings.HasSuffix(n, "_OPS_URL") && n != "NATS_URL" && n != catalog.EnvBrokerMonitorURL {
				out = append(out, n)
			}
		}
		return out
	}
	tests := []struct {
		name     string
		platform *v1alpha1.Platform
		want     []string
	}{
		{"commerce routes to commerce only", platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce)),
			[]string{"USER_URL", "PRODUCT_URL", "ORDER_URL", "PAYMENT_URL", "NOTIFICATION_URL"}},
		{"streaming routes to streaming only", platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadStreaming)),
			[]string{"ACCOUNT_URL", "CONTENT_URL", "PLAYBACK_URL", "ANALYTICS_URL", "RECOMMENDATION_URL"}},
		{"both route to all ten", platform("shop"),
			[]string{"USER_URL", "PRODUCT_URL", "ORDER_URL", "PAYMENT_URL", "NOTIFICATION_URL", "ACCOUNT_URL", "CONTENT_URL", "PLAYBACK_URL", "ANALYTICS_URL", "RECOMMENDATION_URL"}},
		{"a disabled service gets no route", platform("shop", testgen.WithService("recommendation", testgen.Disabled()), testgen.WithService("payment", testgen.Disabled())),
			[]string{"USER_URL", "PRODUCT_URL", "ORDER_URL", "NOTIFICATION_URL", "ACCOUNT_URL", "CONTENT_URL", "PLAYBACK_URL", "ANALYTICS_URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := find[*appsv1.Deployment](t, mustRender(t, tt.platform), "shop-gateway")
			if diff := diffStrings(upstreamURLs(d.Spec.Template.Spec.Containers[0]), tt.want); diff != "" {
				t.Error(diff)
			}
		})
	}
}

func TestDeploymentShape(t *testing.T) {
	p := platform("shop", testgen.WithService("order", testgen.Replicas(2)))
	objs := mustRender(t, p)
	for _, o := range objs {
		d, ok := o.(*appsv1.Deployment)
		if !ok {
			continue
		}
		svc := d.Labels[LabelComponent]
		t.Run(svc, func(t *testing.T) {
			spec := d.Spec.Template.Spec
			if len(spec.Containers) != 1 {
				t.Fatalf("%d containers", len(spec.Containers))
			}
			c := spec.Containers[0]
			if c.Image != "ghcr.io/switchboard-dev/switchboard:test" {
				t.Errorf("image %q", c.Image)
			}
			if !reflect.DeepEqual(c.Command, []string{"/switchboard"}) || !reflect.DeepEqual(c.Args, []string{"serve", svc}) {
				t.Errorf("command %q args %q", c.Command, c.Args)
			}
			cat, _ := catalog.Lookup(svc)
			want := []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}, {Name: "ops", ContainerPort: 8081, Protocol: corev1.ProtocolTCP}}
			if cat.ServesGRPC() {
				want = append(want, corev1.ContainerPort{Name: "grpc", ContainerPort: 9090, Protocol: corev1.ProtocolTCP})
			}
			if !reflect.DeepEqual(c.Ports, want) {
				t.Errorf("ports %+v, want %+v", c.Ports, want)
			}
			for name, pr := range map[string]*corev1.Probe{"/healthz startup": c.StartupProbe, "/healthz liveness": c.LivenessProbe, "/readyz readiness": c.ReadinessProbe} {
				path := strings.Fields(name)[0]
				if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != path || pr.HTTPGet.Port.String() != "ops" {
					t.Errorf("%s probe: %+v", name, pr)
				}
			}
			checkRestricted(t, spec, 65532)
			if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/tmp" }) {
				t.Error("no writable /tmp")
			}
			wantMount := corev1.VolumeMount{Name: "tls", MountPath: "/var/run/switchboard/tls", ReadOnly: true}
			wantVolume := corev1.Volume{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: "shop-" + svc + "-tls", DefaultMode: ptr.To[int32](0o440)}}}
			if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return equality.Semantic.DeepEqual(m, wantMount) }) || !slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return equality.Semantic.DeepEqual(v, wantVolume) }) {
				t.Errorf("its certificate is not mounted read-only at TLS_DIR: mounts %+v, volumes %+v", c.VolumeMounts, spec.Volumes)
			}
			if d.Spec.RevisionHistoryLimit == nil || *d.Spec.RevisionHistoryLimit > 5 {
				t.Errorf("revisionHistoryLimit %v", d.Spec.RevisionHistoryLimit)
			}
			if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
				t.Error("service account token mounted")
			}
			// Its own broker user rolls it; the gateway has none. No
			// annotation follows the certificate: a renewal rolls nothing.
			got, ok := d.Spec.Template.Annotations[AnnotationAuthHash]
			switch {
			case svc == catalog.Gateway && ok:
				t.Errorf("the gateway, which has no broker user, carries auth hash %q", got)
			case svc != catalog.Gateway && got != testBrokerUsers[svc].hash():
				t.Errorf("auth hash annotation %q, want the hash of its own broker user", got)
			}
			for k := range d.Spec.Template.Annotations {
				if strings.Contains(k, "tls") || strings.Contains(k, "cert") {
					t.Errorf("annotation %s would roll the pods on every renewal", k)
				}
			}
		})
	}
}

// checkRestricted asserts Pod Security "restricted" for every container.
func checkRestricted(t *testing.T, spec corev1.PodSpec, uid int64) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != uid ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v", psc)
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 ||
			(sc.Privileged != nil && *sc.Privileged) {
			t.Errorf("container %s security context %+v", c.Name, sc)
		}
	}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			t.Errorf("hostPath volume %s", v.Name)
		}
	}
}

func TestServicesImage(t *testing.T) {
	objs := mustRender(t, platform("shop", testgen.WithImage("registry.example/sb:v9")))
	if got := find[*appsv1.Deployment](t, objs, "shop-order").Spec.Template.Spec.Containers[0].Image; got != "registry.example/sb:v9" {
		t.Errorf("spec.image ignored: %q", got)
	}
}

func TestBrokerImage(t *testing.T) {
	tests := []struct {
		name     string
		platform *v1alpha1.Platform
		operator string // Options.BrokerImage, the operator's --default-broker-image
		want     string
	}{
		{"no image anywhere runs the official image of the embedded server", platform("shop"), "", DefaultBrokerImage},
		{"the operator's default replaces the official image", platform("shop"), "switchboard.local/nats:2.15.2", "switchboard.local/nats:2.15.2"},
		{"spec.broker.image wins over the operator's default", platform("shop", testgen.WithBrokerImage("mirror.example/nats:2.15.2-alpine")), "switchboard.local/nats:2.15.2", "mirror.example/nats:2.15.2-alpine"},
		{"spec.broker.image wins over the official image", platform("shop", testgen.WithBrokerImage("mirror.example/nats:2.15.2-alpine")), "", "mirror.example/nats:2.15.2-alpine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			opts.BrokerImage = tt.operator
			objs, err := Platform(tt.platform, opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := find[*appsv1.StatefulSet](t, objs, "shop-nats").Spec.Template.Spec.Containers[0].Image; got != tt.want {
				t.Errorf("broker image %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAutoscaledDeploymentAndHPA(t *testing.T) {
	tests := []struct {
		name      string
		platform  *v1alpha1.Platform
		service   string
		wantHPA   *catalog.Autoscaling // nil: no HPA, fixed replicas
		wantFixed int32
	}{
		{"playback autoscales with the catalog defaults", platform("shop"), "playback", &catalog.Autoscaling{MinReplicas: 2, MaxReplicas: 10, TargetCPUUtilizationPercentage: 70}, 0},
		{"analytics autoscales with the catalog defaults", platform("shop"), "analytics", &catalog.Autoscaling{MinReplicas: 2, MaxReplicas: 6, TargetCPUUtilizationPercentage: 70}, 0},
		{"an autoscaling block overrides the catalog", platform("shop", testgen.WithService("playback", testgen.Autoscaling(2, 20, 60))), "playback", &catalog.Autoscaling{MinReplicas: 2, MaxReplicas: 20, TargetCPUUtilizationPercentage: 60}, 0},
		{"replicas switch the catalog's autoscaling off", platform("shop", testgen.WithService("playback", testgen.Replicas(4))), "playback", nil, 4},
		{"autoscaling enabled false leaves one replica", platform("shop", testgen.WithService("analytics", testgen.AutoscalingOff())), "analytics", nil, 1},
		{"an empty autoscaling block turns a fixed service to 1..5 at 70%", platform("shop", testgen.WithService("order", testgen.Autoscaling(0, 0, 0))), "order", &catalog.Autoscaling{MinReplicas: 1, MaxReplicas: 5, TargetCPUUtilizationPercentage: 70}, 0},
		{"a min above the catalog max raises the max", platform("shop", testgen.WithService("analytics", testgen.Autoscaling(8, 0, 0))), "analytics", &catalog.Autoscaling{MinReplicas: 8, MaxReplicas: 8, TargetCPUUtilizationPercentage: 70}, 0},
		{"a min above the fallback max raises the max", platform("shop", testgen.WithService("user", testgen.Autoscaling(7, 0, 50))), "user", &catalog.Autoscaling{MinReplicas: 7, MaxReplicas: 7, TargetCPUUtilizationPercentage: 50}, 0},
		{"a max below the catalog min keeps min and max as given", platform("shop", testgen.WithService("playback", testgen.Autoscaling(1, 1, 0))), "playback", &catalog.Autoscaling{MinReplicas: 1, MaxReplicas: 1, TargetCPUUtilizationPercentage: 70}, 0},
		{"the gateway runs two replicas from the catalog", platform("shop"), "gateway", nil, 2},
		{"a fixed service runs its catalog count", platform("shop"), "notification", nil, 1},
		{"a memory target adds a memory metric beside the CPU one", platform("shop", testgen.WithService("playback", testgen.MemoryTarget(80))), "playback", &catalog.Autoscaling{MinReplicas: 2, MaxReplicas: 10, TargetCPUUtilizationPercentage: 70, TargetMemoryUtilizationPercentage: 80}, 0},
		{"a memory target alone turns a fixed service to 1..5", platform("shop", testgen.WithService("order", testgen.MemoryTarget(60))), "order", &catalog.Autoscaling{MinReplicas: 1, MaxReplicas: 5, TargetCPUUtilizationPercentage: 70, TargetMemoryUtilizationPercentage: 60}, 0},
		{"a memory target on a container requesting only CPU gets the default memory request", platform("shop", testgen.WithService("order", testgen.Resources(requests("100m", "")), testgen.MemoryTarget(75))), "order", &catalog.Autoscaling{MinReplicas: 1, MaxReplicas: 5, TargetCPUUtilizationPercentage: 70, TargetMemoryUtilizationPercentage: 75}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := mustRender(t, tt.platform)
			name := ObjectName(tt.platform, tt.service)
			d := find[*appsv1.Deployment](t, objs, name)
			if tt.wantHPA == nil {
				if d.Spec.Replicas == nil || *d.Spec.Replicas != tt.wantFixed {
					t.Errorf("replicas %v, want %d", d.Spec.Replicas, tt.wantFixed)
				}
				if has(objs, "HorizontalPodAutoscaler/"+name) {
					t.Error("unexpected HPA")
				}
				return
			}
			if d.Spec.Replicas != nil {
				t.Errorf("autoscaled Deployment sets replicas %d: it would fight the HPA", *d.Spec.Replicas)
			}
			h := find[*autoscalingv2.HorizontalPodAutoscaler](t, objs, name)
			want := autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
				MinReplicas:    &tt.wantHPA.MinReplicas,
				MaxReplicas:    tt.wantHPA.MaxReplicas,
				Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
					Name:   corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &tt.wantHPA.TargetCPUUtilizationPercentage},
				}}},
			}
			if m := tt.wantHPA.TargetMemoryUtilizationPercentage; m > 0 {
				want.Metrics = append(want.Metrics, autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
					Name:   corev1.ResourceMemory,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &m},
				}})
				if _, ok := d.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceMemory]; !ok {
					t.Error("container with a memory target has no memory request to measure utilization against")
				}
			}
			if !reflect.DeepEqual(h.Spec, want) {
				g, _ := json.Marshal(h.Spec)
				w, _ := json.Marshal(want)
				t.Errorf("HPA\n got %s\nwant %s", g, w)
			}
			if _, ok := d.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; !ok {
				t.Error("autoscaled container has no CPU request to measure utilization against")
			}
		})
	}
}

func TestPDBOnlyWhenMoreThanOneReplicaCanRun(t *testing.T) {
	tests := []struct {
		name     string
		platform *v1alpha1.Platform
		object   string
		want     bool
	}{
		{"one fixed replica: none", platform("shop"), "shop-order", false},
		{"two fixed replicas: one", platform("shop", testgen.WithService("order", testgen.Replicas(2))), "shop-order", true},
		{"the gateway's two catalog replicas: one", platform("shop"), "shop-gateway", true},
		{"autoscaled up to ten: one", platform("shop"), "shop-playback", true},
		{"autoscaled 1..1: none", platform("shop", testgen.WithService("playback", testgen.Autoscaling(1, 1, 0))), "shop-playback", false},
		{"a single broker: none", platform("shop"), "shop-nats", false},
		{"three brokers: one", platform("shop", testgen.WithBrokerReplicas(3)), "shop-nats", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := mustRender(t, tt.platform)
			if got := has(objs, "PodDisruptionBudget/"+tt.object); got != tt.want {
				t.Fatalf("PDB present = %v, want %v", got, tt.want)
			}
			if !tt.want {
				return
			}
			b := find[*policyv1.PodDisruptionBudget](t, objs, tt.object)
			if b.Spec.MaxUnavailable == nil || b.Spec.MaxUnavailable.IntValue() != 1 || b.Spec.MinAvailable != nil {
				t.Errorf("PDB spec %+v, want maxUnavailable 1", b.Spec)
			}
		})
	}
}

func TestResources(t *testing.T) {
	builtin := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
	tests := []struct {
		name     string
		platform *v1alpha1.Platform
		service  string
		want     corev1.ResourceRequirements
	}{
		{"nothing set: the built-in default", platform("shop"), "order", builtin},
		{"spec.defaults applies to every service", platform("shop", testgen.WithDefaultResources(requests("100m", "128Mi"))), "order", requests("100m", "128Mi")},
		{"a service's own resources win", platform("shop", testgen.WithDefaultResources(requests("100m", "128Mi")), testgen.WithService("order", testgen.Resources(requests("1", "1Gi")))), "order", requests("1", "1Gi")},
		{"an autoscaled service without a CPU request gets the default one", platform("shop", testgen.WithDefaultResources(requests("", "128Mi"))), "playback", requests("50m", "128Mi")},
		{"a fixed service without a CPU request is left alone", platform("shop", testgen.WithDefaultResources(requests("", "128Mi"))), "order", requests("", "128Mi")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := find[*appsv1.Deployment](t, mustRender(t, tt.platform), ObjectName(tt.platform, tt.service))
			got := d.Spec.Template.Spec.Containers[0].Resources
			if !equality.Semantic.DeepEqual(got, tt.want) {
				t.Errorf("resources %v, want %v", got, tt.want)
			}
			// Canonical quantities: what the API server will store.
			for _, list := range []corev1.ResourceList{got.Requests, got.Limits} {
				for name, q := range list {
					if canonical := resource.MustParse(q.String()); q.String() != canonical.String() {
						t.Errorf("%s quantity %s is not canonical", name, q.String())
					}
				}
			}
		})
	}
	// The Platform's own quantities are not aliased into the objects.
	p := platform("shop", testgen.WithDefaultResources(requests("100m", "128Mi")))
	d := find[*appsv1.Deployment](t, mustRender(t, p), "shop-order")
	d.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("9")
	if got := p.Spec.Defaults.Resources.Requests[corev1.ResourceCPU]; got.String() != "100m" {
		t.Errorf("rendering aliased spec.defaults: now %s", got.String())
	}
}

func TestServiceObjects(t *testing.T) {
	tests := []struct {
		name     string
		platform *v1alpha1.Platform
		service  string
		wantType corev1.ServiceType
		wantNode int32
	}{
		{"a service is ClusterIP on port 80", platform("shop"), "order", corev1.ServiceTypeClusterIP, 0},
		{"the gateway defaults to ClusterIP", platform("shop"), "gateway", corev1.ServiceTypeClusterIP, 0},
		{"the gateway takes serviceType and nodePort", platform("shop", testgen.WithGateway(corev1.ServiceTypeNodePort, 30080)), "gateway", corev1.ServiceTypeNodePort, 30080},
		{"a LoadBalancer gateway lets Kubernetes pick the node port", platform("shop", testgen.WithGateway(corev1.ServiceTypeLoadBalancer, 0)), "gateway", corev1.ServiceTypeLoadBalancer, 0},
		{"serviceType applies to the gateway only", platform("shop", testgen.WithGateway(corev1.ServiceTypeNodePort, 30080)), "order", corev1.ServiceTypeClusterIP, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := find[*corev1.Service](t, mustRender(t, tt.platform), ObjectName(tt.platform, tt.service))
			if s.Spec.Type != tt.wantType {
				t.Errorf("type %q, want %q", s.Spec.Type, tt.wantType)
			}
			// The API, and gRPC for the services that serve it; never
			// the ops port, which the headless ops Service carries.
			port := s.Spec.Ports[0]
			if port.Name != "http" || port.Port != 80 || port.TargetPort.String() != "http" || port.NodePort != tt.wantNode {
				t.Errorf("port %+v", port)
			}
			for _, sp := range s.Spec.Ports {
				if sp.Name == PortNameOps || sp.Port == catalog.OpsPort {
					t.Errorf("ClusterIP Service carries the ops port: %+v", sp)
				}
			}
		})
	}
}

// The gateway reads each service's ops port on every instance, its own
// included: the headless ops Service resolves to each pod (not ready ones
// included, for the console to count), the gateway's <SERVICE>_OPS_URL
// names it, and the service's policy admits the gateway's pods alone to
// that port (no scraper is configured here).
func TestOpsServices(t *testing.T) {
	tests := []struct {
		name     string
		platform *v1alpha1.Platform
		service  string
	}{
		{"a fixed-size service", platform("shop", testgen.WithService("order", testgen.Replicas(3))), "order"},
		{"an autoscaled service", platform("tv", testgen.WithWorkloads(v1alpha1.WorkloadStreaming)), "playback"},
		{"a single-replica service", platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce)), "user"},
		{"the gateway itself, whose console reads its sibling pods", platform("shop", testgen.WithGateway(corev1.ServiceTypeNodePort, 30080)), "gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.platform
			objs := mustRender(t, p)
			s := find[*corev1.Service](t, objs, OpsServiceName(p, tt.service))
			want := corev1.ServiceSpec{
				Type:                     corev1.ServiceTypeClusterIP,
				ClusterIP:                corev1.ClusterIPNone,
				PublishNotReadyAddresses: true,
				Selector:                 SelectorLabels(p, tt.service),
				Ports:                    []corev1.ServicePort{{Name: "ops", Port: 8081, TargetPort: intstr.FromString("ops"), Protocol: corev1.ProtocolTCP}},
			}
			if !equality.Semantic.DeepEqual(s.Spec, want) {
				t.Errorf("%s spec %+v, want %+v", s.Name, s.Spec, want)
			}
			gw := find[*appsv1.Deployment](t, objs, ObjectName(p, catalog.Gateway))
			wantURL := "http://" + OpsServiceName(p, tt.service) + "." + p.Namespace + ".svc.cluster.local:8081"
			if got := envMap(gw.Spec.Template.Spec.Containers[0])[catalog.EnvOpsURL(tt.service)].Value; got != wantURL {
				t.Errorf("gateway's %s = %q, want %q", catalog.EnvOpsURL(tt.service), got, wantURL)
			}
			np := find[*networkingv1.NetworkPolicy](t, objs, ObjectName(p, tt.service))
			var opsFrom []string
			for _, r := range np.Spec.Ingress {
				for _, port := range r.Ports {
					if port.Port != nil && port.Port.String() == s.Spec.Ports[0].TargetPort.String() {
						for _, peer := range r.From {
							opsFrom = append(opsFrom, peer.PodSelector.MatchLabels[LabelComponent])
						}
					}
				}
			}
			if !slices.Equal(opsFrom, []string{catalog.Gateway}) {
				t.Errorf("%s admits %v to its ops port, want the gateway alone", np.Name, opsFrom)
			}
		})
	}
}

func TestBroker(t *testing.T) {
	tests := []struct {
		name         string
		platform     *v1alpha1.Platform
		replicas     int32
		wantRoutes   int
		wantClaim    string // storage request, "" for no claim
		wantClass    string
		wantConfig   []string
		unwantConfig []string
	}{
		{
			name: "one replica: file store on a 1Gi claim, no cluster", platform: platform("shop"),
			replicas: 1, wantClaim: "1Gi",
			wantConfig: []string{"max_file_store: 1073741824", `store_dir: "/data/jetstream"`, "users: [", `user: "order"`, `password: "` + testBrokerUsers["order"].PasswordHash + `"`,
				"{user: $NATS_USER, password: $NATS_PASSWORD}"},
			unwantConfig: []string{"cluster", "routes", "max_memory_store", `user: "gateway"`, testBrokerUsers["order"].Password + `"`},
		},
		{
			name: "a platform with no service on the broker admits the administrative user alone",
			platform: platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithService("user", testgen.Disabled()),
				testgen.WithService("product", testgen.Disabled()), testgen.WithService("order", testgen.Disabled()),
				testgen.WithService("payment", testgen.Disabled()), testgen.WithService("notification", testgen.Disabled())),
			replicas: 1, wantClaim: "1Gi",
			wantConfig:   []string{"users: [\n    # The administrative user", "{user: $NATS_USER, password: $NATS_PASSWORD}\n  ]"},
			unwantConfig: []string{"allow: [", `user: "`},
		},
		{
			name: "three replicas: a cluster routed through the headless Service", platform: platform("shop", testgen.WithBrokerReplicas(3), testgen.WithStorage(v1alpha1.StorageFile, "10Gi", "fast")),
			replicas: 3, wantRoutes: 3, wantClaim: "10Gi", wantClass: "fast",
			wantConfig: []string{"cluster {", `name: "shop"`, `listen: "0.0.0.0:6222"`, "$NATS_ROUTE_0", "$NATS_ROUTE_2", "max_file_store: 10737418240"},
		},
		{
			name: "five replicas route to five peers", platform: platform("shop", testgen.WithBrokerReplicas(5)),
			replicas: 5, wantRoutes: 5, wantClaim: "1Gi",
			wantConfig: []string{"$NATS_ROUTE_4"},
		},
		{
			name: "memory storage: no claim, an emptyDir, JetStream memory limited", platform: platform("shop", testgen.WithStorage(v1alpha1.StorageMemory, "256Mi", "ignored")),
			replicas:     1,
			wantConfig:   []string{"max_memory_store: 268435456"},
			unwantConfig: []string{"max_file_store"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.platform
			objs := mustRender(t, p)
			sts := find[*appsv1.StatefulSet](t, objs, "shop-nats")
			conf := find[*corev1.ConfigMap](t, objs, "shop-nats-config").Data["nats.conf"]
			for _, s := range tt.wantConfig {
				if !strings.Contains(conf, s) {
					t.Errorf("nats.conf lacks %q:\n%s", s, conf)
				}
			}
			for _, s := range tt.unwantConfig {
				if strings.Contains(conf, s) {
					t.Errorf("nats.conf has %q:\n%s", s, conf)
				}
			}

			if *sts.Spec.Replicas != tt.replicas || sts.Spec.ServiceName != "shop-nats-headless" || sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
				t.Errorf("replicas %d serviceName %q policy %q", *sts.Spec.Replicas, sts.Spec.ServiceName, sts.Spec.PodManagementPolicy)
			}
			spec := sts.Spec.Template.Spec
			checkRestricted(t, spec, 1000)
			if spec.SecurityContext.FSGroup == nil || *spec.SecurityContext.FSGroup != 1000 {
				t.Error("no fsGroup: the volume would not be writable")
			}
			c := spec.Containers[0]
			if c.Image != DefaultBrokerImage {
				t.Errorf("image %q", c.Image)
			}
			if want := []string{"--config", "/etc/nats-config/nats.conf", "--name", "$(POD_NAME)"}; !reflect.DeepEqual(c.Args, want) {
				t.Errorf("args %q", c.Args)
			}
			var routes []string
			for _, e := range c.Env {
				if strings.HasPrefix(e.Name, "NATS_ROUTE_") {
					routes = append(routes, e.Value)
				}
			}
			if len(routes) != tt.wantRoutes {
				t.Errorf("%d routes, want %d", len(routes), tt.wantRoutes)
			}
			for i, r := range routes {
				want := "nats://$(NATS_USER):$(NATS_PASSWORD)@shop-nats-" + itoa(int32(i)) + ".shop-nats-headless.demo.svc.cluster.local:6222"
				if r != want {
					t.Errorf("route %d = %q, want %q", i, r, want)
				}
			}
			if got := envNames(c)[:3]; !reflect.DeepEqual(got, []string{"POD_NAME", "NATS_USER", "NATS_PASSWORD"}) {
				t.Errorf("env %v: routes must come after the variables they expand", got)
			}
			for probe, want := range map[*corev1.Probe]string{c.StartupProbe: "/healthz", c.LivenessProbe: "/healthz?js-enabled-only=true", c.ReadinessProbe: "/healthz?js-enabled-only=true"} {
				if probe == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port.String() != "monitor" {
					t.Errorf("probe %+v, want %s on monitor", probe, want)
				}
			}

			var mountsData bool
			for _, m := range c.VolumeMounts {
				mountsData = mountsData || (m.Name == "data" && m.MountPath == "/data")
			}
			if !mountsData {
				t.Error("/data not mounted")
			}
			if tt.wantClaim == "" {
				if len(sts.Spec.VolumeClaimTemplates) != 0 {
					t.Errorf("memory storage has claims %+v", sts.Spec.VolumeClaimTemplates)
				}
				if !slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == "data" && v.EmptyDir != nil }) {
					t.Error("memory storage: /data is not an emptyDir, so store_dir is on the read-only root")
				}
			} else {
				if len(sts.Spec.VolumeClaimTemplates) != 1 {
					t.Fatalf("claims %+v", sts.Spec.VolumeClaimTemplates)
				}
				claim := sts.Spec.VolumeClaimTemplates[0]
				if got := claim.Spec.Resources.Requests[corev1.ResourceStorage]; claim.Name != "data" || got.String() != tt.wantClaim {
					t.Errorf("claim %s of %s, want data of %s", claim.Name, got.String(), tt.wantClaim)
				}
				if got := ptrDeref(claim.Spec.StorageClassName); got != tt.wantClass {
					t.Errorf("storage class %q, want %q", got, tt.wantClass)
				}
			}
			if hash := sts.Spec.Template.Annotations[AnnotationConfigHash]; len(hash) != 16 {
				t.Errorf("config hash annotation %q", hash)
			}
		})
	}
}

func ptrDeref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func TestBrokerServices(t *testing.T) {
	objs := mustRender(t, platform("shop", testgen.WithBrokerReplicas(3)))
	headless := find[*corev1.Service](t, objs, "shop-nats-headless")
	if headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("headless: clusterIP %q publishNotReady %v", headless.Spec.ClusterIP, headless.Spec.PublishNotReadyAddresses)
	}
	portsOf := func(s *corev1.Service) map[string]int32 {
		m := map[string]int32{}
		for _, p := range s.Spec.Ports {
			m[p.Name] = p.Port
		}
		return m
	}
	if got := portsOf(headless); !reflect.DeepEqual(got, map[string]int32{"client": 4222, "cluster": 6222, "monitor": 8222}) {
		t.Errorf("headless ports %v", got)
	}
	if got := portsOf(find[*corev1.Service](t, objs, "shop-nats")); !reflect.DeepEqual(got, map[string]int32{"client": 4222, "monitor": 8222}) {
		t.Errorf("client ports %v", got)
	}
}

func TestDefaultBrokerImageIsTheEmbeddedServers(t *testing.T) {
	if want := "nats:" + server.VERSION; DefaultBrokerImage != want {
		t.Errorf("DefaultBrokerImage = %q, but the embedded nats-server is %s: want %q", DefaultBrokerImage, server.VERSION, want)
	}
}

// A change to nats.conf or to the credentials must change the pod template,
// so the pods restart and read them.
func TestPodTemplatesRollOnChange(t *testing.T) {
	base := mustRender(t, platform("shop"))
	bigger := mustRender(t, platform("shop", testgen.WithStorage(v1alpha1.StorageFile, "2Gi", "")))
	tpl := func(objs []client.Object, name string) map[string]string {
		return find[*appsv1.StatefulSet](t, objs, name).Spec.Template.Annotations
	}
	if tpl(base, "shop-nats")[AnnotationConfigHash] == tpl(bigger, "shop-nats")[AnnotationConfigHash] {
		t.Error("a new nats.conf keeps the broker's config hash")
	}
	renderWith := func(change func(*Options)) map[string]*corev1.PodTemplateSpec {
		opts := testOptions()
		change(&opts)
		objs, err := Platform(platform("shop"), opts)
		if err != nil {
			t.Fatal(err)
		}
		return podTemplates(objs)
	}
	tests := []struct {
		name   string
		change func(*Options)
		// rolled are the pod templates whose annotations must change;
		// every other one must stay as it was.
		rolled []string
	}{
		{"new route credentials roll the broker alone", func(o *Options) { o.Credentials.NATSPassword = "anotherPasswordXXXXXXXXXX" },
			[]string{"StatefulSet/shop-nats"}},
		{"order's new broker password rolls order and, through its hash in nats.conf, the broker", func(o *Options) {
			users := maps.Clone(o.BrokerUsers)
			users["order"] = BrokerUser{User: "order", Password: testBrokerUsers["payment"].Password, PasswordHash: testBrokerUsers["payment"].PasswordHash}
			o.BrokerUsers = users
		}, []string{"StatefulSet/shop-nats", "Deployment/shop-order"}},
		{"renewed certificates and a new CA roll nothing", func(o *Options) {
			id := testIdentity()
			id.CACert = []byte("another CA certificate\n")
			id.Leaves["order"] = Leaf{Cert: []byte("renewed certificate\n"), Key: []byte("renewed key\n")}
			o.Identity = id
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			after := renderWith(tt.change)
			for r, t0 := range podTemplates(base) {
				changed := !reflect.DeepEqual(t0.Annotations, after[r].Annotations)
				if want := slices.Contains(tt.rolled, r); changed != want {
					t.Errorf("%s: annotations changed %v, want %v (%v → %v)", r, changed, want, t0.Annotations, after[r].Annotations)
				}
				if !changed && !equality.Semantic.DeepEqual(t0, after[r]) {
					t.Errorf("%s: the pod template changed without a new annotation", r)
				}
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	for name, p := range allPlatforms() {
		t.Run(name, func(t *testing.T) {
			first := mustRender(t, p)
			for range 5 {
				if again := mustRender(t, p.DeepCopy()); !reflect.DeepEqual(first, again) {
					t.Fatal("two renders of the same Platform differ")
				}
			}
		})
	}
}

func TestRenderDoesNotModifyThePlatform(t *testing.T) {
	p := fullPlatform()
	before := p.DeepCopy()
	mustRender(t, p)
	if !reflect.DeepEqual(p, before) {
		t.Error("Platform modified by rendering")
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name     string
		platform *v1alpha1.Platform
		opts     func(*Options)
		want     string
	}{
		{"empty credentials", platform("shop"), func(o *Options) { o.Credentials = Credentials{} }, "credentials are empty"},
		{"one credential missing", platform("shop"), func(o *Options) { o.Credentials.NATSPassword = "" }, "credentials are empty"},
		{"a token key missing", platform("shop", testgen.WithSigningKey("v3")), nil, `token key "v3" is missing`},
		{"a token key that is no key", platform("shop"), func(o *Options) { o.TokenKeys["v1"] = "garbage" }, "Secret shop-token-signing, key v1: no PEM block; delete the key"},
		{"a public key for a signing key", platform("shop"), func(o *Options) { o.TokenKeys["v1"] = testPublicPEM }, "want PRIVATE KEY"},
		{"no first admin", platform("shop"), func(o *Options) { o.Admin = Admin{} }, "first admin's credentials are empty"},
		{"a first admin without a plain address", platform("shop"), func(o *Options) { o.Admin.Email = "Admin <a@b.c>" }, "Secret shop-admin, key email"},
		{"a first admin with a short password", platform("shop"), func(o *Options) { o.Admin.Password = "short" }, "8 to 72 bytes"},
		{"a signing key not among the verification keys", platform("shop", testgen.WithSigningKey("v1", "v2", "blue")), nil, `spec.auth.signingKey: "v1" must be one of`},
		{"three verification keys", platform("shop", testgen.WithSigningKey("v1", "v1", "v2", "blue")), nil, "3 keys, at most 2"},
		{"a key name that is no label", platform("shop", testgen.WithSigningKey("V_1")), nil, `key name "V_1"`},
		{"a token lifetime past the revocation memory", platform("shop", testgen.WithTokenTTL(25*time.Hour)), nil, "spec.auth.tokenTTL: 25h0m0s is not between 1m and 24h0m0s"},
		{"a hand-made password the broker cannot parse", platform("shop"), func(o *Options) { o.Credentials.NATSPassword = "12345-67890-abcdef" }, "nats-password must be"},
		{"a short user", platform("shop"), func(o *Options) { o.Credentials.NATSUser = "admin" }, "nats-user must be"},
		{"no broker user for order", platform("shop"), func(o *Options) {
			o.BrokerUsers = maps.Clone(o.BrokerUsers)
			delete(o.BrokerUsers, "order")
		}, "the broker user of order is missing"},
		{"a broker user named after another service", platform("shop"), func(o *Options) {
			o.BrokerUsers = maps.Clone(o.BrokerUsers)
			o.BrokerUsers["order"] = testBrokerUsers["payment"]
		}, `Secret shop-order-nats, key nats-user: "payment", want the service's name "order"`},
		{"a hand-made broker password the broker cannot parse", platform("shop"), func(o *Options) {
			o.BrokerUsers = maps.Clone(o.BrokerUsers)
			o.BrokerUsers["order"] = BrokerUser{User: "order", Password: "0rder", PasswordHash: testBrokerUsers["order"].PasswordHash}
		}, "Secret shop-order-nats, key nats-password must be at least 16"},
		{"a broker password hash that is no bcrypt hash", platform("shop"), func(o *Options) {
			o.BrokerUsers = maps.Clone(o.BrokerUsers)
			o.BrokerUsers["order"] = BrokerUser{User: "order", Password: testBrokerUsers["order"].Password, PasswordHash: "sha256:abc"}
		}, "Secret shop-order-nats, key nats-password-hash is not a bcrypt hash"},
		{"no CA", platform("shop"), func(o *Options) { o.Identity.CAKey = nil }, "the CA of shop-ca is missing"},
		{"no certificate for payment", platform("shop"), func(o *Options) {
			o.Identity = testIdentity()
			delete(o.Identity.Leaves, "payment")
		}, "the certificate of payment is missing"},
		{"a trust domain in capitals", platform("shop", testgen.WithIdentity("Example.COM", 0, 0)), nil, `spec.identity.trustDomain, metadata.namespace or metadata.name cannot name a service: spiffe id: trust domain "Example.COM"`},
		{"a certificate lifetime under an hour", platform("shop", testgen.WithIdentity("", 30*time.Minute, 10*time.Minute)), nil, "spec.identity.certificateLifetime: 30m0s is not between 1h and 8760h"},
		{"renewal as long as the lifetime", platform("shop", testgen.WithIdentity("", 24*time.Hour, 24*time.Hour)), nil, "spec.identity.renewBefore: 24h0m0s must be shorter than certificateLifetime 24h0m0s"},
		{"renewal minutes before expiry", platform("shop", testgen.WithIdentity("", 0, time.Minute)), nil, "spec.identity.renewBefore: 1m0s is less than 5m"},
		{"no workloads", platform("shop", testgen.WithWorkloads()), nil, "spec.workloads is empty"},
		{"an unknown workload", platform("shop", testgen.WithWorkloads("banking")), nil, `unknown workload "banking"`},
		{"an unknown service key", platform("shop", testgen.WithService("ledger", testgen.Replicas(2))), nil, `"ledger" is not a service`},
		{"a service of a workload not enabled", platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithService("playback", testgen.Replicas(2))), nil, `"playback" is not a service of workloads commerce`},
		{"replicas and autoscaling together", platform("shop", testgen.WithService("order", testgen.Replicas(2), testgen.Autoscaling(1, 3, 0))), nil, "either replicas or autoscaling"},
		{"a memory target above 100%", platform("shop", testgen.WithService("order", testgen.MemoryTarget(150))), nil, "spec.services.order.autoscaling.targetMemoryUtilizationPercentage: 150 is not a percentage"},
		{"a zero CPU target", platform("shop", testgen.WithService("order", func(s *v1alpha1.ServiceSpec) {
			s.Autoscaling = &v1alpha1.AutoscalingSpec{TargetCPUUtilizationPercentage: ptr.To[int32](0)}
		})), nil, "targetCPUUtilizationPercentage: 0 is not a percentage"},
		{"an even broker", platform("shop", testgen.WithBrokerReplicas(2)), nil, "spec.broker.replicas: 2"},
		{"a zero JetStream size", platform("shop", testgen.WithStorage(v1alpha1.StorageFile, "0", "")), nil, "size: 0 is not positive"},
		{"a JetStream store too small to share", platform("shop", testgen.WithStorage(v1alpha1.StorageFile, "16Mi", "")), nil, "size: 16Mi is less than 64Mi"},
		{"no image anywhere", platform("shop"), func(o *Options) { o.ServicesImage = "" }, "no services image"},
		{"a name too long for its StatefulSet's revision label", platform(strings.Repeat("a", 48)), nil, "at most 47 characters"},
		{"a name with dots", platform("shop.example"), nil, "must be a DNS label"},
		{"an empty metricsFrom peer", platform("shop", testgen.WithMetricsFrom(namespacePeer("monitoring"), networkingv1.NetworkPolicyPeer{})), nil, "metricsFrom[1]: needs an ipBlock, a podSelector or a namespaceSelector"},
		{"a metricsFrom ipBlock with a selector", platform("shop", testgen.WithMetricsFrom(func() networkingv1.NetworkPolicyPeer {
			p := cidrPeer("10.0.0.0/8")
			p.NamespaceSelector = namespacePeer("monitoring").NamespaceSelector
			return p
		}())), nil, "metricsFrom[0]: an ipBlock may not come with"},
		{"too many metricsFrom peers", platform("shop", testgen.WithMetricsFrom(slices.Repeat([]networkingv1.NetworkPolicyPeer{namespacePeer("monitoring")}, 9)...)), nil, "9 peers, at most 8"},
		{"an e-mail relay without ports", platform("shop", testgen.WithSMTPEgress([]networkingv1.NetworkPolicyPeer{cidrPeer("198.51.100.25/32")})), nil, "smtpEgress.ports: list at least one port"},
		{"an e-mail relay port without a number", platform("shop", testgen.WithSMTPEgress(nil, networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP)})), nil, "smtpEgress.ports[0]: needs a port"},
		{"an empty DNS peer", platform("shop", testgen.WithDNSEgress([]networkingv1.NetworkPolicyPeer{{}}, numericPort(53, corev1.ProtocolUDP))), nil, "dnsEgress.to[0]: needs an ipBlock"},
		{"a trusted proxy that is no CIDR", platform("shop", testgen.WithTrustedProxies("10.0.0.0/8", "10.1.2.3")), nil, `trustedProxyCIDRs[1]: "10.1.2.3" is not a network address`},
		{"a trusted proxy CIDR with host bits", platform("shop", testgen.WithTrustedProxies("10.1.2.3/8")), nil, `trustedProxyCIDRs[0]: "10.1.2.3/8"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			if tt.opts != nil {
				tt.opts(&opts)
			}
			objs, err := Platform(tt.platform, opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if objs != nil {
				t.Errorf("objects returned with an error")
			}
		})
	}
	t.Run("replicas with autoscaling disabled are fine", func(t *testing.T) {
		mustRender(t, platform("shop", testgen.WithService("playback", testgen.Replicas(2), testgen.AutoscalingOff())))
	})
	t.Run("a 47-character name is fine", func(t *testing.T) {
		mustRender(t, platform(strings.Repeat("a", 47)))
	})
	t.Run("spec.image alone is enough", func(t *testing.T) {
		opts := testOptions()
		opts.ServicesImage = ""
		if _, err := Platform(platform("shop", testgen.WithImage("x/y:z")), opts); err != nil {
			t.Fatal(err)
		}
	})
}

func TestNamesAndURLs(t *testing.T) {
	p := platform("shop", testgen.WithNamespace("demo"))
	tests := []struct{ name, got, want string }{
		{"object name", ObjectName(p, "order"), "shop-order"},
		{"broker", BrokerName(p), "shop-nats"},
		{"headless", BrokerHeadlessName(p), "shop-nats-headless"},
		{"config", BrokerConfigName(p), "shop-nats-config"},
		{"auth", AuthSecretName(p), "shop-auth"},
		{"broker URL", BrokerURL(p), "nats://shop-nats.demo.svc.cluster.local:4222"},
		{"service URL", ServiceURL(p, "order"), "http://shop-order.demo.svc.cluster.local"},
		{"API URL, as the gateway reaches it", ServiceAPIURL(p, "order"), "https://shop-order.demo.svc.cluster.local:80"},
		{"gRPC target", ServiceGRPCTarget(p, "product"), "dns:///shop-product.demo.svc.cluster.local:9090"},
		{"ops Service", OpsServiceName(p, "order"), "shop-order-ops"},
		{"ops URL, every instance behind it", ServiceOpsURL(p, "order"), "http://shop-order-ops.demo.svc.cluster.local:8081"},
		{"gateway URL", GatewayURL(p), "http://shop-gateway.demo.svc.cluster.local"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if got, want := ServiceNames(platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithService("user", testgen.Disabled()))),
		[]string{"gateway", "product", "order", "payment", "notification"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ServiceNames = %v, want %v", got, want)
	}
}

func TestSelectors(t *testing.T) {
	p := platform("shop")
	other := platform("other")
	if !PlatformSelector(p).Matches(labels.Set(Labels(p, "order"))) {
		t.Error("PlatformSelector misses the platform's own labels")
	}
	if PlatformSelector(p).Matches(labels.Set(Labels(other, "order"))) {
		t.Error("PlatformSelector matches another platform")
	}
	if !ManagedBySelector().Matches(labels.Set(Labels(other, "broker"))) {
		t.Error("ManagedBySelector misses a platform")
	}
	if ManagedBySelector().Matches(labels.Set{LabelManagedBy: "Helm"}) {
		t.Error("ManagedBySelector matches someone else's object")
	}
	sel := labels.Set(SelectorLabels(p, "order"))
	if !labels.SelectorFromSet(sel).Matches(labels.Set(Labels(p, "order"))) {
		t.Error("SelectorLabels is not a subset of Labels")
	}
	if _, ok := sel[LabelManagedBy]; ok {
		t.Error("selector labels include managed-by, which may change")
	}
}

func TestBrokerResources(t *testing.T) {
	given := requests("500m", "2Gi")
	given.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("4Gi")}
	cases := []struct {
		name string
		opts []testgen.PlatformOption
		want corev1.ResourceRequirements
	}{
		{"unset gives modest requests and no limits", nil, requests("100m", "128Mi")},
		{"spec.broker.resources is used as given", []testgen.PlatformOption{testgen.WithBrokerResources(given)}, given},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sts := find[*appsv1.StatefulSet](t, mustRender(t, platform("shop", tc.opts...)), "shop-nats")
			if got := sts.Spec.Template.Spec.Containers[0].Resources; !equality.Semantic.DeepEqual(got, tc.want) {
				t.Errorf("broker resources %v, want %v", got, tc.want)
			}
		})
	}
}

// A stopping service pod sleeps in preStop while its endpoints go, then
// drains as long again on SIGTERM and stops in order; the grace period
// covers all of it, so the kubelet never kills it midway.
func TestServicePodsStopGracefully(t *testing.T) {
	p := platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce, v1alpha1.WorkloadStreaming))
	for _, o := range mustRender(t, p) {
		d, ok := o.(*appsv1.Deployment)
		if !ok {
			continue
		}
		t.Run(d.Name, func(t *testing.T) {
			spec := d.Spec.Template.Spec
			c := spec.Containers[0]
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
				t.Fatalf("no preStop sleep: %+v", c.Lifecycle)
			}
			sleep := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
			var drain string
			for _, e := range c.Env {
				if e.Name == "SHUTDOWN_DRAIN" {
					drain = e.Value
				}
			}
			if d, err := time.ParseDuration(drain); err != nil || d != sleep || sleep <= 0 {
				t.Errorf("preStop sleeps %s but SHUTDOWN_DRAIN is %q", sleep, drain)
			}
			grace := time.Duration(ptr.Deref(spec.TerminationGracePeriodSeconds, 30)) * time.Second
			if need := 2*sleep + 2*catalog.DefaultShutdownGrace; grace <= need {
				t.Errorf("terminationGracePeriodSeconds %s does not cover the preStop sleep, the drain, the consumers' and the requests' grace (%s)", grace, need)
			}
		})
	}
}
