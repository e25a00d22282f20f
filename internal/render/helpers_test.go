package render

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
)

// Test generators: a Platform is built from options, never from YAML.

type platformOption func(*v1alpha1.Platform)

const testUID = types.UID("6f1c0a4e-0000-4000-8000-000000000001")

// platform returns a Platform in namespace demo, as the API server would
// hand it over (with a UID), running both workloads unless told otherwise.
func platform(name string, opts ...platformOption) *v1alpha1.Platform {
	p := &v1alpha1.Platform{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Platform"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "demo", UID: testUID, Generation: 1},
		Spec: v1alpha1.PlatformSpec{
			Workloads: []v1alpha1.Workload{v1alpha1.WorkloadCommerce, v1alpha1.WorkloadStreaming},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func withWorkloads(ws ...v1alpha1.Workload) platformOption {
	return func(p *v1alpha1.Platform) { p.Spec.Workloads = ws }
}

func withNamespace(ns string) platformOption {
	return func(p *v1alpha1.Platform) { p.Namespace = ns }
}

func withoutUID() platformOption { return func(p *v1alpha1.Platform) { p.UID = "" } }

func withImage(image string) platformOption {
	return func(p *v1alpha1.Platform) { p.Spec.Image = image }
}

func withBrokerReplicas(n int32) platformOption {
	return func(p *v1alpha1.Platform) { p.Spec.Broker.Replicas = n }
}

func withBrokerImage(image string) platformOption {
	return func(p *v1alpha1.Platform) { p.Spec.Broker.Image = image }
}

func withStorage(storage v1alpha1.JetStreamStorage, size string, class string) platformOption {
	return func(p *v1alpha1.Platform) {
		js := &p.Spec.Broker.JetStream
		js.Storage = storage
		if size != "" {
			js.Size = ptr.To(resource.MustParse(size))
		}
		if class != "" {
			js.StorageClassName = ptr.To(class)
		}
	}
}

func withNetworkPolicy(enabled bool) platformOption {
	return func(p *v1alpha1.Platform) { p.Spec.NetworkPolicy.Enabled = ptr.To(enabled) }
}

func withMetricsFrom(peers ...networkingv1.NetworkPolicyPeer) platformOption {
	return func(p *v1alpha1.Platform) { p.Spec.NetworkPolicy.MetricsFrom = peers }
}

func withBrokerMetrics(enabled bool) platformOption {
	return func(p *v1alpha1.Platform) { p.Spec.Broker.Metrics.Enabled = ptr.To(enabled) }
}

// Peers a metricsFrom may name.
func namespacePeer(ns string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}}
}

func prometheusPeer(ns string) networkingv1.NetworkPolicyPeer {
	peer := namespacePeer(ns)
	peer.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "prometheus"}}
	return peer
}

func cidrPeer(cidr string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr}}
}

func withGateway(t corev1.ServiceType, nodePort int32) platformOption {
	return func(p *v1alpha1.Platform) {
		p.Spec.Gateway.ServiceType = t
		if nodePort != 0 {
			p.Spec.Gateway.NodePort = ptr.To(nodePort)
		}
	}
}

func withDefaultResources(r corev1.ResourceRequirements) platformOption {
	return func(p *v1alpha1.Platform) { p.Spec.Defaults.Resources = &r }
}

// serviceOption edits one entry of spec.services.
type serviceOption func(*v1alpha1.ServiceSpec)

func withService(name string, opts ...serviceOption) platformOption {
	return func(p *v1alpha1.Platform) {
		if p.Spec.Services == nil {
			p.Spec.Services = map[string]v1alpha1.ServiceSpec{}
		}
		s := p.Spec.Services[name]
		for _, o := range opts {
			o(&s)
		}
		p.Spec.Services[name] = s
	}
}

func disabled() serviceOption { return func(s *v1alpha1.ServiceSpec) { s.Enabled = ptr.To(false) } }

func replicas(n int32) serviceOption { return func(s *v1alpha1.ServiceSpec) { s.Replicas = ptr.To(n) } }

func resources(r corev1.ResourceRequirements) serviceOption {
	return func(s *v1alpha1.ServiceSpec) { s.Resources = &r }
}

// autoscaling sets an autoscaling block; zero values stay unset.
func autoscaling(min, max, target int32) serviceOption {
	return func(s *v1alpha1.ServiceSpec) {
		as := &v1alpha1.AutoscalingSpec{}
		if min != 0 {
			as.MinReplicas = ptr.To(min)
		}
		if max != 0 {
			as.MaxReplicas = ptr.To(max)
		}
		if target != 0 {
			as.TargetCPUUtilizationPercentage = ptr.To(target)
		}
		s.Autoscaling = as
	}
}

func autoscalingOff() serviceOption {
	return func(s *v1alpha1.ServiceSpec) { s.Autoscaling = &v1alpha1.AutoscalingSpec{Enabled: ptr.To(false)} }
}

func requests(cpu, memory string) corev1.ResourceRequirements {
	r := corev1.ResourceRequirements{Requests: corev1.ResourceList{}}
	if cpu != "" {
		r.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if memory != "" {
		r.Requests[corev1.ResourceMemory] = resource.MustParse(memory)
	}
	return r
}

// testCredentials are fixed, valid and distinctive, so a leak is easy to find.
var testCredentials = Credentials{
	NATSUser:     "testUserQwErTyUiOpAsDfGh",
	NATSPassword: "testPasswordZxCvBnMLkJhGf",
	AuthKey:      "testAuthKeyPoIuYtReWqLkJh",
}

func testOptions() Options {
	return Options{ServicesImage: "ghcr.io/switchboard-dev/switchboard:test", Credentials: testCredentials}
}

func mustRender(t *testing.T, p *v1alpha1.Platform) []client.Object {
	t.Helper()
	objs, err := Platform(p, testOptions())
	if err != nil {
		t.Fatalf("Platform: %v", err)
	}
	return objs
}

// ref names an object as "Kind/name".
func ref(o client.Object) string {
	return o.GetObjectKind().GroupVersionKind().Kind + "/" + o.GetName()
}

func refs(objs []client.Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = ref(o)
	}
	return out
}

// find returns the object of type T named name, or fails the test.
func find[T client.Object](t *testing.T, objs []client.Object, name string) T {
	t.Helper()
	for _, o := range objs {
		if typed, ok := o.(T); ok && o.GetName() == name {
			return typed
		}
	}
	var zero T
	t.Fatalf("no %T named %q in %v", zero, name, refs(objs))
	return zero
}

func has(objs []client.Object, r string) bool {
	for _, o := range objs {
		if ref(o) == r {
			return true
		}
	}
	return false
}

// podTemplates returns every pod template rendered, keyed by "Kind/name".
func podTemplates(objs []client.Object) map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for _, o := range objs {
		switch w := o.(type) {
		case *appsv1.Deployment:
			out[ref(o)] = &w.Spec.Template
		case *appsv1.StatefulSet:
			out[ref(o)] = &w.Spec.Template
		}
	}
	return out
}

func envMap(c corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

func envNames(c corev1.Container) []string {
	var names []string
	for _, e := range c.Env {
		names = append(names, e.Name)
	}
	return names
}

func diffStrings(got, want []string) string {
	if reflect.DeepEqual(got, want) {
		return ""
	}
	return fmt.Sprintf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
}
