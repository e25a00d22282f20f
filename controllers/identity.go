package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/render"
)

// Reasons of the service identity's condition and Events.
const (
	reasonIdentityFailed      = "IdentityFailed"
	reasonCertificatesValid   = "CertificatesValid"
	reasonCACreated           = "CACreated"
	reasonCAReplaced          = "CAReplaced"
	reasonCertificatesIssued  = "CertificatesIssued"
	reasonCertificatesRenewed = "CertificatesRenewed"
	reasonBrokerUsersCreated  = "BrokerCredentialsGenerated"
	reasonBrokerUsersRehashed = "BrokerCredentialsRehashed"
)

const (
	// minimumRenewalRequeue keeps a renewal time already past (a clock
	// that jumped) from asking for a reconcile at once, in a loop.
	minimumRenewalRequeue = time.Second
	// An Event names at most this many services, and a reason this long.
	maxServicesNamedInAnnounce = 12
	maxReasonLengthInAnnounce  = 160
)

// now is the reconciler's clock.
func (r *PlatformReconciler) now() time.Time {
	if r.Clock != nil {
		return r.Clock()
	}
	return time.Now()
}

// keepIdentity reads p's CA and the certificates of its enabled services,
// and issues what is missing or due (render.KeepIdentity decides). The
// next reconcile is asked for at the earliest renewal time, so a
// certificate is renewed on time even when nothing else happens.
func (r *PlatformReconciler) keepIdentity(ctx context.Context, s *reconcileState) error {
	p := s.p
	ca, err := r.readSecret(ctx, p, render.CASecretName(p))
	if err != nil {
		return err
	}
	leaves := map[string]*corev1.Secret{}
	for _, svc := range render.ServiceNames(p) {
		if leaves[svc], err = r.readSecret(ctx, p, render.TLSSecretName(p, svc)); err != nil {
			return err
		}
	}
	now := r.now()
	id, rep, err := render.KeepIdentity(p, render.IdentityFromSecrets(ca, leaves), now, nil)
	if err != nil {
		return err
	}
	s.identity, s.outcome.identity = id, &rep
	if !rep.NextRenewal.IsZero() {
		s.outcome.requeue(max(rep.NextRenewal.Sub(now), minimumRenewalRequeue))
	}
	return nil
}

// announceIdentity records, once the new material is applied, what was
// generated or renewed: the CA, the certificates, the broker users.
func (r *PlatformReconciler) announceIdentity(p *v1alpha1.Platform, s *reconcileState) {
	if rep := s.outcome.identity; rep != nil {
		switch {
		case rep.CACreated:
			r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, reasonCACreated, "IssueCertificates",
				"Created the platform CA in Secret %s, valid until %s; replacing it is a manual step (docs/identity.md)",
				render.CASecretName(p), rep.CANotAfter.Format(time.RFC3339))
		case rep.CAReplaced:
			r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, reasonCAReplaced, "IssueCertificates",
				"Replaced the platform CA in Secret %s (%s): every service gets a new certificate, and calls between pods that hold the old and the new CA fail until the kubelet has refreshed both",
				render.CASecretName(p), rep.CAReason)
		}
		var first, renewed []render.Issuance
		for _, is := range rep.Issued {
			if is.Renewal {
				renewed = append(renewed, is)
			} else {
				first = append(first, is)
			}
		}
		if len(first) > 0 {
			r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, reasonCertificatesIssued, "IssueCertificates",
				"Issued certificates to %s (Secrets %s-<service>-tls); the next renewal is %s", serviceList(first, false), p.Name, nextRenewal(rep))
		}
		if len(renewed) > 0 {
			r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, reasonCertificatesRenewed, "IssueCertificates",
				"Renewed the certificates of %s; the next renewal is %s", serviceList(renewed, true), nextRenewal(rep))
		}
	}
	if rep := s.secrets.brokerReport; len(rep.Generated) > 0 {
		r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, reasonBrokerUsersCreated, "GenerateCredentials",
			"Generated broker credentials for %s (Secrets %s-<service>-nats); their pods and the broker roll to use them",
			strings.Join(capNames(rep.Generated), ", "), p.Name)
	}
	if rep := s.secrets.brokerReport; len(rep.Rehashed) > 0 {
		r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, reasonBrokerUsersRehashed, "GenerateCredentials",
			"The broker passwords of %s changed by hand: the broker learns their new hashes, and their pods and the broker roll",
			strings.Join(capNames(rep.Rehashed), ", "))
	}
}

func nextRenewal(rep *render.IdentityReport) string {
	return fmt.Sprintf("%s's at %s", rep.NextService, rep.NextRenewal.Format(time.RFC3339))
}

// serviceList names the services of an Event, with why each was issued
// when that is not the same for all.
func serviceList(issued []render.Issuance, withReasons bool) string {
	var names []string
	for _, is := range issued {
		names = append(names, is.Service)
	}
	list := strings.Join(capNames(names), ", ")
	if !withReasons {
		return list
	}
	reason := issued[0].Reason
	for _, is := range issued[1:] {
		if is.Reason != reason {
			return list + " (" + truncate(reason, maxReasonLengthInAnnounce) + ", and others)"
		}
	}
	return list + " (" + truncate(reason, maxReasonLengthInAnnounce) + ")"
}

func capNames(names []string) []string {
	if len(names) <= maxServicesNamedInAnnounce {
		return names
	}
	return append(names[:maxServicesNamedInAnnounce:maxServicesNamedInAnnounce], fmt.Sprintf("%d more", len(names)-maxServicesNamedInAnnounce))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// setCertificatesReadyCondition says whether every enabled service holds
// a certificate the operator keeps current, and when the next renewal is.
func setCertificatesReadyCondition(p *v1alpha1.Platform, o *reconcileOutcome) {
	switch rep := o.identity; {
	case o.failureReason == reasonIdentityFailed:
		setCondition(p, ConditionCertificatesReady, false, reasonIdentityFailed,
			fmt.Sprintf("the service certificates could not be kept: %v", o.failure))
	case rep != nil:
		setCondition(p, ConditionCertificatesReady, true, reasonCertificatesValid,
			fmt.Sprintf("%d service certificates signed by the CA of Secret %s (valid until %s); the next renewal is %s",
				len(render.ServiceNames(p)), render.CASecretName(p), rep.CANotAfter.Format(time.RFC3339), nextRenewal(rep)))
	}
}
