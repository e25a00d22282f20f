// Package controllers holds the PlatformReconciler. It renders the desired
// children with internal/render, applies them with server-side apply, prunes
// what is no longer desired and reports what it observes. It never builds an
// object itself.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/render"
)

// PlatformReconciler reconciles a Platform into its broker and services.
type PlatformReconciler struct {
	client.Client
	// APIReader reads around the cache. It is used only to find an auth
	// Secret that lost its labels, so its credentials are never regenerated
	// by accident.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	// ServicesImage runs the services when a Platform sets no spec.image.
	ServicesImage string
	// BrokerImage runs the broker when a Platform sets no spec.broker.image;
	// empty means render.DefaultBrokerImage.
	BrokerImage string

	// BrokerMonitor reads the broker servers' monitors for the JetStream
	// cluster and storage in status; nil leaves them out.
	BrokerMonitor BrokerMonitor
	// BrokerPeers removes the servers a scale-down took away from the
	// JetStream meta group, from what BrokerMonitor saw; nil leaves them.
	BrokerPeers BrokerPeerRemover
	// Clock tells the time of certificate decisions; nil means time.Now.
	// Tests move it to bring renewals forward.
	Clock func() time.Time
	// BrokerUsers keeps the services' broker users; nil uses one shared
	// keeper with bcrypt's default cost. Tests may bring a cheaper one.
	BrokerUsers *render.BrokerUserKeeper

	// OperatorNamespace is where the operator's pods run: the broker's
	// NetworkPolicy admits them to its monitor. Empty admits none (an
	// operator outside the cluster needs no rule).
	OperatorNamespace string

	// optional watches the optional child kinds while their CRDs exist;
	// SetupWithManager sets it. A reconciler outside a manager has none.
	optional *optionalWatches
}

// +kubebuilder:rbac:groups=platform.switchboard.dev,resources=platforms,verbs=get;list;watch
// +kubebuilder:rbac:groups=platform.switchboard.dev,resources=platforms/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services;configmaps;secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile follows one skeleton: get the Platform, run the phases in order
// (credentials, identity, render, apply, prune, observe), then write status
// once, in a deferred step, from what they did and saw.
func (r *PlatformReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	p := &v1alpha1.Platform{}
	if err := r.Get(ctx, req.NamespacedName, p); err != nil {
		if isNotFound(err) {
			forgetBroker(&metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name})
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !p.DeletionTimestamp.IsZero() {
		// Children carry owner references: the garbage collector removes them.
		return ctrl.Result{}, nil
	}

	before := p.DeepCopy()
	s := &reconcileState{p: p, outcome: &reconcileOutcome{}}
	defer func() {
		if err := r.patchStatus(ctx, before, p, s.outcome); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("writing status: %w", err))
		}
	}()

	for _, ph := range r.phases() {
		if err := ph.run(ctx, s); err != nil {
			s.outcome.fail(ph.reason, err)
			if ph.action != "" {
				r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, ph.reason, ph.action, "%v", err)
			}
			if ph.final {
				return ctrl.Result{}, nil
			}
			return ctrl.Result{}, err
		}
	}
	s.outcome.succeeded = true
	return ctrl.Result{RequeueAfter: s.outcome.requeueAfter}, nil
}

// SetupWithManager registers the controller. It owns every child kind, so a
// deleted or hand-edited child triggers a reconcile that puts it back.
func (r *PlatformReconciler) SetupWithManager(mgr ctrl.Manager) error {
	children, err := childObjects(mgr.GetScheme())
	if err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Platform{}, builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	for _, obj := range children {
		b = b.Owns(obj)
	}
	// Pods tell why a broker or service does not become ready.
	b = b.Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(platformForPod), builder.WithPredicates(podStartChanged))
	// The optional kinds are watched from the moment their CRD exists
	// (optionalWatches); the CRDs themselves always are.
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(crdKind)
	b = b.WatchesMetadata(crd, handler.EnqueueRequestsFromMapFunc(r.platformsForCRD))
	c, err := b.Named("platform").Build(r)
	if err != nil {
		return err
	}
	r.optional = newOptionalWatches(c, mgr.GetCache(), mgr.GetScheme(), mgr.GetRESTMapper())
	return nil
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
