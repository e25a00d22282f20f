package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/render"
)

// observation is what the reconciler saw of the children it owns.
type observation struct {
	broker   v1alpha1.BrokerStatus
	services []v1alpha1.ServiceStatus
	// problems say, by component (a service or the broker), why one of its
	// pods does not start.
	problems map[string]*podProblem
	// jetstream is what the broker's monitors said; nil without a monitor.
	jetstream *jetStreamObservation
}

func (o *observation) brokerReady() bool {
	return o.broker.Replicas > 0 && o.broker.ReadyReplicas >= o.broker.Replicas
}

func (o *observation) readyServices() (ready int, notReady []string) {
	for _, s := range o.services {
		switch pr := o.problems[s.Name]; {
		case s.Ready:
			ready++
		case pr != nil:
			notReady = append(notReady, fmt.Sprintf("%s (%d/%d ready: %s)", s.Name, s.ReadyReplicas, s.Replicas, pr.message))
		default:
			notReady = append(notReady, fmt.Sprintf("%s (%d/%d ready)", s.Name, s.ReadyReplicas, s.Replicas))
		}
	}
	return ready, notReady
}

func (o *observation) allServicesReady() bool {
	_, notReady := o.readyServices()
	return len(notReady) == 0
}

// observe reads the broker StatefulSet and each service's Deployment.
func (r *PlatformReconciler) observe(ctx context.Context, p *v1alpha1.Platform) (*observation, error) {
	obs := &observation{broker: v1alpha1.BrokerStatus{URL: render.BrokerURL(p), Replicas: render.BrokerReplicas(p)}}

	sts := &appsv1.StatefulSet{}
	switch err := r.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: render.BrokerName(p)}, sts); {
	case err == nil:
		if sts.Status.ObservedGeneration >= sts.Generation && sts.Status.UpdatedReplicas >= obs.broker.Replicas {
			obs.broker.ReadyReplicas = sts.Status.ReadyReplicas
		} else {
			// Pods of an older revision do not count until the rollout is done.
			obs.broker.ReadyReplicas = min(sts.Status.ReadyReplicas, sts.Status.UpdatedReplicas)
		}
	case !isNotFound(err):
		return nil, err
	}
	obs.broker.Ready = fmt.Sprintf("%d/%d", obs.broker.ReadyReplicas, obs.broker.Replicas)

	for _, svc := range render.EnabledServices(p) {
		st := v1alpha1.ServiceStatus{Name: svc.Name, Endpoint: render.ServiceURL(p, svc.Name)}
		d := &appsv1.Deployment{}
		switch err := r.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: render.ObjectName(p, svc.Name)}, d); {
		case err == nil:
			st.Replicas = 1
			if d.Spec.Replicas != nil {
				st.Replicas = *d.Spec.Replicas
			}
			st.ReadyReplicas = d.Status.ReadyReplicas
			st.Ready = deploymentReady(d, st.Replicas)
		case !isNotFound(err):
			return nil, err
		}
		obs.services = append(obs.services, st)
	}
	var err error
	if obs.problems, err = r.podProblems(ctx, p); err != nil {
		return nil, err
	}
	if r.BrokerMonitor != nil {
		obs.jetstream = r.observeJetStream(ctx, p, obs.broker)
	}
	return obs, nil
}

// deploymentReady is true once the controller has seen the latest spec and
// every desired replica runs the latest template and is ready.
func deploymentReady(d *appsv1.Deployment, desired int32) bool {
	return d.Status.ObservedGeneration >= d.Generation &&
		d.Status.UpdatedReplicas >= desired &&
		d.Status.ReadyReplicas >= desired &&
		d.Status.Replicas == d.Status.UpdatedReplicas
}
