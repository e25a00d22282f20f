// Package pki is the certificate authority of a Platform: one CA per
// Platform, and one short-lived leaf per service naming it by its SPIFFE ID
// (see SPIFFEID). Every function is pure: the clock and the randomness are
// arguments, so the operator's renewal decisions are table-tested without a
// cluster and `switchboard dev` issues the same certificates in memory.
//
// Keys are ECDSA P-256: every TLS stack the platform meets (Go, nginx, curl
// when debugging) verifies it, and Go's implementation is constant-time and
// fast. Private keys are PEM "PRIVATE KEY" (PKCS #8), certificates PEM
// "CERTIFICATE"; the file names follow kubernetes.io/tls Secrets (tls.crt,
// tls.key) plus ca.crt.
//
// Since Go 1.26 the standard library draws keys and signatures from the
// system's randomness whatever reader is passed (crypto/rand.CustomReader);
// the rand argument still supplies the serial numbers.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	cryptorand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"time"
)

// PEM block types.
const (
	blockCertificate = "CERTIFICATE"
	blockPrivateKey  = "PRIVATE KEY"
)

// Backdate is how far before "now" a certificate becomes valid, so a pod
// whose clock runs a little behind the operator's accepts it at once.
const Backdate = time.Minute

// CA is a Platform's certificate authority: its certificate and key, in PEM
// and parsed.
type CA struct {
	CertPEM []byte
	KeyPEM  []byte
	Cert    *x509.Certificate
	Key     crypto.Signer
}

// Leaf is a service's certificate and key, in PEM and parsed, with the
// identity it names.
type Leaf struct {
	CertPEM []byte
	KeyPEM  []byte
	Cert    *x509.Certificate
	ID      SPIFFEID
}

// NewCA creates a self-signed CA valid from now (less Backdate) for
// lifetime. It may sign leaves only (path length zero). rand nil means
// crypto/rand.
func NewCA(commonName string, lifetime time.Duration, now time.Time, rand io.Reader) (CA, error) {
	if commonName == "" {
		return CA{}, errors.New("pki: a CA needs a common name")
	}
	if lifetime <= 0 {
		return CA{}, fmt.Errorf("pki: CA lifetime %s must be positive", lifetime)
	}
	rand = orDefault(rand)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand)
	if err != nil {
		return CA{}, fmt.Errorf("pki: CA key: %w", err)
	}
	serial, err := serialNumber(rand)
	if err != nil {
		return CA{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-Backdate).UTC(),
		NotAfter:              now.Add(lifetime).UTC(),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return CA{}, fmt.Errorf("pki: CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return CA{}, err
	}
	return ParseCA(encodeCert(der), keyPEM)
}

// Issue signs a leaf for id, valid from now (less Backdate) for lifetime but
// never past the CA's own expiry. The leaf serves and calls: its extended key
// usages are server and client authentication, its only URI SAN is id, and
// dnsNames (optional, e.g. the Service's cluster DNS name) help people and
// tools that check host names; Switchboard's peers check the URI SAN only.
func Issue(ca CA, id SPIFFEID, dnsNames []string, lifetime time.Duration, now time.Time, rand io.Reader) (Leaf, error) {
	if ca.Cert == nil || ca.Key == nil {
		return Leaf{}, errors.New("pki: Issue needs a parsed CA (see ParseCA)")
	}
	if err := id.Validate(); err != nil {
		return Leaf{}, err
	}
	if lifetime <= 0 {
		return Leaf{}, fmt.Errorf("pki: leaf lifetime %s must be positive", lifetime)
	}
	for _, n := range dnsNames {
		if err := validDNSName(n); err != nil {
			return Leaf{}, fmt.Errorf("pki: %w", err)
		}
	}
	if !now.Before(ca.Cert.NotAfter) {
		return Leaf{}, fmt.Errorf("pki: the CA %q expired at %s", ca.Cert.Subject.CommonName, ca.Cert.NotAfter.Format(time.RFC3339))
	}
	rand = orDefault(rand)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand)
	if err != nil {
		return Leaf{}, fmt.Errorf("pki: leaf key: %w", err)
	}
	serial, err := serialNumber(rand)
	if err != nil {
		return Leaf{}, err
	}
	notAfter := now.Add(lifetime)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: id.Service, Organization: []string{id.Namespace + "/" + id.Platform}},
		NotBefore:             now.Add(-Backdate).UTC(),
		NotAfter:              notAfter.UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URL()},
		DNSNames:              dnsNames,
	}
	der, err := x509.CreateCertificate(rand, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return Leaf{}, fmt.Errorf("pki: leaf certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return Leaf{}, err
	}
	return ParseLeaf(encodeCert(der), keyPEM)
}

// ParseCA parses a CA's PEM certificate and key and checks that they belong
// together and that the certificate may sign.
func ParseCA(certPEM, keyPEM []byte) (CA, error) {
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return CA{}, err
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return CA{}, fmt.Errorf("pki: certificate %q is not a CA", cert.Subject.CommonName)
	}
	key, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return CA{}, err
	}
	if err := matches(cert, key); err != nil {
		return CA{}, err
	}
	return CA{CertPEM: certPEM, KeyPEM: keyPEM, Cert: cert, Key: key}, nil
}

// ParseLeaf parses a service's PEM certificate (its first block; a chain
// may follow) and key, checks that they belong together, and returns the
// SPIFFE ID the certificate names.
func ParseLeaf(certPEM, keyPEM []byte) (Leaf, error) {
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return Leaf{}, err
	}
	key, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return Leaf{}, err
	}
	if err := matches(cert, key); err != nil {
		return Leaf{}, err
	}
	id, err := SPIFFEIDFromCert(cert)
	if err != nil {
		return Leaf{}, err
	}
	return Leaf{CertPEM: certPEM, KeyPEM: keyPEM, Cert: cert, ID: id}, nil
}

// ParseCertificatePEM parses the first certificate of a PEM bundle.
func ParseCertificatePEM(b []byte) (*x509.Certificate, error) {
	certs, err := ParseCertificatesPEM(b)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// ParseCertificatesPEM parses every certificate of a PEM bundle, such as a
// ca.crt that holds the old and the new CA while a CA is rotated. Blocks of
// other types are an error, and so is a bundle with no certificate.
func ParseCertificatesPEM(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				return nil, errors.New("pki: trailing data after the PEM certificates")
			}
			break
		}
		if blk.Type != blockCertificate {
			return nil, fmt.Errorf("pki: PEM block %q where a CERTIFICATE was expected", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("pki: no PEM certificate")
	}
	return out, nil
}

// CertPoolFromPEM builds a pool of the CA certificates of a bundle.
func CertPoolFromPEM(b []byte) (*x509.CertPool, error) {
	certs, err := ParseCertificatesPEM(b)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		if !c.IsCA {
			return nil, fmt.Errorf("pki: certificate %q in the CA bundle is not a CA", c.Subject.CommonName)
		}
		pool.AddCert(c)
	}
	return pool, nil
}

// ParsePrivateKeyPEM parses a PEM private key: PKCS #8 ("PRIVATE KEY"), or
// the older "EC PRIVATE KEY" form. Only ECDSA and Ed25519 keys are accepted.
func ParsePrivateKeyPEM(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("pki: no PEM private key")
	}
	var (
		key any
		err error
	)
	switch blk.Type {
	case blockPrivateKey:
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("pki: PEM block %q where a PRIVATE KEY was expected", blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("pki: %T keys are not accepted; want ECDSA or Ed25519", key)
}

// matches checks that key is the private half of cert's public key.
func matches(cert *x509.Certificate, key crypto.Signer) error {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("pki: the private key does not match certificate %q", cert.Subject.CommonName)
	}
	return nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: blockCertificate, Bytes: der})
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: blockPrivateKey, Bytes: der}), nil
}

// serialNumber is 128 random bits, as RFC 5280 and the CA/B forum ask.
func serialNumber(rand io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	b[0] &= 0x7f // positive
	n := new(big.Int).SetBytes(b)
	if n.Sign() == 0 {
		n.SetInt64(1)
	}
	return n, nil
}

func orDefault(r io.Reader) io.Reader {
	if r == nil {
		return cryptorand.Reader
	}
	return r
}
