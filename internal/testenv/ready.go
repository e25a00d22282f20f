// Package testenv holds what the envtest suites share. envtest runs an API
// server but no kubelet and no built-in controllers, so a test plays their
// part where it needs pods to be "ready".
package testenv

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/render"
)

// MarkReady sets the status of every Deployment and StatefulSet of p as the
// Deployment and StatefulSet controllers would once every pod is ready. It
// fails when p has neither, since a test that marks nothing proves nothing.
func MarkReady(ctx context.Context, c client.Client, p *v1alpha1.Platform) error {
	sel := client.MatchingLabelsSelector{Selector: render.PlatformSelector(p)}
	var deps appsv1.DeploymentList
	if err := c.List(ctx, &deps, client.InNamespace(p.Namespace), sel); err != nil {
		return err
	}
	for i := range deps.Items {
		d := &deps.Items[i]
		n := int32(1)
		if d.Spec.Replicas != nil {
			n = *d.Spec.Replicas
		}
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
		if err := c.Status().Update(ctx, d); err != nil {
			return err
		}
	}
	var sets appsv1.StatefulSetList
	if err := c.List(ctx, &sets, client.InNamespace(p.Namespace), sel); err != nil {
		return err
	}
	for i := range sets.Items {
		s := &sets.Items[i]
		n := *s.Spec.Replicas
		s.Status = appsv1.StatefulSetStatus{ObservedGeneration: s.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n, CurrentReplicas: n}
		if err := c.Status().Update(ctx, s); err != nil {
			return err
		}
	}
	if len(deps.Items) == 0 || len(sets.Items) == 0 {
		return fmt.Errorf("found %d Deployments and %d StatefulSets of %s to mark ready", len(deps.Items), len(sets.Items), p.Name)
	}
	return nil
}
