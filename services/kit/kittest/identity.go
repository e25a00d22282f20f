package kittest

import (
	"fmt"
	"os"
	"path/filepath"
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
	ca, err := pki.NewCA(namespace+"/"+platform+" test CA", 24*time.Hour, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &PKI{CA: ca, Base: kit.SPIFFEID{TrustDomain: pki.DefaultTrustDomain, Namespace: namespace, Platform: platform}}
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
