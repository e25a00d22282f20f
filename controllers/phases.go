package controllers

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/render"
)

// reconcileState is what one reconcile's phases hand each other.
type reconcileState struct {
	p       *v1alpha1.Platform
	secrets secrets
	// identity is the CA and the services' certificates to render.
	identity render.Identity
	// optional says which optional child kinds (KEDA's ScaledObject) the
	// API server serves.
	optional map[schema.GroupVersionKind]kindState
	desired  []client.Object
	// outcome is what status is computed from.
	outcome *reconcileOutcome
}

// phase is one step of a reconcile. The first phase to fail ends the
// reconcile: its error becomes the Degraded condition under reason, a
// Warning Event when the phase has an action, and a retry unless final.
type phase struct {
	reason string
	// action names the Event of a failure. A failed read of the cluster
	// (credentials, observe) has none: the retry and Degraded report it.
	action string
	// final failures are not retried: they last until the spec changes.
	final bool
	run   func(context.Context, *reconcileState) error
}

func (r *PlatformReconciler) phases() []phase {
	return []phase{
		{reason: reasonCredentialsFailed, run: r.readCredentials},
		{reason: reasonIdentityFailed, action: "IssueCertificates", run: r.keepIdentity},
		{reason: reasonDiscoveryFailed, run: r.discoverOptionalKinds},
		{reason: reasonRenderFailed, action: "Render", final: true, run: r.renderDesired},
		{reason: reasonHandoverFailed, action: "Handover", run: r.handOverScaling},
		{reason: reasonApplyFailed, action: "Apply", run: r.applyDesired},
		{reason: reasonPruneFailed, action: "Prune", run: r.pruneUndesired},
		{reason: reasonObserveFailed, run: r.observeChildren},
		{reason: reasonPeerRemovalFailed, action: "RemoveBrokerPeers", run: r.removeDepartedPeers},
	}
}

func (r *PlatformReconciler) readCredentials(ctx context.Context, s *reconcileState) (err error) {
	s.secrets, err = r.secrets(ctx, s.p)
	return err
}

func (r *PlatformReconciler) renderDesired(_ context.Context, s *reconcileState) (err error) {
	s.desired, err = render.Platform(s.p, render.Options{
		ServicesImage:     r.ServicesImage,
		BrokerImage:       r.BrokerImage,
		KEDA:              s.served(render.ScaledObjectKind),
		OperatorNamespace: r.OperatorNamespace,
		Credentials:       s.secrets.creds,
		BrokerUsers:       s.secrets.brokerUsers,
		Identity:          s.identity,
		TokenKeys:         s.secrets.tokenKeys,
		Admin:             s.secrets.admin,
	})
	return err
}

func (r *PlatformReconciler) applyDesired(ctx context.Context, s *reconcileState) error {
	applied, err := r.applyAll(ctx, s.desired)
	// What was applied before a failure still counts as progress.
	s.outcome.applied = applied
	if err != nil {
		return err
	}
	r.announce(ctx, s.p, reasonApplied, "Apply", "Applied", applied)
	r.announceIdentity(s.p, s)
	return nil
}

func (r *PlatformReconciler) pruneUndesired(ctx context.Context, s *reconcileState) error {
	pruned, err := r.prune(ctx, s.p, s.desired, s.served)
	if err != nil {
		return err
	}
	r.announce(ctx, s.p, reasonPruned, "Prune", "Deleted", pruned)
	return nil
}

func (r *PlatformReconciler) observeChildren(ctx context.Context, s *reconcileState) (err error) {
	s.outcome.observed, err = r.observe(ctx, s.p)
	if err == nil && s.outcome.observed.jetstream != nil {
		// Storage fills without a Kubernetes event: look again soon.
		s.outcome.requeue(brokerPollInterval)
	}
	return err
}

// announce logs the children a phase wrote and records them in a Normal
// Event; a phase that wrote nothing stays quiet.
func (r *PlatformReconciler) announce(ctx context.Context, p *v1alpha1.Platform, reason, action, verb string, refs []string) {
	if len(refs) == 0 {
		return
	}
	log.FromContext(ctx).Info(strings.ToLower(verb)+" children", "count", len(refs), "objects", refs)
	r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, reason, action, "%s %s", verb, summarize(refs))
}
