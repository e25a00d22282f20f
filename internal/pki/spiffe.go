package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DefaultTrustDomain names the trust domain when a Platform does not set
// one. Each Platform has its own CA, so the trust domain only has to be
// stable, not globally unique: the namespace and platform in the path keep
// the identities of two Platforms apart.
const DefaultTrustDomain = "switchboard.local"

// SPIFFEID names one service of one Platform:
//
//	spiffe://<trust-domain>/ns/<namespace>/platform/<platform>/service/<service>
//
// It is derived from where the workload runs (namespace, Platform, catalog
// name), never chosen by the caller, and is carried as the only URI SAN of
// the service's certificate. The zero value is not a valid ID.
type SPIFFEID struct {
	TrustDomain string
	Namespace   string
	Platform    string
	Service     string
}

const scheme = "spiffe://"

// NewSPIFFEID builds an ID, validating every part: the trust domain as
// SPIFFE allows (lower-case letters, digits, '.', '-', '_'; at most 255
// bytes), the namespace, platform and service as DNS-1123 labels, the names
// Kubernetes and the catalog already impose on them.
func NewSPIFFEID(trustDomain, namespace, platform, service string) (SPIFFEID, error) {
	id := SPIFFEID{TrustDomain: trustDomain, Namespace: namespace, Platform: platform, Service: service}
	return id, id.Validate()
}

// Validate reports the first part of id that is not valid.
func (id SPIFFEID) Validate() error {
	if err := validTrustDomain(id.TrustDomain); err != nil {
		return err
	}
	for _, p := range []struct{ what, v string }{
		{"namespace", id.Namespace}, {"platform", id.Platform}, {"service", id.Service},
	} {
		if err := validLabel(p.v); err != nil {
			return fmt.Errorf("spiffe id: %s %q: %w", p.what, p.v, err)
		}
	}
	return nil
}

// String is the URI form. It is the empty string for an invalid ID, so a
// zero SPIFFEID never compares equal to a real peer's.
func (id SPIFFEID) String() string {
	if id.Validate() != nil {
		return ""
	}
	return scheme + id.TrustDomain + "/ns/" + id.Namespace + "/platform/" + id.Platform + "/service/" + id.Service
}

// URL is the URI SAN a certificate carries.
func (id SPIFFEID) URL() *url.URL {
	return &url.URL{Scheme: "spiffe", Host: id.TrustDomain,
		Path: "/ns/" + id.Namespace + "/platform/" + id.Platform + "/service/" + id.Service}
}

// Sibling is the ID of another service of the same Platform.
func (id SPIFFEID) Sibling(service string) SPIFFEID {
	id.Service = service
	return id
}

// SamePlatform reports whether other belongs to the same trust domain,
// namespace and Platform as id.
func (id SPIFFEID) SamePlatform(other SPIFFEID) bool {
	return id.TrustDomain == other.TrustDomain && id.Namespace == other.Namespace && id.Platform == other.Platform
}

// IsZero reports whether id is the zero value.
func (id SPIFFEID) IsZero() bool { return id == SPIFFEID{} }

// ParseSPIFFEID parses the URI form. It accepts exactly the strings String
// produces: no port, user, query, fragment, percent-encoding, trailing or
// doubled slash, and no upper case.
func ParseSPIFFEID(s string) (SPIFFEID, error) {
	rest, ok := strings.CutPrefix(s, scheme)
	if !ok {
		return SPIFFEID{}, fmt.Errorf("spiffe id %q: want the scheme spiffe://", s)
	}
	td, path, ok := strings.Cut(rest, "/")
	if !ok {
		return SPIFFEID{}, fmt.Errorf("spiffe id %q: no path", s)
	}
	parts := strings.Split(path, "/")
	if len(parts) != 6 || parts[0] != "ns" || parts[2] != "platform" || parts[4] != "service" {
		return SPIFFEID{}, fmt.Errorf("spiffe id %q: want the path /ns/<namespace>/platform/<platform>/service/<service>", s)
	}
	id, err := NewSPIFFEID(td, parts[1], parts[3], parts[5])
	if err != nil {
		return SPIFFEID{}, fmt.Errorf("%w (in %q)", err, s)
	}
	return id, nil
}

// SPIFFEIDFromCert returns the ID a certificate names. An X.509-SVID has
// exactly one URI SAN; a certificate with none, several or a malformed one
// names no identity.
func SPIFFEIDFromCert(cert *x509.Certificate) (SPIFFEID, error) {
	if cert == nil {
		return SPIFFEID{}, errors.New("spiffe id: no certificate")
	}
	if len(cert.URIs) != 1 {
		return SPIFFEID{}, fmt.Errorf("spiffe id: certificate %q has %d URI SANs, want exactly one", cert.Subject.CommonName, len(cert.URIs))
	}
	u := cert.URIs[0]
	if u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.RawPath != "" {
		return SPIFFEID{}, fmt.Errorf("spiffe id: certificate URI SAN %q is not a SPIFFE ID", u.String())
	}
	return ParseSPIFFEID(u.String())
}

func validTrustDomain(td string) error {
	if td == "" || len(td) > 255 {
		return fmt.Errorf("spiffe id: trust domain %q: want 1-255 characters", td)
	}
	for _, c := range []byte(td) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("spiffe id: trust domain %q: only lower-case letters, digits, '.', '-' and '_' are allowed", td)
		}
	}
	return nil
}

// validLabel accepts a DNS-1123 label: 1-63 lower-case letters, digits and
// '-', starting and ending with a letter or digit.
func validLabel(s string) error {
	if s == "" || len(s) > 63 {
		return errors.New("want 1-63 characters")
	}
	for i, c := range []byte(s) {
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return errors.New("want lower-case letters, digits and '-', starting and ending with a letter or digit")
		}
	}
	return nil
}

// validDNSName accepts a DNS name of labels joined by dots, at most 253
// bytes, as a certificate's DNS SAN.
func validDNSName(s string) error {
	if s == "" || len(s) > 253 {
		return fmt.Errorf("dns name %q: want 1-253 characters", s)
	}
	for _, l := range strings.Split(s, ".") {
		if err := validLabel(l); err != nil {
			return fmt.Errorf("dns name %q: label %q: %w", s, l, err)
		}
	}
	return nil
}
