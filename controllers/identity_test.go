package controllers_test

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/controllers"
	"github.com/switchboard-dev/switchboard/internal/pki"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/internal/testgen"
)

// notes records Events with their text, in order, as they are made.
type notes struct {
	mu  sync.Mutex
	all []string // "reason: note"
}

func (n *notes) Eventf(_, _ runtime.Object, _, reason, _, note string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.all = append(n.all, reason+": "+fmt.Sprintf(note, args...))
}

// take returns the Events recorded since the last take.
func (n *notes) take() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.all
	n.all = nil
	return out
}

func withReason(events []string, reason string) []string {
	var out []string
	for _, e := range events {
		if strings.HasPrefix(e, reason+": ") {
			out = append(out, e)
		}
	}
	return out
}

// clock is a reconciler's time, moved by the test.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// identityReconciler reads straight from the API server, with a clock the
// test moves and Events it can read at once.
func identityReconciler(t *testing.T) (*controllers.PlatformReconciler, *clock, *notes) {
	t.Helper()
	r, _ := newDirectReconciler(t)
	c := &clock{now: time.Now().UTC().Truncate(time.Second)}
	n := &notes{}
	r.Clock, r.Recorder = c.Now, n
	return r, c, n
}

func reconcileAt(t *testing.T, r *controllers.PlatformReconciler, p *v1alpha1.Platform) ctrl.Result {
	t.Helper()
	res, err := r.Reconcile(testCtx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}})
	if err != nil {
		t.Fatalf("reconcile %s: %v", p.Name, err)
	}
	return res
}

func secret(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	mustGet(t, ns, name, s)
	return s
}

// leafOf parses a service's tls Secret as a peer would see it.
func leafOf(t *testing.T, ns, p, svc string) (pki.Leaf, *corev1.Secret) {
	t.Helper()
	s := secret(t, ns, p+"-"+svc+"-tls")
	if s.Type != corev1.SecretTypeTLS {
		t.Errorf("%s: type %s, want %s", s.Name, s.Type, corev1.SecretTypeTLS)
	}
	l, err := pki.ParseLeaf(s.Data["tls.crt"], s.Data["tls.key"])
	if err != nil {
		t.Fatalf("%s: %v", s.Name, err)
	}
	return l, s
}

func TestEveryServiceGetsACertificateNamingIt(t *testing.T) {
	ns := newNamespace(t)
	r, clk, events := identityReconciler(t)
	p := testgen.Platform("shop", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce))
	if err := k8s.Create(testCtx, p); err != nil {
		t.Fatal(err)
	}
	res := reconcileAt(t, r, p)

	ca := secret(t, ns, "shop-ca")
	caCert, err := pki.ParseCA(ca.Data["tls.crt"], ca.Data["tls.key"])
	if err != nil {
		t.Fatalf("shop-ca: %v", err)
	}
	if ca.Type != corev1.SecretTypeTLS || caCert.Cert.NotAfter.Sub(clk.now) != render.CALifetime {
		t.Errorf("shop-ca: type %s, valid until %s", ca.Type, caCert.Cert.NotAfter)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert.Cert)
	for _, svc := range []string{"gateway", "user", "product", "order", "payment", "notification"} {
		leaf, s := leafOf(t, ns, "shop", svc)
		want := fmt.Sprintf("spiffe://switchboard.local/ns/%s/platform/shop/service/%s", ns, svc)
		parsed, err := pki.ParseSPIFFEID(leaf.Cert.URIs[0].String())
		if err != nil || leaf.ID.String() != want || parsed != leaf.ID {
			t.Errorf("%s names %v (%v), want %s", svc, leaf.Cert.URIs, err, want)
		}
		if !bytes.Equal(s.Data["ca.crt"], ca.Data["tls.crt"]) {
			t.Errorf("%s: ca.crt is not the CA of shop-ca", svc)
		}
		if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "shop-" + svc + "." + ns + ".svc", CurrentTime: clk.now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: %v", svc, err)
		}
		d := &appsv1.Deployment{}
		mustGet(t, ns, "shop-"+svc, d)
		if !slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
			return v.Secret != nil && v.Secret.SecretName == "shop-"+svc+"-tls"
		}) {
			t.Errorf("%s does not mount its certificate", svc)
		}
	}
	// Renewal is 10 days before a 30-day certificate expires.
	if want := 20 * 24 * time.Hour; res.RequeueAfter != want {
		t.Errorf("RequeueAfter %s, want %s", res.RequeueAfter, want)
	}
	got := events.take()
	if len(withReason(got, "CACreated")) != 1 || len(withReason(got, "CertificatesIssued")) != 1 {
		t.Errorf("events %q, want one CACreated and one CertificatesIssued", got)
	}
	c := meta.FindStatusCondition(get(t, p).Status.Conditions, controllers.ConditionCertificatesReady)
	if c == nil || c.Status != "True" || c.Reason != "CertificatesValid" || !strings.Contains(c.Message, "6 service certificates") ||
		!strings.Contains(c.Message, clk.now.Add(20*24*time.Hour).Format(time.RFC3339)) {
		t.Errorf("condition %+v", c)
	}
}

func TestTheCAIsKeptAndCertificatesRenewedOnTime(t *testing.T) {
	ns := newNamespace(t)
	r, clk, events := identityReconciler(t)
	t0 := clk.now
	// Two-hour certificates, renewed 30 minutes before they expire.
	p := testgen.Platform("shop", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce),
		testgen.WithIdentity("", 2*time.Hour, 30*time.Minute))
	if err := k8s.Create(testCtx, p); err != nil {
		t.Fatal(err)
	}
	if res := reconcileAt(t, r, p); res.RequeueAfter != 90*time.Minute {
		t.Fatalf("RequeueAfter %s, want 1h30m", res.RequeueAfter)
	}
	ca := secret(t, ns, "shop-ca").Data
	serial := map[string]string{}
	for _, svc := range []string{"gateway", "user", "product", "order", "payment", "notification"} {
		l, _ := leafOf(t, ns, "shop", svc)
		serial[svc] = l.Cert.SerialNumber.String()
	}
	order := &appsv1.Deployment{}
	mustGet(t, ns, "shop-order", order)
	template := order.Spec.Template.DeepCopy()
	events.take()

	// Ten minutes in, payment's certificate is lost: it alone is issued
	// again, and the next renewal is still the others'.
	clk.now = t0.Add(10 * time.Minute)
	if err := k8s.Delete(testCtx, secret(t, ns, "shop-payment-tls")); err != nil {
		t.Fatal(err)
	}
	if res := reconcileAt(t, r, p); res.RequeueAfter != 80*time.Minute {
		t.Errorf("RequeueAfter %s, want 1h20m: the earliest renewal of all", res.RequeueAfter)
	}
	if l, _ := leafOf(t, ns, "shop", "payment"); l.Cert.SerialNumber.String() == serial["payment"] {
		t.Error("payment's lost certificate was not issued again")
	}
	if got := events.take(); len(withReason(got, "CertificatesIssued")) != 1 || !strings.Contains(withReason(got, "CertificatesIssued")[0], "payment") {
		t.Errorf("events %q, want payment's issue", got)
	}

	// At renewal time every certificate issued at t0 is renewed, signed by
	// the same CA; payment's follows ten minutes later.
	clk.now = t0.Add(91 * time.Minute)
	if res := reconcileAt(t, r, p); res.RequeueAfter != 9*time.Minute {
		t.Errorf("RequeueAfter %s, want 9m: payment's renewal", res.RequeueAfter)
	}
	if !bytes.Equal(secret(t, ns, "shop-ca").Data["tls.crt"], ca["tls.crt"]) || !bytes.Equal(secret(t, ns, "shop-ca").Data["tls.key"], ca["tls.key"]) {
		t.Fatal("the CA changed")
	}
	for svc, old := range serial {
		l, s := leafOf(t, ns, "shop", svc)
		if svc == "payment" {
			continue
		}
		if l.Cert.SerialNumber.String() == old {
			t.Errorf("%s was not renewed", svc)
		}
		if need, why := pki.NeedsRenewal(s.Data["tls.crt"], s.Data["tls.key"], ca["tls.crt"], l.ID, clk.now, 30*time.Minute); need {
			t.Errorf("%s: the renewed certificate is not good: %s", svc, why)
		}
	}
	renewed := withReason(events.take(), "CertificatesRenewed")
	if len(renewed) != 1 || !strings.HasPrefix(renewed[0], "CertificatesRenewed: Renewed the certificates of gateway, user, product, order, notification (") ||
		!strings.HasSuffix(renewed[0], "the next renewal is payment's at "+t0.Add(100*time.Minute).Format(time.RFC3339)) {
		t.Errorf("events %q, want one renewal of the five due", renewed)
	}
	mustGet(t, ns, "shop-order", order)
	if !equalTemplates(template, &order.Spec.Template) {
		t.Error("a renewal changed order's pod template: its pods would roll")
	}

	// The CA survives reconciles long after.
	clk.now = t0.Add(100 * 24 * time.Hour)
	reconcileAt(t, r, p)
	if !bytes.Equal(secret(t, ns, "shop-ca").Data["tls.crt"], ca["tls.crt"]) {
		t.Error("the CA changed")
	}
}

func equalTemplates(a, b *corev1.PodTemplateSpec) bool {
	return equality.Semantic.DeepEqual(a, b)
}

// An unreadable CA is replaced, with a Warning, and every certificate with it.
func TestAnUnreadableCAIsReplaced(t *testing.T) {
	ns := newNamespace(t)
	r, _, events := identityReconciler(t)
	p := testgen.Platform("shop", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce))
	if err := k8s.Create(testCtx, p); err != nil {
		t.Fatal(err)
	}
	reconcileAt(t, r, p)
	before, _ := leafOf(t, ns, "shop", "order")
	ca := secret(t, ns, "shop-ca")
	ca.Data["tls.key"] = []byte("not a key")
	if err := k8s.Update(testCtx, ca); err != nil {
		t.Fatal(err)
	}
	events.take()
	reconcileAt(t, r, p)
	if w := withReason(events.take(), "CAReplaced"); len(w) != 1 || !strings.Contains(w[0], "unusable") {
		t.Errorf("events %q, want a CAReplaced saying why", w)
	}
	after, s := leafOf(t, ns, "shop", "order")
	if after.Cert.Equal(before.Cert) {
		t.Error("order kept the certificate of the old CA")
	}
	newCA, err := pki.ParseCA(secret(t, ns, "shop-ca").Data["tls.crt"], secret(t, ns, "shop-ca").Data["tls.key"])
	if err != nil {
		t.Fatal(err)
	}
	if err := after.Cert.CheckSignatureFrom(newCA.Cert); err != nil || !bytes.Equal(s.Data["ca.crt"], newCA.CertPEM) {
		t.Errorf("order's certificate is not the new CA's: %v", err)
	}
}

// A disabled service loses its certificate and its broker user; the
// gateway never has a broker user.
func TestADisabledServiceLosesItsIdentity(t *testing.T) {
	ns := newNamespace(t)
	r, _, _ := identityReconciler(t)
	p := testgen.Platform("shop", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce))
	if err := k8s.Create(testCtx, p); err != nil {
		t.Fatal(err)
	}
	reconcileAt(t, r, p)
	for _, name := range []string{"shop-order-tls", "shop-order-nats", "shop-gateway-tls"} {
		secret(t, ns, name)
	}
	if err := k8s.Get(testCtx, client.ObjectKey{Namespace: ns, Name: "shop-gateway-nats"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("the gateway has a broker user: %v", err)
	}
	live := get(t, p)
	live.Spec.Services = map[string]v1alpha1.ServiceSpec{"order": {Enabled: ptr.To(false)}}
	if err := k8s.Update(testCtx, live); err != nil {
		t.Fatal(err)
	}
	reconcileAt(t, r, p)
	for _, name := range []string{"shop-order-tls", "shop-order-nats"} {
		if err := k8s.Get(testCtx, client.ObjectKey{Namespace: ns, Name: name}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
			t.Errorf("%s was not pruned: %v", name, err)
		}
	}
	secret(t, ns, "shop-payment-tls")
	if strings.Contains(brokerConfig(t, ns), `user: "order"`) {
		t.Error("nats.conf still has order's user")
	}
}

func brokerConfig(t *testing.T, ns string) string {
	t.Helper()
	cm := &corev1.ConfigMap{}
	mustGet(t, ns, "shop-nats-config", cm)
	return cm.Data["nats.conf"]
}

func podAnnotations(t *testing.T, ns, name string, obj client.Object) map[string]string {
	t.Helper()
	mustGet(t, ns, name, obj)
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return o.Spec.Template.Annotations
	case *appsv1.StatefulSet:
		return o.Spec.Template.Annotations
	}
	t.Fatalf("%T has no pod template", obj)
	return nil
}

// Each service's broker user is its own, checked by the broker against a
// hash, and rotated by replacing its Secret: the service's pods and the
// broker roll, no other service's.
func TestBrokerUsersAreRotatedByReplacingTheirSecret(t *testing.T) {
	ns := newNamespace(t)
	r, _, events := identityReconciler(t)
	p := testgen.Platform("shop", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce))
	if err := k8s.Create(testCtx, p); err != nil {
		t.Fatal(err)
	}
	reconcileAt(t, r, p)
	if got := withReason(events.take(), "BrokerCredentialsGenerated"); len(got) != 1 || !strings.Contains(got[0], "user, product, order, payment, notification") {
		t.Errorf("events %q", got)
	}
	users := map[string]render.BrokerUser{}
	for _, svc := range []string{"user", "product", "order", "payment", "notification"} {
		u := render.BrokerUserFromSecret(secret(t, ns, "shop-"+svc+"-nats"))
		if u.User != svc || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(u.Password)) != nil {
			t.Errorf("%s: user %q, or a hash that does not match", svc, u.User)
		}
		if !strings.Contains(brokerConfig(t, ns), fmt.Sprintf("password: %q", u.PasswordHash)) || strings.Contains(brokerConfig(t, ns), u.Password) {
			t.Errorf("%s: nats.conf must carry the hash, never the password", svc)
		}
		users[svc] = u
	}
	annotations := func() map[string]string {
		out := map[string]string{"broker": podAnnotations(t, ns, "shop-nats", &appsv1.StatefulSet{})[render.AnnotationConfigHash]}
		for svc := range users {
			out[svc] = podAnnotations(t, ns, "shop-"+svc, &appsv1.Deployment{})[render.AnnotationAuthHash]
		}
		return out
	}
	before := annotations()
	reconcileAt(t, r, p)
	if after := annotations(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a second reconcile changed the pods' annotations: %v → %v", before, after)
	}
	if got := events.take(); len(withReason(got, "BrokerCredentialsGenerated")) != 0 {
		t.Errorf("kept credentials announced again: %q", got)
	}

	// Deleting order's Secret rotates order's credentials.
	if err := k8s.Delete(testCtx, secret(t, ns, "shop-order-nats")); err != nil {
		t.Fatal(err)
	}
	reconcileAt(t, r, p)
	rotated := render.BrokerUserFromSecret(secret(t, ns, "shop-order-nats"))
	if rotated.Password == users["order"].Password {
		t.Fatal("the password was not generated again")
	}
	after := annotations()
	for k := range before {
		if changed := after[k] != before[k]; changed != (k == "order" || k == "broker") {
			t.Errorf("%s: annotation changed %v", k, changed)
		}
	}

	// A password written by hand gets a new hash.
	s := secret(t, ns, "shop-payment-nats")
	s.Data["nats-password"] = []byte("aPasswordChosenByAPersonAtTheKeyboard")
	if err := k8s.Update(testCtx, s); err != nil {
		t.Fatal(err)
	}
	events.take()
	reconcileAt(t, r, p)
	u := render.BrokerUserFromSecret(secret(t, ns, "shop-payment-nats"))
	if u.Password != "aPasswordChosenByAPersonAtTheKeyboard" || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(u.Password)) != nil {
		t.Error("the hand-written password was not kept with a new hash")
	}
	if got := withReason(events.take(), "BrokerCredentialsRehashed"); len(got) != 1 || !strings.Contains(got[0], "payment") {
		t.Errorf("events %q", got)
	}
}
