package pki

import (
	"crypto/x509"
	"fmt"
	"slices"
	"time"
)

// RenewAt is when a certificate should be replaced: renewBefore ahead of its
// expiry. A renewBefore that is not positive or not shorter than the
// certificate's lifetime would renew at once and for ever, so then the
// certificate is renewed two thirds into its life, as cert-manager does.
func RenewAt(cert *x509.Certificate, renewBefore time.Duration) time.Time {
	lifetime := cert.NotAfter.Sub(cert.NotBefore)
	if renewBefore <= 0 || renewBefore >= lifetime {
		return cert.NotBefore.Add(lifetime / 3 * 2)
	}
	return cert.NotAfter.Add(-renewBefore)
}

// NeedsRenewal decides whether a service's stored certificate must be
// issued anew, and says why in words fit for an event or a log line. It
// must when the certificate or key is missing or unreadable, when they do
// not belong together, when it names another identity, when the CA whose
// certificate is caPEM (the current signing CA, first block) did not sign it
// (the CA was replaced), when it is not valid yet, or when RenewAt has come.
func NeedsRenewal(certPEM, keyPEM, caPEM []byte, id SPIFFEID, now time.Time, renewBefore time.Duration) (bool, string) {
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		return true, "no certificate yet"
	}
	leaf, err := ParseLeaf(certPEM, keyPEM)
	if err != nil {
		return true, fmt.Sprintf("the stored certificate is unusable: %v", err)
	}
	if leaf.ID != id {
		return true, fmt.Sprintf("the certificate names %s, want %s", leaf.ID, id)
	}
	ca, err := ParseCertificatePEM(caPEM)
	if err != nil {
		return true, fmt.Sprintf("the CA certificate is unusable: %v", err)
	}
	if err := leaf.Cert.CheckSignatureFrom(ca); err != nil {
		return true, fmt.Sprintf("the certificate was issued by another CA (%s), not %s", leaf.Cert.Issuer.CommonName, ca.Subject.CommonName)
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if !slices.Contains(leaf.Cert.ExtKeyUsage, u) {
			return true, "the certificate does not allow both server and client authentication"
		}
	}
	if now.Before(leaf.Cert.NotBefore) {
		return true, fmt.Sprintf("the certificate is not valid before %s", leaf.Cert.NotBefore.Format(time.RFC3339))
	}
	if at := RenewAt(leaf.Cert, renewBefore); !now.Before(at) {
		return true, fmt.Sprintf("the certificate expires at %s and was due for renewal at %s",
			leaf.Cert.NotAfter.Format(time.RFC3339), at.Format(time.RFC3339))
	}
	return false, ""
}
