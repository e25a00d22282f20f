package render

import (
	"bytes"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/pki"
	"github.com/switchboard-dev/switchboard/internal/testgen"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

func keepIdentity(t *testing.T, p *v1alpha1.Platform, have Identity, now time.Time) (Identity, IdentityReport) {
	t.Helper()
	id, rep, err := KeepIdentity(p, have, now, nil)
	if err != nil {
		t.Fatalf("KeepIdentity: %v", err)
	}
	return id, rep
}

func issuedNames(rep IdentityReport) []string {
	var out []string
	for _, is := range rep.Issued {
		out = append(out, is.Service)
	}
	return out
}

// verifyLeaf checks what a peer checks: the chain to the CA, for both
// server and client use, and the SPIFFE ID the certificate names.
func verifyLeaf(t *testing.T, p *v1alpha1.Platform, id Identity, svc string, now time.Time) *x509.Certificate {
	t.Helper()
	leaf, err := pki.ParseLeaf(id.Leaves[svc].Cert, id.Leaves[svc].Key)
	if err != nil {
		t.Fatalf("%s: %v", svc, err)
	}
	roots, err := pki.CertPoolFromPEM(id.CACert)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("%s: the certificate does not chain to the CA: %v", svc, err)
	}
	want, _ := ServiceID(p, svc)
	if leaf.ID != want {
		t.Errorf("%s: names %s, want %s", svc, leaf.ID, want)
	}
	if err := leaf.Cert.VerifyHostname(ObjectName(p, svc) + "." + p.Namespace + ".svc"); err != nil {
		t.Errorf("%s: %v", svc, err)
	}
	return leaf.Cert
}

func TestKeepIdentityIssuesOnceAndKeeps(t *testing.T) {
	p := platform("shop", testgen.WithService("recommendation", testgen.Disabled()))
	first, rep := keepIdentity(t, p, Identity{}, t0)
	if !rep.CACreated || rep.CAReplaced {
		t.Errorf("a first call: created %v replaced %v", rep.CACreated, rep.CAReplaced)
	}
	ca, err := pki.ParseCA(first.CACert, first.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	if got := ca.Cert.NotAfter.Sub(t0); got != CALifetime {
		t.Errorf("CA lifetime %s, want %s", got, CALifetime)
	}
	if want := ServiceNames(p); !slices.Equal(issuedNames(rep), want) {
		t.Errorf("issued %v, want every enabled service %v", issuedNames(rep), want)
	}
	for _, is := range rep.Issued {
		if is.Renewal || is.Reason != "no certificate yet" {
			t.Errorf("%s: renewal %v, reason %q", is.Service, is.Renewal, is.Reason)
		}
	}
	if _, ok := first.Leaves["recommendation"]; ok {
		t.Error("a disabled service got a certificate")
	}
	for _, svc := range ServiceNames(p) {
		c := verifyLeaf(t, p, first, svc, t0)
		if c.NotAfter.Sub(t0) != 30*day {
			t.Errorf("%s: valid for %s, want the default 30 days", svc, c.NotAfter.Sub(t0))
		}
	}
	if want := t0.Add(20 * day); !rep.NextRenewal.Equal(want) {
		t.Errorf("next renewal %s, want %s (10 days before expiry)", rep.NextRenewal, want)
	}

	// Through the Secrets render writes, as the operator reads them back.
	objs := mustRenderWith(t, p, func() Options { o := testOptions(); o.Identity = first; return o }())
	leaves := map[string]*corev1.Secret{}
	for _, svc := range ServiceNames(p) {
		leaves[svc] = find[*corev1.Secret](t, objs, TLSSecretName(p, svc))
		if !bytes.Equal(leaves[svc].Data[SecretKeyCABundle], first.CACert) {
			t.Errorf("%s: ca.crt is not the CA", svc)
		}
	}
	again, rep := keepIdentity(t, p, IdentityFromSecrets(find[*corev1.Secret](t, objs, CASecretName(p)), leaves), t0.Add(19*day))
	if rep.CACreated || rep.CAReplaced || len(rep.Issued) != 0 {
		t.Errorf("before renewal time: %+v", rep)
	}
	if !bytes.Equal(again.CACert, first.CACert) || !bytes.Equal(again.CAKey, first.CAKey) {
		t.Error("the CA changed")
	}
	for svc, l := range first.Leaves {
		if !bytes.Equal(again.Leaves[svc].Cert, l.Cert) || !bytes.Equal(again.Leaves[svc].Key, l.Key) {
			t.Errorf("%s: the certificate changed before its renewal time", svc)
		}
	}
}

func TestKeepIdentityRenews(t *testing.T) {
	p := platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce))
	base, _ := keepIdentity(t, p, Identity{}, t0)
	// payment's certificate is newer: issued a day later.
	later := base
	later.Leaves = map[string]Leaf{}
	for k, v := range base.Leaves {
		later.Leaves[k] = v
	}
	delete(later.Leaves, "payment")
	later, _ = keepIdentity(t, p, later, t0.Add(day))
	swapped := func(id Identity) Identity {
		out := id
		out.Leaves = map[string]Leaf{}
		for k, v := range id.Leaves {
			out.Leaves[k] = v
		}
		out.Leaves["order"], out.Leaves["payment"] = id.Leaves["payment"], id.Leaves["order"]
		return out
	}
	otherCA, _ := keepIdentity(t, p, Identity{}, t0)

	tests := []struct {
		name     string
		platform *v1alpha1.Platform
		have     Identity
		now      time.Time
		// renewed are the services issued anew; reason is a part of
		// the reason of the first of them.
		renewed    []string
		reason     string
		newCA      bool
		nextRenew  time.Time
		nextFor    string
		lifetime   time.Duration
		wantLeaves []string
	}{
		{
			name: "at renewal time every certificate due is renewed, the CA kept", platform: p, have: later, now: t0.Add(20 * day),
			renewed: []string{"gateway", "user", "product", "order", "notification"}, reason: "was due for renewal",
			nextRenew: t0.Add(21 * day), nextFor: "payment", lifetime: 30 * day,
		},
		{
			name: "a certificate swapped for another service's is issued anew", platform: p, have: swapped(later), now: t0.Add(2 * day),
			renewed: []string{"order", "payment"}, reason: "the certificate names spiffe://switchboard.local/ns/demo/platform/shop/service/payment, want spiffe://switchboard.local/ns/demo/platform/shop/service/order",
			nextRenew: t0.Add(20 * day), nextFor: "gateway", lifetime: 30 * day,
		},
		{
			name: "a certificate of another CA is issued anew", platform: p,
			have: Identity{CACert: base.CACert, CAKey: base.CAKey, Leaves: map[string]Leaf{"gateway": otherCA.Leaves["gateway"], "user": base.Leaves["user"],
				"product": base.Leaves["product"], "order": base.Leaves["order"], "payment": base.Leaves["payment"], "notification": base.Leaves["notification"]}},
			now: t0.Add(2 * day), renewed: []string{"gateway"}, reason: "issued by another CA",
			nextRenew: t0.Add(20 * day), nextFor: "user", lifetime: 30 * day,
		},
		{
			name: "an unreadable CA is replaced, and every certificate with it", platform: p,
			have: Identity{CACert: []byte("garbage"), CAKey: base.CAKey, Leaves: base.Leaves}, now: t0.Add(2 * day),
			renewed: ServiceNames(p), reason: "issued by another CA", newCA: true,
			nextRenew: t0.Add(22 * day), nextFor: "gateway", lifetime: 30 * day,
		},
		{
			name: "an expired CA is replaced", platform: p, have: base, now: t0.Add(CALifetime),
			renewed: ServiceNames(p), newCA: true,
			nextRenew: t0.Add(CALifetime + 20*day), nextFor: "gateway", lifetime: 30 * day,
		},
		{
			name: "a new trust domain issues every certificate anew", platform: platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithIdentity("example.org", 0, 0)),
			have: base, now: t0.Add(day), renewed: ServiceNames(p), reason: "want spiffe://example.org/ns/demo/platform/shop/service/gateway",
			nextRenew: t0.Add(21 * day), nextFor: "gateway", lifetime: 30 * day,
		},
		{
			name: "a shorter lifetime issues the longer-lived certificates anew", platform: platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithIdentity("", 24*time.Hour, 6*time.Hour)),
			have: later, now: t0.Add(time.Hour), renewed: ServiceNames(p), reason: "beyond the certificate lifetime of 24h0m0s",
			nextRenew: t0.Add(19 * time.Hour), nextFor: "gateway", lifetime: 24 * time.Hour,
		},
		{
			name: "a disabled service's certificate is dropped", platform: platform("shop", testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithService("order", testgen.Disabled())),
			have: later, now: t0.Add(2 * day),
			nextRenew: t0.Add(20 * day), nextFor: "gateway", lifetime: 30 * day,
			wantLeaves: []string{"gateway", "user", "product", "payment", "notification"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rep := keepIdentity(t, tt.platform, tt.have, tt.now)
			if !slices.Equal(issuedNames(rep), tt.renewed) {
				t.Errorf("issued %v, want %v", issuedNames(rep), tt.renewed)
			}
			if len(rep.Issued) > 0 && !strings.Contains(rep.Issued[0].Reason, tt.reason) {
				t.Errorf("reason %q, want it to contain %q", rep.Issued[0].Reason, tt.reason)
			}
			if rep.CAReplaced != tt.newCA || rep.CACreated {
				t.Errorf("CA replaced %v created %v, want replaced %v", rep.CAReplaced, rep.CACreated, tt.newCA)
			}
			if !tt.newCA && !bytes.Equal(got.CACert, tt.have.CACert) {
				t.Error("the CA changed")
			}
			if tt.newCA && bytes.Equal(got.CACert, tt.have.CACert) {
				t.Error("the CA was kept")
			}
			for _, is := range rep.Issued {
				if !is.Renewal {
					t.Errorf("%s: a renewal reported as a first issue", is.Service)
				}
			}
			want := tt.wantLeaves
			if want == nil {
				want = ServiceNames(tt.platform)
			}
			var leaves []string
			for svc := range got.Leaves {
				leaves = append(leaves, svc)
			}
			slices.Sort(leaves)
			slices.Sort(want)
			if !slices.Equal(leaves, want) {
				t.Errorf("certificates of %v, want %v", leaves, want)
			}
			for _, svc := range want {
				c := verifyLeaf(t, tt.platform, got, svc, tt.now)
				if slices.Contains(tt.renewed, svc) && c.NotAfter.Sub(tt.now) != tt.lifetime {
					t.Errorf("%s: renewed for %s, want %s", svc, c.NotAfter.Sub(tt.now), tt.lifetime)
				}
			}
			if !rep.NextRenewal.Equal(tt.nextRenew) || rep.NextService != tt.nextFor {
				t.Errorf("next renewal %s (%s), want %s (%s)", rep.NextRenewal, rep.NextService, tt.nextRenew, tt.nextFor)
			}
		})
	}
}

func TestServiceDNSNames(t *testing.T) {
	p := platform("shop", testgen.WithNamespace("prod"))
	want := []string{"shop-order", "shop-order.prod", "shop-order.prod.svc", "shop-order.prod.svc.cluster.local"}
	if got := ServiceDNSNames(p, "order"); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := RenewBefore(platform("shop", testgen.WithIdentity("", 9*time.Hour, 0))); got != 3*time.Hour {
		t.Errorf("default renewBefore of a 9h lifetime: %s, want a third", got)
	}
	if got := RenewBefore(platform("shop")); got != 240*time.Hour {
		t.Errorf("default renewBefore %s, want 240h", got)
	}
}
