package render

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

// Fallbacks when neither the Platform nor the catalog says.
const (
	defaultMinReplicas = 1
	defaultMaxReplicas = 5
	defaultTargetCPU   = 70
)

// defaultResources apply when neither spec.services[s].resources nor
// spec.defaults.resources is set. The CPU request is what an HPA's
// utilization target is measured against; no CPU limit, so a busy service
// is not throttled while the HPA reacts.
func defaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("50m"),
			corev1.ResourceMemory: resource.MustParse("64Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("256Mi"),
		},
	}
}

// ServicePlan is one enabled service with its settings resolved: catalog
// defaults, then spec.defaults, then spec.services[name].
type ServicePlan struct {
	catalog.Service
	// Replicas is nil when the service is autoscaled.
	Replicas *int32
	// Autoscaling is nil when the service runs a fixed replica count.
	Autoscaling *catalog.Autoscaling
	Resources   corev1.ResourceRequirements
	// Lag is nil unless the service opts in to queue-lag autoscaling, which
	// takes effect only where KEDA is installed.
	Lag *LagPlan
	// KEDA is true when a KEDA ScaledObject scales the service (Lag is set
	// and KEDA is installed): it replaces the HPA.
	KEDA bool
}

// MaxReplicas is the most replicas the service can run.
func (s ServicePlan) MaxReplicas() int32 {
	if s.Autoscaling != nil {
		return s.Autoscaling.MaxReplicas
	}
	return ptr.Deref(s.Replicas, 1)
}

// EnabledServices returns the services p runs, in catalog order: those of
// its workloads, minus the ones with enabled: false. Keys of spec.services
// that name no such service are ignored here and refused by Platform.
func EnabledServices(p *v1alpha1.Platform) []ServicePlan {
	var plans []ServicePlan
	for _, svc := range catalog.ForWorkloads(p.Spec.Workloads...) {
		o := p.Spec.Services[svc.Name]
		if o.Enabled != nil && !*o.Enabled {
			continue
		}
		plan := ServicePlan{Service: svc, Resources: resolveResources(p, o), Lag: resolveLag(svc, o)}
		if as := resolveAutoscaling(svc, o); as != nil {
			plan.Autoscaling = as
			ensureRequest(&plan.Resources, corev1.ResourceCPU)
			if as.TargetMemoryUtilizationPercentage > 0 {
				ensureRequest(&plan.Resources, corev1.ResourceMemory)
			}
		} else {
			plan.Replicas = ptr.To(resolveReplicas(svc, o))
		}
		plans = append(plans, plan)
	}
	return plans
}

// ServiceNames returns the names of the services p runs, in catalog order.
func ServiceNames(p *v1alpha1.Platform) []string {
	plans := EnabledServices(p)
	names := make([]string, len(plans))
	for i, s := range plans {
		names[i] = s.Name
	}
	return names
}

// resolveAutoscaling returns the HPA shape of svc, or nil for fixed replicas.
// An autoscaling block turns autoscaling on unless it says enabled: false;
// without one, replicas turn it off and otherwise the catalog decides.
func resolveAutoscaling(svc catalog.Service, o v1alpha1.ServiceSpec) *catalog.Autoscaling {
	spec := o.Autoscaling
	switch {
	case spec != nil && spec.Enabled != nil && !*spec.Enabled:
		return nil
	case spec == nil && (o.Replicas != nil || svc.Autoscaling == nil):
		return nil
	case spec == nil:
		spec = &v1alpha1.AutoscalingSpec{}
	}
	base := catalog.Autoscaling{MinReplicas: defaultMinReplicas, MaxReplicas: defaultMaxReplicas, TargetCPUUtilizationPercentage: defaultTargetCPU}
	if svc.Autoscaling != nil {
		base = *svc.Autoscaling
	}
	as := &catalog.Autoscaling{
		MinReplicas:                       ptr.Deref(spec.MinReplicas, base.MinReplicas),
		MaxReplicas:                       ptr.Deref(spec.MaxReplicas, base.MaxReplicas),
		TargetCPUUtilizationPercentage:    ptr.Deref(spec.TargetCPUUtilizationPercentage, base.TargetCPUUtilizationPercentage),
		TargetMemoryUtilizationPercentage: ptr.Deref(spec.TargetMemoryUtilizationPercentage, base.TargetMemoryUtilizationPercentage),
	}
	// Only one bound was given and it crosses the other's default
	// (minReplicas: 8 against the catalog's max 6): the explicit bound wins.
	if as.MinReplicas > as.MaxReplicas {
		as.MaxReplicas = as.MinReplicas
	}
	return as
}

func resolveReplicas(svc catalog.Service, o v1alpha1.ServiceSpec) int32 {
	if o.Replicas != nil {
		return *o.Replicas
	}
	if svc.Replicas > 0 {
		return svc.Replicas
	}
	return 1
}

func resolveResources(p *v1alpha1.Platform, o v1alpha1.ServiceSpec) corev1.ResourceRequirements {
	switch {
	case o.Resources != nil:
		return *o.Resources.DeepCopy()
	case p.Spec.Defaults.Resources != nil:
		return *p.Spec.Defaults.Resources.DeepCopy()
	default:
		return defaultResources()
	}
}

// ensureRequest gives an autoscaled container the request of name (CPU, or
// memory when there is a memory target) that its HPA measures utilization
// against, unless one is set or will be defaulted from a limit by the API
// server. Without it the HPA cannot compute utilization and never scales.
func ensureRequest(r *corev1.ResourceRequirements, name corev1.ResourceName) {
	if _, ok := r.Requests[name]; ok {
		return
	}
	if _, ok := r.Limits[name]; ok {
		return
	}
	if r.Requests == nil {
		r.Requests = corev1.ResourceList{}
	}
	r.Requests[name] = defaultResources().Requests[name]
}
