package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	t0      = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	orderID = SPIFFEID{TrustDomain: DefaultTrustDomain, Namespace: "demo", Platform: "shop", Service: "order"}
)

const day = 24 * time.Hour

func newCA(t *testing.T, cn string, lifetime time.Duration) CA {
	t.Helper()
	ca, err := NewCA(cn, lifetime, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, ca CA, id SPIFFEID, lifetime time.Duration, now time.Time) Leaf {
	t.Helper()
	l, err := Issue(ca, id, []string{"shop-" + id.Service + ".demo.svc"}, lifetime, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestNewCA(t *testing.T) {
	ca := newCA(t, "shop.demo platform CA", 365*day)
	c := ca.Cert
	if !c.IsCA || !c.MaxPathLenZero || c.MaxPathLen != 0 || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA constraints: IsCA=%v MaxPathLen=%d zero=%v usage=%v", c.IsCA, c.MaxPathLen, c.MaxPathLenZero, c.KeyUsage)
	}
	if !c.NotBefore.Equal(t0.Add(-Backdate)) || !c.NotAfter.Equal(t0.Add(365*day)) {
		t.Errorf("validity %s – %s", c.NotBefore, c.NotAfter)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	again, err := ParseCA(ca.CertPEM, ca.KeyPEM)
	if err != nil || !again.Cert.Equal(c) {
		t.Fatalf("ParseCA of NewCA's PEM: %v", err)
	}
	if _, err := NewCA("", day, t0, nil); err == nil {
		t.Error("a CA without a name was created")
	}
	if _, err := NewCA("x", 0, t0, nil); err == nil {
		t.Error("a CA with no lifetime was created")
	}
	if _, err := NewCA("x", day, t0, bytes.NewReader(nil)); err == nil {
		t.Error("a CA was created from an empty random source")
	}
}

func TestIssue(t *testing.T) {
	ca := newCA(t, "shop CA", 365*day)
	leaf := issue(t, ca, orderID, 30*day, t0)
	c := leaf.Cert

	if leaf.ID != orderID || len(c.URIs) != 1 || c.URIs[0].String() != orderID.String() {
		t.Errorf("URI SANs %v, ID %v; want exactly %s", c.URIs, leaf.ID, orderID)
	}
	if c.IsCA || !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("IsCA=%v ExtKeyUsage=%v; want a leaf for server and client", c.IsCA, c.ExtKeyUsage)
	}
	if _, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || c.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
		t.Errorf("public key %T; want ECDSA P-256", c.PublicKey)
	}
	if !c.NotAfter.Equal(t0.Add(30*day)) || !c.NotBefore.Equal(t0.Add(-Backdate)) {
		t.Errorf("validity %s – %s", c.NotBefore, c.NotAfter)
	}
	if !slices.Equal(c.DNSNames, []string{"shop-order.demo.svc"}) {
		t.Errorf("DNS SANs %v", c.DNSNames)
	}
	pool, err := CertPoolFromPEM(ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Errorf("verify for %v: %v", u, err)
		}
	}
	if _, err := ParseCA(leaf.CertPEM, leaf.KeyPEM); err == nil {
		t.Error("a leaf parsed as a CA: it could sign certificates")
	}
	two := issue(t, ca, orderID, 30*day, t0)
	if two.Cert.SerialNumber.Cmp(c.SerialNumber) == 0 || bytes.Equal(two.KeyPEM, leaf.KeyPEM) {
		t.Error("two issues share a serial number or a key")
	}
}

func TestIssueRefuses(t *testing.T) {
	ca := newCA(t, "shop CA", 10*day)
	for name, tc := range map[string]struct {
		ca       CA
		id       SPIFFEID
		dns      []string
		lifetime time.Duration
		now      time.Time
		wantErr  string
	}{
		"an unparsed CA":               {ca: CA{CertPEM: ca.CertPEM}, id: orderID, lifetime: day, now: t0, wantErr: "parsed CA"},
		"an invalid identity":          {ca: ca, id: SPIFFEID{TrustDomain: "td", Namespace: "demo", Platform: "shop"}, lifetime: day, now: t0, wantErr: "service"},
		"no lifetime":                  {ca: ca, id: orderID, now: t0, wantErr: "lifetime"},
		"a DNS name with a space":      {ca: ca, id: orderID, dns: []string{"shop order"}, lifetime: day, now: t0, wantErr: "dns name"},
		"an empty DNS label":           {ca: ca, id: orderID, dns: []string{"shop..svc"}, lifetime: day, now: t0, wantErr: "dns name"},
		"a CA that expired":            {ca: ca, id: orderID, lifetime: day, now: t0.Add(10 * day), wantErr: "expired"},
		"a CA that expires during use": {ca: ca, id: orderID, lifetime: 30 * day, now: t0},
	} {
		t.Run(name, func(t *testing.T) {
			l, err := Issue(tc.ca, tc.id, tc.dns, tc.lifetime, tc.now, nil)
			if tc.wantErr == "" {
				// Issued, but never outliving the CA that vouches for it.
				if err != nil || !l.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
					t.Fatalf("got %v, NotAfter %v; want a leaf cut to the CA's expiry %v", err, l.Cert, ca.Cert.NotAfter)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Issue = %v; want an error about %q", err, tc.wantErr)
			}
		})
	}
}

func TestParse(t *testing.T) {
	ca := newCA(t, "shop CA", 365*day)
	other := newCA(t, "other CA", 365*day)
	leaf := issue(t, ca, orderID, 30*day, t0)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edDER, err := x509.MarshalPKCS8PrivateKey(edKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := func(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}) }

	t.Run("an Ed25519 key is accepted", func(t *testing.T) {
		if _, err := ParsePrivateKeyPEM(keyPEM(edDER)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an RSA key is refused", func(t *testing.T) {
		if _, err := ParsePrivateKeyPEM(keyPEM(rsaDER)); err == nil || !strings.Contains(err.Error(), "not accepted") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a certificate where a key belongs is refused", func(t *testing.T) {
		if _, err := ParsePrivateKeyPEM(leaf.CertPEM); err == nil {
			t.Fatal("parsed")
		}
	})
	t.Run("a leaf with another's key is refused", func(t *testing.T) {
		if _, err := ParseLeaf(leaf.CertPEM, other.KeyPEM); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a CA bundle holds every CA", func(t *testing.T) {
		bundle := slices.Concat(ca.CertPEM, other.CertPEM)
		certs, err := ParseCertificatesPEM(bundle)
		if err != nil || len(certs) != 2 {
			t.Fatalf("got %d certificates, %v", len(certs), err)
		}
		pool, err := CertPoolFromPEM(bundle)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: t0}); err != nil {
			t.Errorf("a leaf of the first CA does not verify against the bundle: %v", err)
		}
	})
	t.Run("a leaf in the CA bundle is refused", func(t *testing.T) {
		if _, err := CertPoolFromPEM(slices.Concat(ca.CertPEM, leaf.CertPEM)); err == nil {
			t.Fatal("a leaf became a trust anchor")
		}
	})
	t.Run("trailing garbage is refused", func(t *testing.T) {
		if _, err := ParseCertificatesPEM(slices.Concat(ca.CertPEM, []byte("junk"))); err == nil {
			t.Fatal("parsed")
		}
	})
	t.Run("an empty bundle is refused", func(t *testing.T) {
		if _, err := ParseCertificatesPEM([]byte("\n")); err == nil {
			t.Fatal("parsed")
		}
	})
	t.Run("a key in the CA bundle is refused", func(t *testing.T) {
		if _, err := ParseCertificatesPEM(slices.Concat(ca.CertPEM, ca.KeyPEM)); err == nil {
			t.Fatal("parsed")
		}
	})
}

func TestRenewAt(t *testing.T) {
	ca := newCA(t, "shop CA", 365*day)
	leaf := issue(t, ca, orderID, 30*day, t0).Cert
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	for name, tc := range map[string]struct {
		renewBefore time.Duration
		want        time.Time
	}{
		"ten days before a 30-day certificate expires": {renewBefore: 10 * day, want: leaf.NotAfter.Add(-10 * day)},
		"no renew-before renews two thirds in":         {renewBefore: 0, want: leaf.NotBefore.Add(life / 3 * 2)},
		"a renew-before as long as the life, too":      {renewBefore: life, want: leaf.NotBefore.Add(life / 3 * 2)},
		"a renew-before longer than the life, too":     {renewBefore: 60 * day, want: leaf.NotBefore.Add(life / 3 * 2)},
	} {
		t.Run(name, func(t *testing.T) {
			if got := RenewAt(leaf, tc.renewBefore); !got.Equal(tc.want) {
				t.Errorf("RenewAt = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestNeedsRenewal(t *testing.T) {
	ca := newCA(t, "shop CA", 365*day)
	rotated := newCA(t, "shop CA", 365*day) // same name, new key: a replaced CA
	leaf := issue(t, ca, orderID, 30*day, t0)
	renewAt := leaf.Cert.NotAfter.Add(-10 * day)
	clientOnly := func() Leaf {
		// A certificate the CA signed for client use only.
		l := issue(t, ca, orderID, 30*day, t0)
		tmpl := *l.Cert
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		key, err := ParsePrivateKeyPEM(l.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca.Cert, key.Public(), ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		l.CertPEM = encodeCert(der)
		return l
	}()
	for name, tc := range map[string]struct {
		cert, key, ca []byte
		id            SPIFFEID
		now           time.Time
		renew         bool
		why           string
	}{
		"a fresh certificate is kept":                        {cert: leaf.CertPEM, key: leaf.KeyPEM, ca: ca.CertPEM, id: orderID, now: t0},
		"a certificate a second before renewal is kept":      {cert: leaf.CertPEM, key: leaf.KeyPEM, ca: ca.CertPEM, id: orderID, now: renewAt.Add(-time.Second)},
		"a certificate at its renewal time is renewed":       {cert: leaf.CertPEM, key: leaf.KeyPEM, ca: ca.CertPEM, id: orderID, now: renewAt, renew: true, why: "due for renewal"},
		"an expired certificate is renewed":                  {cert: leaf.CertPEM, key: leaf.KeyPEM, ca: ca.CertPEM, id: orderID, now: t0.Add(40 * day), renew: true, why: "due for renewal"},
		"a missing certificate is issued":                    {key: leaf.KeyPEM, ca: ca.CertPEM, id: orderID, now: t0, renew: true, why: "no certificate"},
		"a missing key is issued":                            {cert: leaf.CertPEM, ca: ca.CertPEM, id: orderID, now: t0, renew: true, why: "no certificate"},
		"garbage is replaced":                                {cert: []byte("garbage"), key: leaf.KeyPEM, ca: ca.CertPEM, id: orderID, now: t0, renew: true, why: "unusable"},
		"a key that does not match is replaced":              {cert: leaf.CertPEM, key: ca.KeyPEM, ca: ca.CertPEM, id: orderID, now: t0, renew: true, why: "does not match"},
		"a certificate for another service is replaced":      {cert: leaf.CertPEM, key: leaf.KeyPEM, ca: ca.CertPEM, id: orderID.Sibling("payment"), now: t0, renew: true, why: "names"},
		"a certificate for another platform is replaced":     {cert: leaf.CertPEM, key: leaf.KeyPEM, ca: ca.CertPEM, id: SPIFFEID{DefaultTrustDomain, "demo", "blog", "order"}, now: t0, renew: true, why: "names"},
		"a certificate of a replaced CA is replaced":         {cert: leaf.CertPEM, key: leaf.KeyPEM, ca: rotated.CertPEM, id: orderID, now: t0, renew: true, why: "another CA"},
		"an unreadable CA certificate forces a new leaf":     {cert: leaf.CertPEM, key: leaf.KeyPEM, ca: []byte("x"), id: orderID, now: t0, renew: true, why: "CA certificate is unusable"},
		"a certificate not yet valid is replaced":            {cert: leaf.CertPEM, key: leaf.KeyPEM, ca: ca.CertPEM, id: orderID, now: t0.Add(-time.Hour), renew: true, why: "not valid before"},
		"a certificate without server authentication is out": {cert: clientOnly.CertPEM, key: clientOnly.KeyPEM, ca: ca.CertPEM, id: orderID, now: t0, renew: true, why: "server and client"},
	} {
		t.Run(name, func(t *testing.T) {
			renew, why := NeedsRenewal(tc.cert, tc.key, tc.ca, tc.id, tc.now, 10*day)
			if renew != tc.renew || !strings.Contains(why, tc.why) || (!renew && why != "") {
				t.Fatalf("NeedsRenewal = %v, %q; want %v, %q", renew, why, tc.renew, tc.why)
			}
		})
	}
}

func TestSerialNumberNeedsRandomness(t *testing.T) {
	if _, err := serialNumber(bytes.NewReader([]byte{1, 2})); err == nil {
		t.Fatal("a short random source made a serial number")
	}
	n, err := serialNumber(bytes.NewReader(make([]byte, 16)))
	if err != nil || n.Sign() <= 0 {
		t.Fatalf("an all-zero draw gave %v, %v; want a positive serial", n, err)
	}
	var errRand = errors.New("entropy gone")
	if _, err := serialNumber(failingReader{errRand}); !errors.Is(err, errRand) {
		t.Fatalf("got %v", err)
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }
