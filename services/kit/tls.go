package kit

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/internal/pki"
)

// ErrPeerNotAllowed: the peer proved an identity, and that identity may
// not make this call. Authorizers wrap it.
var ErrPeerNotAllowed = errors.New("peer not allowed")

// ErrNoPeerIdentity: the peer proved no identity (no verified certificate).
var ErrNoPeerIdentity = errors.New("no peer identity")

// Authorizer decides whether a peer that proved its identity may go on.
// Who may call is one function beside the TLS setup, not a check scattered
// through handlers (go-spiffe's tlsconfig.Authorizer). It returns nil or an
// error wrapping ErrPeerNotAllowed.
type Authorizer func(peer SPIFFEID) error

// AuthorizeAny admits any identity the trusted CAs vouch for. With one CA
// per Platform that is every service of the Platform.
func AuthorizeAny() Authorizer { return func(SPIFFEID) error { return nil } }

// AuthorizeID admits exactly one identity: what a client expects of the
// server it dials.
func AuthorizeID(want SPIFFEID) Authorizer {
	return func(peer SPIFFEID) error {
		if peer != want {
			return fmt.Errorf("%w: %s is not %s", ErrPeerNotAllowed, peer, want)
		}
		return nil
	}
}

// AuthorizeOneOf admits the listed identities.
func AuthorizeOneOf(ids ...SPIFFEID) Authorizer {
	ids = slices.Clone(ids)
	return func(peer SPIFFEID) error {
		if !slices.Contains(ids, peer) {
			return fmt.Errorf("%w: %s is not one of %d allowed identities", ErrPeerNotAllowed, peer, len(ids))
		}
		return nil
	}
}

// AuthorizeMemberOf admits every service of the Platform self belongs to
// (same trust domain, namespace and Platform).
func AuthorizeMemberOf(self SPIFFEID) Authorizer {
	return func(peer SPIFFEID) error {
		if !self.SamePlatform(peer) {
			return fmt.Errorf("%w: %s is not a service of platform %s/%s", ErrPeerNotAllowed, peer, self.Namespace, self.Platform)
		}
		return nil
	}
}

// AuthorizeServices admits the named services of self's Platform, such as
// the callers the catalog lists for an operation.
func AuthorizeServices(self SPIFFEID, services ...string) Authorizer {
	services = slices.Clone(services)
	member := AuthorizeMemberOf(self)
	return func(peer SPIFFEID) error {
		if err := member(peer); err != nil {
			return err
		}
		if !slices.Contains(services, peer.Service) {
			return fmt.Errorf("%w: service %s may not call this; allowed: %s", ErrPeerNotAllowed, peer.Service, strings.Join(services, ", "))
		}
		return nil
	}
}

// ServerTLSConfig is the configuration of a mutual-TLS server: TLS 1.3
// only, the identity's current certificate, and a client certificate
// required, verified against the identity's current CAs for client use and
// admitted by authorize, all during the handshake. A peer without a
// certificate, with one from another CA, or with an identity authorize
// refuses never gets to send a request.
//
// tls.Config.ClientCAs is fixed when the config is built, and the CAs
// rotate, so Go's own verification is off (RequireAnyClientCert) and
// VerifyConnection verifies against Identity.Roots instead. Unlike
// VerifyPeerCertificate, it also runs on resumed sessions, so a session
// ticket never carries a caller past a rotated CA or a changed authorizer.
func ServerTLSConfig(ident *Identity, authorize Authorizer) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.RequireAnyClientCert,
		GetCertificate: ident.GetCertificate,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := ident.VerifyPeer(cs.PeerCertificates, x509.ExtKeyUsageClientAuth, authorize)
			return err
		},
	}
}

// ClientTLSConfig is the configuration of a mutual-TLS client: TLS 1.3
// only, the identity's current certificate on request, and the server's
// certificate verified against the identity's current CAs for server use,
// then admitted by authorize, normally AuthorizeID of the service it
// dials. The identity is the URI SAN, not a host name, so host name
// verification is replaced, not skipped: InsecureSkipVerify only turns off
// Go's built-in check, which knows neither rotating CAs nor SPIFFE IDs.
func ClientTLSConfig(ident *Identity, authorize Authorizer) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		GetClientCertificate: ident.GetClientCertificate,
		InsecureSkipVerify:   true, // verified below, against the SPIFFE ID
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := ident.VerifyPeer(cs.PeerCertificates, x509.ExtKeyUsageServerAuth, authorize)
			return err
		},
	}
}

// VerifyPeer verifies a peer's certificate chain (leaf first, as TLS sends
// it) against the current CAs for usage, extracts its SPIFFE ID and asks
// authorize (nil admits any). It is what the TLS configs run; a server
// that receives certificates some other way can run it too.
func (i *Identity) VerifyPeer(certs []*x509.Certificate, usage x509.ExtKeyUsage, authorize Authorizer) (SPIFFEID, error) {
	if len(certs) == 0 {
		return SPIFFEID{}, ErrNoPeerIdentity
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: i.Roots(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}, CurrentTime: time.Now()}
	if _, err := certs[0].Verify(opts); err != nil {
		return SPIFFEID{}, fmt.Errorf("%w: %v", ErrNoPeerIdentity, err)
	}
	id, err := pki.SPIFFEIDFromCert(certs[0])
	if err != nil {
		return SPIFFEID{}, fmt.Errorf("%w: %v", ErrNoPeerIdentity, err)
	}
	if authorize != nil {
		if err := authorize(id); err != nil {
			return id, err
		}
	}
	return id, nil
}

// PeerID is the SPIFFE ID of a connection's peer. Only a connection made
// with ServerTLSConfig or ClientTLSConfig has verified it.
func PeerID(cs tls.ConnectionState) (SPIFFEID, error) {
	if !cs.HandshakeComplete || len(cs.PeerCertificates) == 0 {
		return SPIFFEID{}, ErrNoPeerIdentity
	}
	id, err := pki.SPIFFEIDFromCert(cs.PeerCertificates[0])
	if err != nil {
		return SPIFFEID{}, fmt.Errorf("%w: %v", ErrNoPeerIdentity, err)
	}
	return id, nil
}
