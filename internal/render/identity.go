package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/pki"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

// Service identity. Every Platform has its own CA, and every enabled
// service a certificate naming it by its SPIFFE ID:
//
//   - <p>-ca, a kubernetes.io/tls Secret: the CA's certificate and key.
//     Only the operator reads it; no pod mounts it.
//   - <p>-<service>-tls, a kubernetes.io/tls Secret per service: its
//     certificate (tls.crt), key (tls.key) and the CA bundle (ca.crt),
//     mounted read-only into that service's pods at TLSMountPath.
//
// The material comes from KeepIdentity, which the operator calls with its
// clock; render only copies it into the Secrets, so a render stays a pure
// function of its inputs. Renewed certificates reach running pods through
// the kubelet's refresh of the Secret volume, and the services reload them
// (kit.Identity), so no pod-template annotation follows the certificates:
// a renewal rolls nothing.

// TLSMountPath is where a service's pods find its identity (env TLS_DIR).
const TLSMountPath = "/var/run/switchboard/tls"

// SecretKeyCABundle is the key of the CA bundle in a service's tls Secret;
// tls.crt and tls.key are corev1.TLSCertKey and corev1.TLSPrivateKeyKey.
const SecretKeyCABundle = "ca.crt"

// CALifetime is how long a Platform's CA is valid. Replacing a CA is a
// manual step (docs/identity.md), so it lasts long enough never to be
// routine.
const CALifetime = 10 * 365 * 24 * time.Hour

// Defaults of spec.identity when a Platform read from a file leaves it out.
const (
	DefaultCertificateLifetime = 30 * 24 * time.Hour
)

// ComponentIdentity labels the CA Secret.
const ComponentIdentity = "identity"

// tlsVolume names the pod volume of the service's tls Secret.
const tlsVolume = "tls"

// CASecretName is the Secret holding p's CA.
func CASecretName(p *v1alpha1.Platform) string { return p.Name + "-ca" }

// TLSSecretName is the Secret holding service's certificate.
func TLSSecretName(p *v1alpha1.Platform, service string) string {
	return ObjectName(p, service) + "-tls"
}

// TrustDomain is spec.identity.trustDomain, or pki.DefaultTrustDomain.
func TrustDomain(p *v1alpha1.Platform) string {
	if td := p.Spec.Identity.TrustDomain; td != "" {
		return td
	}
	return pki.DefaultTrustDomain
}

// CertificateLifetime is spec.identity.certificateLifetime, or 30 days.
func CertificateLifetime(p *v1alpha1.Platform) time.Duration {
	if d := p.Spec.Identity.CertificateLifetime; d != nil {
		return d.Duration
	}
	return DefaultCertificateLifetime
}

// RenewBefore is spec.identity.renewBefore, or a third of the lifetime.
func RenewBefore(p *v1alpha1.Platform) time.Duration {
	if d := p.Spec.Identity.RenewBefore; d != nil {
		return d.Duration
	}
	return CertificateLifetime(p) / 3
}

// ServiceID is the SPIFFE ID of service in p.
func ServiceID(p *v1alpha1.Platform, service string) (pki.SPIFFEID, error) {
	return pki.NewSPIFFEID(TrustDomain(p), p.Namespace, p.Name, service)
}

// ServiceDNSNames are the names of service's Service, short to fully
// qualified: a service's certificate carries them besides its SPIFFE ID, so
// tools that check host names (curl, nginx, a browser) can verify it too.
func ServiceDNSNames(p *v1alpha1.Platform, service string) []string {
	n := ObjectName(p, service)
	return []string{n, n + "." + p.Namespace, n + "." + p.Namespace + ".svc", n + "." + p.Namespace + ".svc." + ClusterDomain}
}

// Identity is p's PKI material as PEM: the CA, and the certificate and key
// of each enabled service, by name.
type Identity struct {
	CACert, CAKey []byte
	Leaves        map[string]Leaf
}

// Leaf is one service's certificate and private key, PEM.
type Leaf struct {
	Cert, Key []byte
}

// IdentityFromSecrets reads the CA Secret and the services' tls Secrets
// (by service name); nil Secrets are missing ones.
func IdentityFromSecrets(ca *corev1.Secret, leaves map[string]*corev1.Secret) Identity {
	id := Identity{Leaves: map[string]Leaf{}}
	if ca != nil {
		id.CACert, id.CAKey = ca.Data[corev1.TLSCertKey], ca.Data[corev1.TLSPrivateKeyKey]
	}
	for svc, s := range leaves {
		if s != nil {
			id.Leaves[svc] = Leaf{Cert: s.Data[corev1.TLSCertKey], Key: s.Data[corev1.TLSPrivateKeyKey]}
		}
	}
	return id
}

// Issuance is one certificate KeepIdentity issued, and why.
type Issuance struct {
	Service string
	// Renewal is true when the service had a certificate before.
	Renewal bool
	Reason  string
}

// IdentityReport says what KeepIdentity did and when it must run again.
type IdentityReport struct {
	// CACreated is set when the CA was made, CAReplaced when one existed
	// but could not be used (CAReason says why).
	CACreated, CAReplaced bool
	CAReason              string
	CANotAfter            time.Time
	Issued                []Issuance
	// NextRenewal is the earliest RenewAt of the kept certificates, and
	// NextService the service it belongs to.
	NextRenewal time.Time
	NextService string
}

// KeepIdentity returns p's identity at now: the CA of have while it parses
// and has not expired, else a new one; and for every enabled service the
// certificate of have unless it must be issued anew (pki.NeedsRenewal: it
// is missing, unusable, names another ID, was signed by another CA, or its
// renewal time has come; or it no longer carries the Service's DNS names,
// or it outlives spec.identity.certificateLifetime). Services that are not
// enabled are left out, so their Secrets are pruned. rand nil means
// crypto/rand.
func KeepIdentity(p *v1alpha1.Platform, have Identity, now time.Time, rand io.Reader) (Identity, IdentityReport, error) {
	var rep IdentityReport
	ca, err := pki.ParseCA(have.CACert, have.CAKey)
	switch {
	case len(have.CACert) == 0 && len(have.CAKey) == 0:
		rep.CACreated = true
	case err != nil:
		rep.CAReplaced, rep.CAReason = true, fmt.Sprintf("the stored CA is unusable: %v", err)
	case !now.Before(ca.Cert.NotAfter):
		rep.CAReplaced, rep.CAReason = true, fmt.Sprintf("the CA expired at %s", ca.Cert.NotAfter.Format(time.RFC3339))
	}
	if rep.CACreated || rep.CAReplaced {
		cn := fmt.Sprintf("switchboard platform %s/%s CA", p.Namespace, p.Name)
		if ca, err = pki.NewCA(cn, CALifetime, now, rand); err != nil {
			return Identity{}, rep, err
		}
	}
	rep.CANotAfter = ca.Cert.NotAfter

	out := Identity{CACert: ca.CertPEM, CAKey: ca.KeyPEM, Leaves: map[string]Leaf{}}
	lifetime, renewBefore := CertificateLifetime(p), RenewBefore(p)
	for _, svc := range ServiceNames(p) {
		id, err := ServiceID(p, svc)
		if err != nil {
			return Identity{}, rep, err
		}
		dns := ServiceDNSNames(p, svc)
		old, had := have.Leaves[svc]
		had = had && len(old.Cert) > 0
		renew, reason := pki.NeedsRenewal(old.Cert, old.Key, ca.CertPEM, id, now, renewBefore)
		if !renew {
			cert, _ := pki.ParseCertificatePEM(old.Cert) // NeedsRenewal parsed it
			switch {
			case !slices.Equal(cert.DNSNames, dns):
				renew, reason = true, fmt.Sprintf("the certificate names hosts %v, want %v", cert.DNSNames, dns)
			case cert.NotAfter.After(now.Add(lifetime)):
				renew, reason = true, fmt.Sprintf("the certificate is valid until %s, beyond the certificate lifetime of %s", cert.NotAfter.Format(time.RFC3339), lifetime)
			}
		}
		leaf := old
		if renew {
			l, err := pki.Issue(ca, id, dns, lifetime, now, rand)
			if err != nil {
				return Identity{}, rep, fmt.Errorf("issuing the certificate of %s: %w", svc, err)
			}
			leaf = Leaf{Cert: l.CertPEM, Key: l.KeyPEM}
			rep.Issued = append(rep.Issued, Issuance{Service: svc, Renewal: had, Reason: reason})
		}
		out.Leaves[svc] = leaf
		cert, err := pki.ParseCertificatePEM(leaf.Cert)
		if err != nil {
			return Identity{}, rep, err
		}
		if at := pki.RenewAt(cert, renewBefore); rep.NextRenewal.IsZero() || at.Before(rep.NextRenewal) {
			rep.NextRenewal, rep.NextService = at, svc
		}
	}
	return out, rep, nil
}

// validate refuses material render cannot write: a CA or an enabled
// service's certificate missing. KeepIdentity checks what it keeps; render
// does not parse it again.
func (id Identity) validate(p *v1alpha1.Platform) error {
	if len(id.CACert) == 0 || len(id.CAKey) == 0 {
		return fmt.Errorf("the CA of %s is missing: the caller must keep the identity with KeepIdentity", CASecretName(p))
	}
	var errs []error
	for _, svc := range ServiceNames(p) {
		if l := id.Leaves[svc]; len(l.Cert) == 0 || len(l.Key) == 0 {
			errs = append(errs, fmt.Errorf("the certificate of %s is missing: the caller must keep the identity with KeepIdentity", svc))
		}
	}
	return errors.Join(errs...)
}

func caSecret(p *v1alpha1.Platform, id Identity) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   typeMeta("v1", "Secret"),
		ObjectMeta: objectMeta(p, CASecretName(p), ComponentIdentity),
		Type:       corev1.SecretTypeTLS,
		Data: map[string][]byte{
			corev1.TLSCertKey:       bytes.Clone(id.CACert),
			corev1.TLSPrivateKeyKey: bytes.Clone(id.CAKey),
		},
	}
}

func tlsSecret(p *v1alpha1.Platform, svc string, id Identity) *corev1.Secret {
	l := id.Leaves[svc]
	return &corev1.Secret{
		TypeMeta:   typeMeta("v1", "Secret"),
		ObjectMeta: objectMeta(p, TLSSecretName(p, svc), svc),
		Type:       corev1.SecretTypeTLS,
		Data: map[string][]byte{
			corev1.TLSCertKey:       bytes.Clone(l.Cert),
			corev1.TLSPrivateKeyKey: bytes.Clone(l.Key),
			SecretKeyCABundle:       bytes.Clone(id.CACert),
		},
	}
}

// tlsPodVolume mounts the service's tls Secret. The files are readable by
// the pod's group only (fsGroup is the service's user): the key is for the
// service alone. No subPath, so the kubelet keeps the files current.
func tlsPodVolume(p *v1alpha1.Platform, svc string) corev1.Volume {
	return corev1.Volume{
		Name: tlsVolume,
		VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName:  TLSSecretName(p, svc),
			DefaultMode: ptr.To[int32](0o440),
		}},
	}
}

func tlsVolumeMount() corev1.VolumeMount {
	return corev1.VolumeMount{Name: tlsVolume, MountPath: TLSMountPath, ReadOnly: true}
}

// identityEnv tells a service where its identity is mounted, and where to
// serve gRPC when it does.
func identityEnv(svc catalog.Service) []corev1.EnvVar {
	env := []corev1.EnvVar{{Name: catalog.EnvTLSDir, Value: TLSMountPath}}
	if svc.ServesGRPC() {
		env = append(env, corev1.EnvVar{Name: catalog.EnvGRPCAddr, Value: ":" + itoa(catalog.GRPCPort)})
	}
	return env
}
