package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/render"
)

// +kubebuilder:rbac:groups=keda.sh,resources=scaledobjects,verbs=get;list;watch;create;update;patch;delete

// ConditionLagScaling says whether the services that ask for queue-lag
// autoscaling have it, and why not.
const ConditionLagScaling = "LagScaling"

// Reasons of the LagScaling condition (with the kindState reasons, which
// say why KEDA's ScaledObject is not served).
const (
	reasonLagScalingActive = "KEDAScaledObjects"
	reasonNotRequested     = "NotRequested"
	reasonScalerHandedOver = "ScalerHandedOver"
	reasonHandoverFailed   = "HandoverFailed"
	reasonDiscoveryFailed  = "DiscoveryFailed"
)

// lagScaling is what status says about queue-lag autoscaling.
type lagScaling struct {
	// services opt in to lag scaling, in catalog order.
	services []string
	// fixed are those of services that run fixed replicas while KEDA is
	// missing (they have no CPU autoscaling of their own).
	fixed []string
	keda  kindState
}

// discoverOptionalKinds finds which optional child kinds the API server
// serves, starts or stops their watches to match, and notes what status
// will say about lag scaling.
func (r *PlatformReconciler) discoverOptionalKinds(ctx context.Context, s *reconcileState) error {
	s.optional = r.optionalKindStates(ctx)
	keda := s.optional[render.ScaledObjectKind]
	ls := &lagScaling{keda: keda}
	for _, svc := range render.EnabledServices(s.p) {
		if svc.Lag == nil {
			continue
		}
		ls.services = append(ls.services, svc.Name)
		if svc.Autoscaling == nil {
			ls.fixed = append(ls.fixed, svc.Name)
		}
	}
	s.outcome.lagScaling = ls
	if keda.retry && len(ls.services) > 0 {
		s.outcome.requeue(notServedRetry)
	}
	return r.optional.sync(ctx, s.optional)
}

// served reports whether the API server serves kind, optional or not.
func (s *reconcileState) served(kind schema.GroupVersionKind) bool {
	if _, optional := render.OptionalKindCRD(kind); !optional {
		return true
	}
	return s.optional[kind].served
}

// scalerKinds are the two ways a service is autoscaled. KEDA's admission
// webhook refuses a ScaledObject for a Deployment another HPA scales, and
// the HPA controller stops scaling a Deployment two HPAs (ours and KEDA's)
// select: so the scaler a service leaves goes before the new one is applied.
var scalerKinds = []schema.GroupVersionKind{
	autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"),
	render.ScaledObjectKind,
}

// handOverScaling deletes, for each desired scaler, the other scaler of the
// same service, when p controls it.
func (r *PlatformReconciler) handOverScaling(ctx context.Context, s *reconcileState) error {
	var deleted []string
	for _, obj := range s.desired {
		gvk, err := apiutil.GVKForObject(obj, r.Scheme)
		if err != nil {
			return err
		}
		if !slices.Contains(scalerKinds, gvk) {
			continue
		}
		for _, other := range scalerKinds {
			if other == gvk || !s.served(other) {
				continue
			}
			old, err := newTyped[client.Object](r.Scheme, other)
			if err != nil {
				return err
			}
			switch err := r.readerFor(other).Get(ctx, client.ObjectKeyFromObject(obj), old); {
			case isNotFound(err):
				continue
			case err != nil:
				return fmt.Errorf("reading %s/%s: %w", other.Kind, obj.GetName(), err)
			}
			if !metav1.IsControlledBy(old, s.p) || !old.GetDeletionTimestamp().IsZero() {
				continue
			}
			if err := r.Delete(ctx, old, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("deleting %s/%s before applying %s/%s: %w", other.Kind, obj.GetName(), gvk.Kind, obj.GetName(), err)
			}
			deleted = append(deleted, other.Kind+"/"+obj.GetName())
		}
	}
	r.announce(ctx, s.p, reasonScalerHandedOver, "Handover", "Deleted the scaler a service left", deleted)
	return nil
}

func setLagScalingCondition(p *v1alpha1.Platform, o *reconcileOutcome) {
	ls := o.lagScaling
	if ls == nil {
		return // discovery did not run; keep the last word
	}
	names := strings.Join(ls.services, ", ")
	switch {
	case len(ls.services) == 0:
		setCondition(p, ConditionLagScaling, false, reasonNotRequested,
			"no service scales on queue lag; set spec.services.<name>.autoscaling.lag.enabled to scale a consumer on its backlog with KEDA")
	case ls.keda.served:
		setCondition(p, ConditionLagScaling, true, reasonLagScalingActive,
			fmt.Sprintf("%s scale on their consumers' backlog through KEDA ScaledObjects (KEDA's HPAs are keda-hpa-%s-<service>)", names, p.Name))
	default:
		setCondition(p, ConditionLagScaling, false, ls.keda.reason,
			fmt.Sprintf("%s would scale on queue lag, but %s; meanwhile %s. Install KEDA (https://keda.sh) and they switch to ScaledObjects; to keep them as they are, set spec.services.<name>.autoscaling.lag.enabled: false",
				names, ls.keda.message, ls.meanwhile()))
	}
}

// meanwhile says how the services that want lag scaling scale without it.
func (ls *lagScaling) meanwhile() string {
	var cpu []string
	for _, s := range ls.services {
		if !slices.Contains(ls.fixed, s) {
			cpu = append(cpu, s)
		}
	}
	var parts []string
	if len(cpu) > 0 {
		parts = append(parts, strings.Join(cpu, ", ")+keeps(len(cpu))+" scaling on CPU")
	}
	if len(ls.fixed) > 0 {
		parts = append(parts, strings.Join(ls.fixed, ", ")+keeps(len(ls.fixed))+" fixed replicas")
	}
	return strings.Join(parts, " and ")
}

func keeps(n int) string {
	if n == 1 {
		return " keeps"
	}
	return " keep"
}
