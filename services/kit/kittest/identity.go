package kittest

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/internal/pki"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// PKI is a Platform CA for tests: it issues each service the certificate
// the operator would, in memory.
type PKI struct {
	CA pki.CA
	// Base names the Platform (trust domain, namespace, platform); its
	// Service is empty.
	Base kit.SPIFFEID
}

// NewPKI creates a CA for platform "shop" in namespace "test".
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	return NewPKIFor(t, "test", "shop")
}

// NewPKIFor creates a CA for a Platform.
func NewPKIFor(t testing.TB, namespace, platform string) *PKI {
	t.Helper()
	p, err := newPKI(namespace, platform)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newPKI(namespace, platform string) (*PKI, error) {
	ca, err := pki.NewCA(namespace+"/"+platform+" test CA", 24*time.Hour, time.Now(), nil)
	if err != nil {
		return nil, err
	}
	return &PKI{CA: ca, Base: kit.SPIFFEID{TrustDomain: pki.DefaultTrustDomain, Namespace: namespace, Platform: platform}}, nil
}

var (
	platformOnce sync.Once
	platformPKI  *PKI
	platformErr  error
)

// Platform is the PKI of every service Serve runs: one CA per test binary,
// for platform "shop" in namespace "test", so the services a test starts
// call each other with mutual TLS as they do on a Platform.
func Platform(t testing.TB) *PKI {
	t.Helper()
	platformOnce.Do(func() { platformPKI, platformErr = newPKI("test", "shop") })
	if platformErr != nil {
		t.Fatal(platformErr)
	}
	return platformPKI
}

// GRPCClient is a client of upstream's internal gRPC API at target that
// calls as service of p (its breaker and retries as a service's, with a
// short timeout), closed at the end of the test.
func (p *PKI) GRPCClient(t testing.TB, service, upstream, target string) *kit.GRPCClient {
	t.Helper()
	o := kit.GRPCClientOptions{ClientOptions: kit.ClientOptions{Timeout: 5 * time.Second, Attempts: 1}}
	c, err := kit.NewGRPCClient(upstream, target, p.Identity(t, service), kit.NewMetrics(service), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var (
	gatewayOnce sync.Once
	gatewayHTTP *http.Client
)

// GatewayHTTP is an HTTP client that calls as the gateway of Platform:
// it presents the gateway's certificate, which every service's API port
// admits, and accepts any service of the platform (and plain http URLs,
// such as the gateway's own). One per test binary, its connections kept.
func GatewayHTTP(t testing.TB) *http.Client {
	t.Helper()
	p := Platform(t)
	gatewayOnce.Do(func() {
		ident := p.Identity(t, "gateway")
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = kit.ClientTLSConfig(ident, kit.AuthorizeMemberOf(p.ID("gateway")))
		gatewayHTTP = &http.Client{Transport: tr, Timeout: 20 * time.Second}
	})
	return gatewayHTTP
}

// HTTPClient calls upstream's API port as service of p would: mutual TLS
// with service's certificate, expecting upstream's. Only the gateway's is
// admitted by a service's API port.
func (p *PKI) HTTPClient(t testing.TB, service, upstream string) *http.Client {
	t.Helper()
	ident := p.Identity(t, service)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = kit.ClientTLSConfig(ident, kit.AuthorizeID(p.ID(upstream)))
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// ID is the identity of one of the Platform's services.
func (p *PKI) ID(service string) kit.SPIFFEID { return p.Base.Sibling(service) }

// Leaf issues service a certificate valid for an hour.
func (p *PKI) Leaf(t testing.TB, service string) pki.Leaf {
	t.Helper()
	l, err := pki.Issue(p.CA, p.ID(service), nil, time.Hour, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Identity is service's identity in memory, trusting this CA only.
func (p *PKI) Identity(t testing.TB, service string) *kit.Identity {
	t.Helper()
	l := p.Leaf(t, service)
	ident, err := kit.NewIdentity(l.CertPEM, l.KeyPEM, p.CA.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	return ident
}

// WriteIdentityDir writes service's certificate, key and this CA into dir
// the way kubelet updates a Secret volume (see WriteSecretDir).
func (p *PKI) WriteIdentityDir(t testing.TB, dir, service string) {
	t.Helper()
	l := p.Leaf(t, service)
	if err := WriteSecretDir(dir, map[string][]byte{
		kit.TLSCertFile: l.CertPEM, kit.TLSKeyFile: l.KeyPEM, kit.TLSCAFile: p.CA.CertPEM,
	}); err != nil {
		t.Fatal(err)
	}
}

// WriteSecretDir updates dir as kubelet's atomic writer updates a Secret
// volume: the files go into a new hidden directory, the ..data symlink is
// swapped to it with one rename, and each name is a symlink through ..data,
// so a reader sees the old set or the new one, never a mix.
func WriteSecretDir(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ts, err := os.MkdirTemp(dir, "..set_")
	if err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(ts, name), b, 0o600); err != nil {
			return err
		}
	}
	data := filepath.Join(dir, "..data")
	old, _ := os.Readlink(data)
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, data); err != nil {
		return err
	}
	for name := range files {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			return fmt.Errorf("link %s: %w", name, err)
		}
	}
	if old != "" && old != filepath.Base(ts) {
		return os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}
