package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

// Condition types.
const (
	ConditionReady         = "Ready"
	ConditionBrokerReady   = "BrokerReady"
	ConditionServicesReady = "ServicesReady"
	ConditionProgressing   = "Progressing"
	ConditionDegraded      = "Degraded"
	// ConditionCertificatesReady says every enabled service holds a
	// certificate the operator keeps current (see identity.go).
	ConditionCertificatesReady = "CertificatesReady"
)

// Condition reasons and Event reasons.
const (
	reasonAvailable         = "Available"
	reasonNotReady          = "NotReady"
	reasonBrokerAvailable   = "BrokerAvailable"
	reasonBrokerMissing     = "BrokerMissing"
	reasonBrokerRollingOut  = "BrokerRollingOut"
	reasonServicesAvailable = "AllServicesAvailable"
	reasonServicesNotReady  = "ServicesNotReady"
	reasonRollingOut        = "RollingOut"
	reasonReconciled        = "Reconciled"
	reasonAsExpected        = "AsExpected"
	reasonCredentialsFailed = "CredentialsFailed"
	reasonRenderFailed      = "RenderFailed"
	reasonApplyFailed       = "ApplyFailed"
	reasonPruneFailed       = "PruneFailed"
	reasonObserveFailed     = "ObserveFailed"
	reasonApplied           = "Applied"
	reasonPruned            = "Pruned"
	reasonBecameReady       = "PlatformReady"
	reasonLostReadiness     = "PlatformNotReady"
)

// reconcileOutcome collects what one reconcile did and saw; status is
// computed from it in one place.
type reconcileOutcome struct {
	succeeded bool
	applied   []string
	observed  *observation
	// lagScaling is what discovery found for queue-lag autoscaling.
	lagScaling *lagScaling
	// identity is what keeping the service certificates did; nil when
	// that phase did not run to the end.
	identity *render.IdentityReport
	// requeueAfter asks for another reconcile after a successful one.
	requeueAfter time.Duration
	// failure is set when a step failed; it surfaces as Degraded.
	failureReason string
	failure       error
}

// requeue asks for another reconcile within d.
func (o *reconcileOutcome) requeue(d time.Duration) {
	if o.requeueAfter == 0 || d < o.requeueAfter {
		o.requeueAfter = d
	}
}

func (o *reconcileOutcome) fail(reason string, err error) {
	o.failureReason, o.failure = reason, err
}

// patchStatus computes the new status from the outcome and writes it only
// when it differs from what was read.
func (r *PlatformReconciler) patchStatus(ctx context.Context, before, p *v1alpha1.Platform, o *reconcileOutcome) error {
	wasReady := meta.IsStatusConditionTrue(before.Status.Conditions, ConditionReady)
	st := &p.Status
	if o.observed != nil {
		st.Broker = o.observed.broker
		st.Services = o.observed.services
		ready, _ := o.observed.readyServices()
		st.ServicesReady = fmt.Sprintf("%d/%d", ready, len(o.observed.services))
		st.GatewayURL = ""
		for _, s := range o.observed.services {
			if s.Name == catalog.Gateway {
				st.GatewayURL = render.GatewayURL(p)
			}
		}
	}
	if o.succeeded {
		st.ObservedGeneration = p.Generation
	}
	setBrokerReadyCondition(p, o)
	setServicesReadyCondition(p, o)
	setDegradedCondition(p, o)
	setProgressingCondition(p, o)
	setReadyCondition(p)
	setLagScalingCondition(p, o)
	setBrokerStorageCondition(p, o)
	setCertificatesReadyCondition(p, o)

	if equality.Semantic.DeepEqual(before.Status, p.Status) {
		return nil
	}
	if err := r.Status().Patch(ctx, p, client.MergeFrom(before)); err != nil {
		return client.IgnoreNotFound(err)
	}
	r.announceStorage(before, p)
	isReady := meta.IsStatusConditionTrue(p.Status.Conditions, ConditionReady)
	switch {
	case isReady && !wasReady:
		r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, reasonBecameReady, "Observe", "Broker and all %s services are ready", st.ServicesReady)
	case !isReady && wasReady:
		r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, reasonLostReadiness, "Observe", "%s", meta.FindStatusCondition(p.Status.Conditions, ConditionReady).Message)
	}
	return nil
}

func setCondition(p *v1alpha1.Platform, typ string, ok bool, reason, message string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: message, ObservedGeneration: p.Generation,
	})
}

func setBrokerReadyCondition(p *v1alpha1.Platform, o *reconcileOutcome) {
	if o.observed == nil {
		return // keep the last observation; Degraded says why there is none
	}
	b := o.observed.broker
	switch pr := o.observed.problems[render.ComponentBroker]; {
	case o.observed.brokerReady():
		msg := fmt.Sprintf("%s NATS replicas ready at %s", b.Ready, b.URL)
		detail, ok := clusterReport(p, o)
		if detail != "" {
			msg += "; " + detail
		}
		if !ok {
			setCondition(p, ConditionBrokerReady, false, reasonNoMetaLeader, msg)
			return
		}
		setCondition(p, ConditionBrokerReady, true, reasonBrokerAvailable, msg)
	case pr != nil:
		setCondition(p, ConditionBrokerReady, false, pr.reason, fmt.Sprintf("%s NATS replicas ready: %s", b.Ready, pr.message))
	case b.ReadyReplicas == 0:
		setCondition(p, ConditionBrokerReady, false, reasonBrokerMissing,
			fmt.Sprintf("no NATS replica is ready (0/%d); check the pods of StatefulSet %s and their PersistentVolumeClaims", b.Replicas, render.BrokerName(p)))
	default:
		setCondition(p, ConditionBrokerReady, false, reasonBrokerRollingOut,
			fmt.Sprintf("%s NATS replicas ready; waiting for StatefulSet %s", b.Ready, render.BrokerName(p)))
	}
}

func setServicesReadyCondition(p *v1alpha1.Platform, o *reconcileOutcome) {
	if o.observed == nil {
		return
	}
	ready, notReady := o.observed.readyServices()
	if len(notReady) == 0 {
		setCondition(p, ConditionServicesReady, true, reasonServicesAvailable, fmt.Sprintf("all %d services are ready", ready))
		return
	}
	setCondition(p, ConditionServicesReady, false, reasonServicesNotReady,
		fmt.Sprintf("%d/%d services ready; waiting for %s (kubectl describe deployment %s-<service>)",
			ready, len(o.observed.services), strings.Join(notReady, ", "), p.Name))
}

func setDegradedCondition(p *v1alpha1.Platform, o *reconcileOutcome) {
	if o.failure != nil {
		setCondition(p, ConditionDegraded, true, o.failureReason, o.failure.Error())
		return
	}
	setCondition(p, ConditionDegraded, false, reasonAsExpected, "the last reconcile succeeded")
}

func setProgressingCondition(p *v1alpha1.Platform, o *reconcileOutcome) {
	switch {
	case o.failure != nil:
		setCondition(p, ConditionProgressing, false, o.failureReason, "reconcile failed; see the Degraded condition")
	case o.observed != nil && (!o.observed.brokerReady() || !o.observed.allServicesReady()):
		setCondition(p, ConditionProgressing, true, reasonRollingOut, "waiting for the broker and services to become ready")
	case len(o.applied) > 0:
		setCondition(p, ConditionProgressing, true, reasonRollingOut, fmt.Sprintf("applied %s", summarize(o.applied)))
	default:
		setCondition(p, ConditionProgressing, false, reasonReconciled, "every child matches the spec")
	}
}

func setReadyCondition(p *v1alpha1.Platform) {
	conds := p.Status.Conditions
	switch {
	case meta.IsStatusConditionTrue(conds, ConditionDegraded):
		c := meta.FindStatusCondition(conds, ConditionDegraded)
		setCondition(p, ConditionReady, false, c.Reason, c.Message)
	case !meta.IsStatusConditionTrue(conds, ConditionBrokerReady):
		c := meta.FindStatusCondition(conds, ConditionBrokerReady)
		if c == nil {
			setCondition(p, ConditionReady, false, reasonNotReady, "the broker has not been observed yet")
			return
		}
		setCondition(p, ConditionReady, false, c.Reason, c.Message)
	case !meta.IsStatusConditionTrue(conds, ConditionServicesReady):
		c := meta.FindStatusCondition(conds, ConditionServicesReady)
		setCondition(p, ConditionReady, false, c.Reason, c.Message)
	default:
		setCondition(p, ConditionReady, true, reasonAvailable, "the broker and every service are ready")
	}
}
