package render

import (
	"fmt"
	"strconv"
	"strings"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

// Queue-lag autoscaling renders a KEDA ScaledObject in place of a service's
// HorizontalPodAutoscaler. KEDA then creates and owns the HPA
// (keda-hpa-<p>-<s>), and the Deployment leaves replicas unset as it does
// for our own HPA.
const (
	// ScaledObjectCRD is the CustomResourceDefinition that serves
	// ScaledObjects. It comes with KEDA, not with Switchboard: the operator
	// renders ScaledObjects only while it is installed (Options.KEDA).
	ScaledObjectCRD = "scaledobjects.keda.sh"

	// TriggerNATSJetStream is KEDA's scaler on a JetStream consumer's
	// backlog, which it reads from the broker's monitor (/jsz).
	TriggerNATSJetStream = "nats-jetstream"

	// BrokerAccount is the NATS account the platform's streams live in: the
	// broker's users belong to no named account, so everything is in the
	// global account, $G.
	BrokerAccount = "$G"

	// defaultLagThreshold applies when neither the Platform nor the catalog
	// gives one.
	defaultLagThreshold = 100
)

// ScaledObjectKind is KEDA's ScaledObject.
var ScaledObjectKind = kedav1alpha1.GroupVersion.WithKind("ScaledObject")

// kedaHPAExcludedLabels are the labels of ours that KEDA must not copy from
// the ScaledObject onto the HPA it creates (it copies every label by
// default). Without managed-by and name, KEDA's HPA says it is KEDA's
// (managed-by keda-operator): the operator's cache, which holds only what
// the operator manages, never sees it, so neither drift nor prune can touch
// it. instance and component stay, to find the HPA of a platform's service.
var kedaHPAExcludedLabels = []string{LabelManagedBy, LabelName, LabelPartOf}

// defaultKEDAPeer is where KEDA's own manifests and chart run its operator,
// which is the component that reads the broker's monitor.
func defaultKEDAPeer() networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "keda"}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "keda-operator"}},
	}
}

// LagPlan is a service's queue-lag autoscaling: one trigger per durable
// consumer, all with one threshold.
type LagPlan struct {
	Consumers []LagConsumer
	// Threshold is the backlog per replica to aim for.
	Threshold int64
}

// LagConsumer is a durable consumer and the stream that holds it.
type LagConsumer struct {
	Stream  string
	Durable string
}

// Durables names the consumers of l.
func (l *LagPlan) Durables() []string {
	names := make([]string, len(l.Consumers))
	for i, c := range l.Consumers {
		names[i] = c.Durable
	}
	return names
}

// resolveLag returns svc's lag scaling, or nil when it is off: fixed
// replicas or autoscaling switched off turn it off; otherwise
// spec.services[s].autoscaling.lag.enabled, else the catalog, decides. A
// service the Platform opts in without a catalog default scales on all its
// consumers; one without consumers gets a plan with none, which validate
// refuses.
func resolveLag(svc catalog.Service, o v1alpha1.ServiceSpec) *LagPlan {
	as := o.Autoscaling
	switch {
	case as != nil && as.Enabled != nil && !*as.Enabled:
		return nil
	case as == nil && o.Replicas != nil:
		return nil
	}
	var spec v1alpha1.LagScalingSpec
	if as != nil && as.Lag != nil {
		spec = *as.Lag
	}
	if !ptr.Deref(spec.Enabled, svc.LagScaling != nil) {
		return nil
	}
	threshold := int64(defaultLagThreshold)
	var durables []string
	if svc.LagScaling != nil {
		threshold, durables = svc.LagScaling.LagThreshold, svc.LagScaling.Durables
	} else {
		for _, c := range svc.Consumers {
			durables = append(durables, c.Durable)
		}
	}
	plan := &LagPlan{Threshold: ptr.Deref(spec.LagThreshold, threshold)}
	for _, d := range durables {
		c, _ := svc.Consumer(d)
		// The catalog's tests keep every consumer's subjects in one stream.
		var stream catalog.Stream
		if len(c.Subjects) > 0 {
			stream, _ = catalog.StreamFor(c.Subjects[0])
		}
		plan.Consumers = append(plan.Consumers, LagConsumer{Stream: stream.Name, Durable: d})
	}
	return plan
}

// validateLag refuses lag scaling on a service with no consumer to scale on.
func validateLag(p *v1alpha1.Platform) []error {
	var errs []error
	for _, s := range EnabledServices(p) {
		if s.Lag != nil && len(s.Lag.Consumers) == 0 {
			errs = append(errs, fmt.Errorf("spec.services.%s.autoscaling.lag: %s has no durable consumer whose backlog could scale it; turn lag off or scale it on CPU", s.Name, s.Name))
		}
	}
	return errs
}

// withKEDA switches the plans that scale on lag to a ScaledObject when KEDA
// is served: each becomes autoscaled, within its autoscaling bounds or the
// fallback ones, with the requests its CPU and memory triggers measure.
func withKEDA(plans []ServicePlan, keda bool) {
	if !keda {
		return
	}
	for i := range plans {
		s := &plans[i]
		if s.Lag == nil {
			continue
		}
		s.KEDA = true
		s.Replicas = nil
		if s.Autoscaling == nil {
			s.Autoscaling = &catalog.Autoscaling{MinReplicas: defaultMinReplicas, MaxReplicas: defaultMaxReplicas, TargetCPUUtilizationPercentage: defaultTargetCPU}
		}
		ensureRequest(&s.Resources, corev1.ResourceCPU)
		if s.Autoscaling.TargetMemoryUtilizationPercentage > 0 {
			ensureRequest(&s.Resources, corev1.ResourceMemory)
		}
	}
}

// BrokerMonitorEndpoint is host:port of the broker's monitor as KEDA's
// nats-jetstream scaler wants it. It is the headless Service: in a
// cluster, the scaler asks each server by a name it builds as
// "<server name>.<this host>" when the servers advertise no client URLs,
// and only the headless Service gives the pods such names (the server name
// is the pod's).
func BrokerMonitorEndpoint(p *v1alpha1.Platform) string {
	return fmt.Sprintf("%s.%s.svc.%s:%d", BrokerHeadlessName(p), p.Namespace, ClusterDomain, MonitorPort)
}

// scaledObject scales svc on the backlog of each of its lag consumers and,
// as its HPA would, on CPU and memory: KEDA's HPA follows whichever trigger
// asks for the most replicas.
func scaledObject(p *v1alpha1.Platform, svc ServicePlan) *kedav1alpha1.ScaledObject {
	as := svc.Autoscaling
	var triggers []kedav1alpha1.ScaleTriggers
	for _, c := range svc.Lag.Consumers {
		triggers = append(triggers, kedav1alpha1.ScaleTriggers{
			Type: TriggerNATSJetStream,
			Name: c.Durable,
			Metadata: map[string]string{
				"natsServerMonitoringEndpoint": BrokerMonitorEndpoint(p),
				"account":                      BrokerAccount,
				"stream":                       c.Stream,
				"consumer":                     c.Durable,
				"lagThreshold":                 strconv.FormatInt(svc.Lag.Threshold, 10),
			},
		})
	}
	for _, m := range utilizationMetrics(as) {
		triggers = append(triggers, kedav1alpha1.ScaleTriggers{
			Type:       string(m.Resource.Name),
			MetricType: autoscalingv2.UtilizationMetricType,
			Metadata:   map[string]string{"value": itoa(*m.Resource.Target.AverageUtilization)},
		})
	}
	meta := objectMeta(p, ObjectName(p, svc.Name), svc.Name)
	meta.Annotations = map[string]string{kedav1alpha1.ScaledObjectExcludedLabelsAnnotation: strings.Join(kedaHPAExcludedLabels, ",")}
	return &kedav1alpha1.ScaledObject{
		TypeMeta:   typeMeta(kedav1alpha1.GroupVersion.String(), ScaledObjectKind.Kind),
		ObjectMeta: meta,
		Spec: kedav1alpha1.ScaledObjectSpec{
			ScaleTargetRef:  &kedav1alpha1.ScaleTarget{APIVersion: "apps/v1", Kind: "Deployment", Name: ObjectName(p, svc.Name)},
			MinReplicaCount: ptr.To(as.MinReplicas),
			MaxReplicaCount: ptr.To(as.MaxReplicas),
			Triggers:        triggers,
		},
	}
}

// kedaPeers are spec.networkPolicy.kedaFrom, or KEDA's usual install.
func kedaPeers(p *v1alpha1.Platform) []networkingv1.NetworkPolicyPeer {
	if len(p.Spec.NetworkPolicy.KEDAFrom) > 0 {
		return p.Spec.NetworkPolicy.KEDAFrom
	}
	return []networkingv1.NetworkPolicyPeer{defaultKEDAPeer()}
}
