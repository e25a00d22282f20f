// Package testgen builds Platforms for tests from small options, in the
// style of cert-manager's test generators:
//
//	testgen.Platform("shop", testgen.WithNamespace(ns), testgen.WithService("order", testgen.Replicas(2)))
//
// It is an ordinary package, not a _test file, so the render and the
// controllers suites (and any other) share one set of generators.
package testgen

import (
	"crypto/ed25519"
	"crypto/sha256"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/tokenkeys"
)

// PlatformOption shapes a Platform.
type PlatformOption func(*v1alpha1.Platform)

// ServiceOption shapes one entry of spec.services.
type ServiceOption func(*v1alpha1.ServiceSpec)

// Platform returns a Platform named name in namespace "default", running
// every workload, with nothing else set, then applies opts in order.
func Platform(name string, opts ...PlatformOption) *v1alpha1.Platform {
	p := &v1alpha1.Platform{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Platform"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceDefault},
		Spec:       v1alpha1.PlatformSpec{Workloads: []v1alpha1.Workload{v1alpha1.WorkloadCommerce, v1alpha1.WorkloadStreaming}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func WithNamespace(ns string) PlatformOption {
	return func(p *v1alpha1.Platform) { p.Namespace = ns }
}

// WithUID makes p look read from the API server, which is what gives its
// children an owner reference; "" makes it look read from a file.
func WithUID(uid types.UID) PlatformOption {
	return func(p *v1alpha1.Platform) { p.UID = uid }
}

func WithWorkloads(ws ...v1alpha1.Workload) PlatformOption {
	return func(p *v1alpha1.Platform) { p.Spec.Workloads = ws }
}

func WithImage(image string) PlatformOption {
	return func(p *v1alpha1.Platform) { p.Spec.Image = image }
}

func WithBrokerReplicas(n int32) PlatformOption {
	return func(p *v1alpha1.Platform) { p.Spec.Broker.Replicas = n }
}

func WithBrokerImage(image string) PlatformOption {
	return func(p *v1alpha1.Platform) { p.Spec.Broker.Image = image }
}

func WithBrokerResources(r corev1.ResourceRequirements) PlatformOption {
	return func(p *v1alpha1.Platform) { p.Spec.Broker.Resources = &r }
}

func WithBrokerMetrics(enabled bool) PlatformOption {
	return func(p *v1alpha1.Platform) { p.Spec.Broker.Metrics.Enabled = ptr.To(enabled) }
}

// WithStorage sets the broker's JetStream storage; an empty size or class
// stays unset.
func WithStorage(storage v1alpha1.JetStreamStorage, size, class string) PlatformOption {
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

// WithGateway sets the gateway's Service type; a zero nodePort stays unset.
func WithGateway(t corev1.ServiceType, nodePort int32) PlatformOption {
	return func(p *v1alpha1.Platform) {
		p.Spec.Gateway.ServiceType = t
		if nodePort != 0 {
			p.Spec.Gateway.NodePort = ptr.To(nodePort)
		}
	}
}

// WithTrustedProxies sets the networks whose X-Forwarded-For the gateway
// believes.
func WithTrustedProxies(cidrs ...string) PlatformOption {
	return func(p *v1alpha1.Platform) { p.Spec.Gateway.TrustedProxyCIDRs = cidrs }
}

func WithNetworkPolicy(enabled bool) PlatformOption {
	return func(p *v1alpha1.Platform) { p.Spec.NetworkPolicy.Enabled = ptr.To(enabled) }
}

func WithMetricsFrom(peers ...networkingv1.NetworkPolicyPeer) PlatformOption {
	return func(p *v1alpha1.Platform) { p.Spec.NetworkPolicy.MetricsFrom = peers }
}

func WithKEDAFrom(peers ...networkingv1.NetworkPolicyPeer) PlatformOption {
	return func(p *v1alpha1.Platform) { p.Spec.NetworkPolicy.KEDAFrom = peers }
}

// WithSMTPEgress opens notification's egress to the e-mail relay at peers on ports.
func WithSMTPEgress(peers []networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) PlatformOption {
	return func(p *v1alpha1.Platform) {
		p.Spec.NetworkPolicy.SMTPEgress = &v1alpha1.EgressSpec{To: peers, Ports: ports}
	}
}

// WithDNSEgress replaces the default DNS egress (kube-dns) with peers on ports.
func WithDNSEgress(peers []networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) PlatformOption {
	return func(p *v1alpha1.Platform) {
		p.Spec.NetworkPolicy.DNSEgress = &v1alpha1.EgressSpec{To: peers, Ports: ports}
	}
}

func WithDefaultResources(r corev1.ResourceRequirements) PlatformOption {
	return func(p *v1alpha1.Platform) { p.Spec.Defaults.Resources = &r }
}

// WithService adds an entry for service to spec.services, or edits the one
// there, with opts applied; without opts the entry is empty.
func WithService(service string, opts ...ServiceOption) PlatformOption {
	return func(p *v1alpha1.Platform) {
		if p.Spec.Services == nil {
			p.Spec.Services = map[string]v1alpha1.ServiceSpec{}
		}
		s := p.Spec.Services[service]
		for _, o := range opts {
			o(&s)
		}
		p.Spec.Services[service] = s
	}
}

func Disabled() ServiceOption { return func(s *v1alpha1.ServiceSpec) { s.Enabled = ptr.To(false) } }

func Replicas(n int32) ServiceOption { return func(s *v1alpha1.ServiceSpec) { s.Replicas = ptr.To(n) } }

func Resources(r corev1.ResourceRequirements) ServiceOption {
	return func(s *v1alpha1.ServiceSpec) { s.Resources = &r }
}

// Autoscaling sets an autoscaling block; zero values stay unset.
func Autoscaling(min, max, target int32) ServiceOption {
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

// MemoryTarget adds targetMemoryUtilizationPercentage to the service's
// autoscaling block, creating an empty block when there is none.
func MemoryTarget(percent int32) ServiceOption {
	return func(s *v1alpha1.ServiceSpec) {
		if s.Autoscaling == nil {
			s.Autoscaling = &v1alpha1.AutoscalingSpec{}
		}
		s.Autoscaling.TargetMemoryUtilizationPercentage = ptr.To(percent)
	}
}

// Lag sets the service's autoscaling.lag, creating an empty autoscaling
// block when there is none; a zero threshold stays unset.
func Lag(enabled bool, threshold int64) ServiceOption {
	return func(s *v1alpha1.ServiceSpec) {
		if s.Autoscaling == nil {
			s.Autoscaling = &v1alpha1.AutoscalingSpec{}
		}
		s.Autoscaling.Lag = &v1alpha1.LagScalingSpec{Enabled: ptr.To(enabled)}
		if threshold != 0 {
			s.Autoscaling.Lag.LagThreshold = ptr.To(threshold)
		}
	}
}

// AutoscalingOff turns off the autoscaling the catalog gives a service.
func AutoscalingOff() ServiceOption {
	return func(s *v1alpha1.ServiceSpec) { s.Autoscaling = &v1alpha1.AutoscalingSpec{Enabled: ptr.To(false)} }
}

// WithSigningKey sets spec.auth.signingKey and, when given,
// spec.auth.verificationKeys.
func WithSigningKey(signing string, verification ...string) PlatformOption {
	return func(p *v1alpha1.Platform) {
		p.Spec.Auth.SigningKey = signing
		p.Spec.Auth.VerificationKeys = verification
	}
}

func WithTokenTTL(d time.Duration) PlatformOption {
	return func(p *v1alpha1.Platform) { p.Spec.Auth.TokenTTL = &metav1.Duration{Duration: d} }
}

// WithIdentity sets spec.identity; an empty trust domain or a zero
// duration stays unset.
func WithIdentity(trustDomain string, lifetime, renewBefore time.Duration) PlatformOption {
	return func(p *v1alpha1.Platform) {
		id := &p.Spec.Identity
		id.TrustDomain = trustDomain
		if lifetime != 0 {
			id.CertificateLifetime = &metav1.Duration{Duration: lifetime}
		}
		if renewBefore != 0 {
			id.RenewBefore = &metav1.Duration{Duration: renewBefore}
		}
	}
}

// TokenKey is a PEM Ed25519 private key fixed by name, the same in every
// run, so golden files and expected key ids stay put.
func TokenKey(name string) string {
	seed := sha256.Sum256([]byte("testgen token key " + name))
	s, err := tokenkeys.EncodePrivate(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		panic(err)
	}
	return s
}

// WithObservability sets spec.observability: the OTLP endpoint, the
// sampling ratio and where the collector runs.
func WithObservability(endpoint, ratio string, collectorTo ...networkingv1.NetworkPolicyPeer) PlatformOption {
	return func(p *v1alpha1.Platform) {
		p.Spec.Observability = v1alpha1.ObservabilitySpec{OTLPEndpoint: endpoint, SamplingRatio: ratio, CollectorTo: collectorTo}
	}
}
