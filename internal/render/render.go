package render

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

// Options are the inputs of a render that do not come from the Platform.
type Options struct {
	// ServicesImage is used when spec.image is empty (the operator's --services-image).
	ServicesImage string
	// BrokerImage is used when spec.broker.image is empty (the operator's
	// --default-broker-image); empty means DefaultBrokerImage.
	BrokerImage string
	// KEDA says KEDA's ScaledObject CRD is served: services that opt in to
	// queue-lag autoscaling get a ScaledObject instead of an HPA, and the
	// broker admits KEDA to its monitor. Without it they keep their HPA.
	KEDA bool
	// OperatorNamespace is where the operator runs: the broker's
	// NetworkPolicy admits the operator's pods there (OperatorPodLabels) to
	// its monitor, which the operator reads for status. Empty adds no rule.
	OperatorNamespace string
	// Credentials fill the <p>-auth Secret: the broker cluster's route
	// credentials. Render never generates them: the caller reads them back
	// from the Secret or makes them with NewCredentials.
	Credentials Credentials
	// BrokerUsers fill each service's <p>-<service>-nats Secret and the
	// users of nats.conf; the caller keeps them with a BrokerUserKeeper.
	BrokerUsers BrokerUsers
	// Identity fills <p>-ca and each service's <p>-<service>-tls; the
	// caller keeps it with KeepIdentity.
	Identity Identity
	// TokenKeys fill <p>-token-signing and <p>-token-keys, one per name of
	// KeyNames; Admin fills <p>-admin. The caller keeps them with
	// KeepTokenKeys and KeepAdmin.
	TokenKeys TokenKeys
	Admin     Admin
}

// Platform returns every object p needs, in a fixed order: the auth
// Secret, the token-signing Secret, the token-keys ConfigMap, the admin
// Secret and the CA Secret, the broker's ConfigMap, Services, StatefulSet
// and PDB, the NetworkPolicies, then per service in catalog order its tls
// and nats Secrets, Deployment, Service, headless ops Service, HPA (or
// KEDA ScaledObject) and PDB. It fails only on input no render can satisfy.
//
// Every object has its TypeMeta, p's namespace, the standard labels and,
// when p has a UID (it came from the API server), a controller reference to
// p. A Platform read from a file (switchboard render) has no UID and there
// is nothing to own the objects, so they carry none.
func Platform(p *v1alpha1.Platform, opts Options) ([]client.Object, error) {
	keys, err := validate(p, opts)
	if err != nil {
		return nil, fmt.Errorf("platform %s/%s: %w", p.Namespace, p.Name, err)
	}
	plans := EnabledServices(p)
	withKEDA(plans, opts.KEDA)
	enabled := make(map[string]bool, len(plans))
	for _, s := range plans {
		enabled[s.Name] = true
	}

	config, err := natsConfig(p, plans, opts.BrokerUsers)
	if err != nil {
		return nil, fmt.Errorf("platform %s/%s: %w", p.Namespace, p.Name, err)
	}

	objs := []client.Object{
		authSecret(p, opts.Credentials),
		tokenSigningSecret(p, opts.TokenKeys),
		tokenKeysConfigMap(p, keys),
		adminSecret(p, opts.Admin),
		caSecret(p, opts.Identity),
		brokerConfigMap(p, config),
		brokerHeadlessService(p),
		brokerClientService(p),
		brokerStatefulSet(p, opts.Credentials, config, opts),
	}
	if BrokerReplicas(p) > 1 {
		objs = append(objs, brokerPDB(p))
	}
	if networkPoliciesEnabled(p) {
		for _, np := range networkPolicies(p, plans, opts) {
			objs = append(objs, np)
		}
	}
	for _, s := range plans {
		// A pod starts only once the Secrets it mounts and reads exist.
		objs = append(objs, tlsSecret(p, s.Name, opts.Identity))
		if s.UsesBroker() {
			objs = append(objs, brokerUserSecret(p, s.Name, opts.BrokerUsers[s.Name]))
		}
		objs = append(objs, serviceDeployment(p, s, opts, keys, enabled), serviceService(p, s))
		objs = append(objs, opsService(p, s))
		switch {
		case s.KEDA:
			objs = append(objs, scaledObject(p, s))
		case s.Autoscaling != nil:
			objs = append(objs, serviceHPA(p, s))
		}
		if s.MaxReplicas() > 1 {
			objs = append(objs, pdb(p, ObjectName(p, s.Name), s.Name))
		}
	}

	if p.UID != "" {
		for _, o := range objs {
			o.SetOwnerReferences([]metav1.OwnerReference{*metav1.NewControllerRef(p, v1alpha1.GroupVersion.WithKind("Platform"))})
		}
	}
	return objs, nil
}

// validate refuses what the CRD refuses and render cannot resolve, and
// returns the parsed token keys. The API server enforces most of it
// already; `switchboard render` reads files that never went through it.
func validate(p *v1alpha1.Platform, opts Options) (tokenKeySet, error) {
	var errs []error
	if len(p.Spec.Workloads) == 0 {
		errs = append(errs, errors.New("spec.workloads is empty: enable commerce, streaming or both"))
	}
	for _, w := range p.Spec.Workloads {
		if !catalog.ValidWorkload(w) {
			errs = append(errs, fmt.Errorf("spec.workloads: unknown workload %q (known: %s)", w, joinWorkloads(catalog.Workloads)))
		}
	}
	if len(p.Spec.Workloads) > 0 {
		known := catalog.Names(catalog.ForWorkloads(p.Spec.Workloads...))
		for _, k := range sortedKeys(p.Spec.Services) {
			if !slices.Contains(known, k) {
				errs = append(errs, fmt.Errorf("spec.services: %q is not a service of workloads %s (known: %s)", k, joinWorkloads(p.Spec.Workloads), strings.Join(known, ", ")))
			}
			o := p.Spec.Services[k]
			if o.Replicas != nil && o.Autoscaling != nil && ptr.Deref(o.Autoscaling.Enabled, true) {
				errs = append(errs, fmt.Errorf("spec.services.%s: set either replicas or autoscaling, not both", k))
			}
			errs = append(errs, validateAutoscaling(k, o.Autoscaling)...)
		}
	}
	if r := p.Spec.Broker.Replicas; r != 0 && r != 1 && r != 3 && r != 5 {
		errs = append(errs, fmt.Errorf("spec.broker.replicas: %d is not 1, 3 or 5", r))
	}
	if s := p.Spec.Broker.JetStream.Size; s != nil && s.Sign() <= 0 {
		errs = append(errs, fmt.Errorf("spec.broker.jetstream.size: %s is not positive", s.String()))
	} else if s != nil && s.Cmp(minBrokerSize) < 0 {
		errs = append(errs, fmt.Errorf("spec.broker.jetstream.size: %s is less than %s: every stream and bucket is bounded to a share of it", s.String(), minBrokerSize.String()))
	}
	errs = append(errs, validatePeers("metricsFrom", p.Spec.NetworkPolicy.MetricsFrom)...)
	errs = append(errs, validatePeers("kedaFrom", p.Spec.NetworkPolicy.KEDAFrom)...)
	errs = append(errs, validateEgress("dnsEgress", p.Spec.NetworkPolicy.DNSEgress)...)
	errs = append(errs, validateEgress("smtpEgress", p.Spec.NetworkPolicy.SMTPEgress)...)
	errs = append(errs, validateLag(p)...)
	if _, err := OTLPPort(p); err != nil {
		errs = append(errs, err)
	}
	if _, err := SamplingRatio(p); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, validatePeersAt("spec.observability.collectorTo", p.Spec.Observability.CollectorTo)...)
	for i, c := range p.Spec.Gateway.TrustedProxyCIDRs {
		if pf, err := netip.ParsePrefix(c); err != nil || pf != pf.Masked() || pf.Addr().Is4In6() {
			errs = append(errs, fmt.Errorf("spec.gateway.trustedProxyCIDRs[%d]: %q is not a network address in CIDR notation, like 10.0.0.0/8", i, c))
		}
	}
	if p.Spec.Image == "" && opts.ServicesImage == "" {
		errs = append(errs, errors.New("no services image: set spec.image or the operator's --services-image"))
	}
	if err := opts.Credentials.validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, validateIdentitySpec(p)...)
	if len(p.Spec.Workloads) > 0 {
		plans := EnabledServices(p)
		if err := opts.BrokerUsers.validate(p, plans); err != nil {
			errs = append(errs, err)
		}
		if err := opts.Identity.validate(p); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, validateAuth(p)...)
	keys, err := opts.TokenKeys.keySet(p)
	if err != nil {
		errs = append(errs, err)
	}
	if err := opts.Admin.validate(p); err != nil {
		errs = append(errs, err)
	}
	// Service names must be DNS labels, so the Platform's name must leave
	// room for the longest suffix and contain no dots.
	// A StatefulSet's name also goes into its pods' controller-revision-hash
	// label with an 11-character suffix, so it may be at most 52 long.
	suffix := longestChildSuffix()
	max := min(validation.DNS1123LabelMaxLength-len(suffix), maxStatefulSetName-len(BrokerName(&v1alpha1.Platform{})))
	if len(p.Name) > max {
		errs = append(errs, fmt.Errorf("metadata.name: %q is too long for its children (%s%s, and its StatefulSet): use a name of at most %d characters", p.Name, p.Name, suffix, max))
	} else if msgs := validation.IsDNS1123Label(p.Name + suffix); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("metadata.name: %q must be a DNS label, as its children's names are: %s", p.Name, strings.Join(msgs, "; ")))
	}
	return keys, errors.Join(errs...)
}

// validatePeers refuses what the CRD refuses in a list of NetworkPolicy
// peers of spec.networkPolicy.
func validatePeers(field string, peers []networkingv1.NetworkPolicyPeer) []error {
	return validatePeersAt("spec.networkPolicy."+field, peers)
}

// validatePeersAt refuses what the CRD refuses in the list of
// NetworkPolicy peers at path.
func validatePeersAt(path string, peers []networkingv1.NetworkPolicyPeer) []error {
	var errs []error
	for i, peer := range peers {
		selects := peer.PodSelector != nil || peer.NamespaceSelector != nil
		switch {
		case peer.IPBlock == nil && !selects:
			errs = append(errs, fmt.Errorf("%s[%d]: needs an ipBlock, a podSelector or a namespaceSelector", path, i))
		case peer.IPBlock != nil && selects:
			errs = append(errs, fmt.Errorf("%s[%d]: an ipBlock may not come with a podSelector or namespaceSelector", path, i))
		}
	}
	if n := len(peers); n > maxPeers {
		errs = append(errs, fmt.Errorf("%s: %d peers, at most %d", path, n, maxPeers))
	}
	return errs
}

// validateEgress refuses what the CRD refuses in an EgressSpec of
// spec.networkPolicy: peers as in metricsFrom, and ports, each with a port,
// since a rule without ports (or a port without one) opens every port.
func validateEgress(field string, e *v1alpha1.EgressSpec) []error {
	if e == nil {
		return nil
	}
	errs := validatePeers(field+".to", e.To)
	switch n := len(e.Ports); {
	case n == 0:
		errs = append(errs, fmt.Errorf("spec.networkPolicy.%s.ports: list at least one port", field))
	case n > maxPeers:
		errs = append(errs, fmt.Errorf("spec.networkPolicy.%s.ports: %d ports, at most %d", field, n, maxPeers))
	}
	for i, port := range e.Ports {
		if port.Port == nil {
			errs = append(errs, fmt.Errorf("spec.networkPolicy.%s.ports[%d]: needs a port: an empty one would open every port", field, i))
		}
	}
	return errs
}

// validateAuth mirrors the CRD's rules on spec.auth that need no history.
func validateAuth(p *v1alpha1.Platform) []error {
	var errs []error
	a := p.Spec.Auth
	if d := TokenTTL(p); d < time.Minute || d > catalog.MaxTokenTTL {
		errs = append(errs, fmt.Errorf("spec.auth.tokenTTL: %s is not between 1m and %s", d, catalog.MaxTokenTTL))
	}
	for _, name := range KeyNames(p) {
		if len(name) > 32 || !keyName.MatchString(name) {
			errs = append(errs, fmt.Errorf("spec.auth: key name %q must be at most 32 lowercase letters, digits and dashes, starting and ending with a letter or digit", name))
		}
	}
	if len(a.VerificationKeys) > 2 {
		errs = append(errs, fmt.Errorf("spec.auth.verificationKeys: %d keys, at most 2", len(a.VerificationKeys)))
	}
	if len(a.VerificationKeys) > 0 && !slices.Contains(a.VerificationKeys, SigningKeyName(p)) {
		errs = append(errs, fmt.Errorf("spec.auth.signingKey: %q must be one of spec.auth.verificationKeys", SigningKeyName(p)))
	}
	return errs
}

// validateIdentitySpec mirrors the CRD's rules on spec.identity.
func validateIdentitySpec(p *v1alpha1.Platform) []error {
	var errs []error
	if _, err := ServiceID(p, catalog.Gateway); err != nil {
		errs = append(errs, fmt.Errorf("spec.identity.trustDomain, metadata.namespace or metadata.name cannot name a service: %w", err))
	}
	life, renew := CertificateLifetime(p), RenewBefore(p)
	if life < time.Hour || life > 8760*time.Hour {
		errs = append(errs, fmt.Errorf("spec.identity.certificateLifetime: %s is not between 1h and 8760h", life))
	}
	if renew < 5*time.Minute {
		errs = append(errs, fmt.Errorf("spec.identity.renewBefore: %s is less than 5m", renew))
	}
	if renew >= life {
		errs = append(errs, fmt.Errorf("spec.identity.renewBefore: %s must be shorter than certificateLifetime %s", renew, life))
	}
	return errs
}

// validateAutoscaling refuses utilization targets outside 1..100, as the CRD does.
func validateAutoscaling(service string, as *v1alpha1.AutoscalingSpec) []error {
	if as == nil {
		return nil
	}
	var errs []error
	for field, v := range map[string]*int32{
		"targetCPUUtilizationPercentage":    as.TargetCPUUtilizationPercentage,
		"targetMemoryUtilizationPercentage": as.TargetMemoryUtilizationPercentage,
	} {
		if v != nil && (*v < 1 || *v > 100) {
			errs = append(errs, fmt.Errorf("spec.services.%s.autoscaling.%s: %d is not a percentage from 1 to 100", service, field, *v))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}

var keyName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func joinWorkloads(ws []catalog.Workload) string {
	s := make([]string, len(ws))
	for i, w := range ws {
		s[i] = string(w)
	}
	return strings.Join(s, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// maxPeers is the CRD's maxItems of spec.networkPolicy.metricsFrom and
// kedaFrom, and of the peers and ports of dnsEgress and smtpEgress.
const maxPeers = 8

// longestChildSuffix is the longest "-<suffix>" a child name adds to the Platform's.
const maxStatefulSetName = 52

func longestChildSuffix() string {
	p := &v1alpha1.Platform{}
	longest := BrokerHeadlessName(p)
	for _, n := range []string{TokenSigningSecretName(p), TokenKeysConfigMapName(p), AdminSecretName(p)} {
		if len(n) > len(longest) {
			longest = n
		}
	}
	for _, s := range catalog.All() {
		if n := ObjectName(p, s.Name); len(n) > len(longest) {
			longest = n
		}
	}
	return longest
}

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

func objectMeta(p *v1alpha1.Platform, name, component string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: p.Namespace, Labels: Labels(p, component)}
}

// secretEnv is an env var from a key of the <p>-auth Secret.
func secretEnv(p *v1alpha1.Platform, name, key string) corev1.EnvVar {
	return secretKeyEnv(name, AuthSecretName(p), key)
}

func secretKeyEnv(name, secret, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secret},
		Key:                  key,
	}}}
}

// httpProbe spells out every field, defaults included, so the desired
// object matches what the API server stores.
func httpProbe(path, port string, period, timeout, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromString(port), Scheme: corev1.URISchemeHTTP,
		}},
		PeriodSeconds:    period,
		TimeoutSeconds:   timeout,
		SuccessThreshold: 1,
		FailureThreshold: failures,
	}
}

// podSecurityContext meets Pod Security "restricted". fsGroup makes the
// broker's volume writable by its non-root user.
func podSecurityContext(uid int64) *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:        ptr.To(true),
		RunAsUser:           ptr.To(uid),
		RunAsGroup:          ptr.To(uid),
		FSGroup:             ptr.To(uid),
		FSGroupChangePolicy: ptr.To(corev1.FSGroupChangeOnRootMismatch),
		SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func containerSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func itoa(i int32) string { return strconv.Itoa(int(i)) }
