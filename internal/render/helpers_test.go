package render

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/testgen"
	"github.com/switchboard-dev/switchboard/internal/tokenkeys"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

const testUID = types.UID("6f1c0a4e-0000-4000-8000-000000000001")

// platform is testgen.Platform as the API server hands it to the operator:
// in namespace demo and with a UID, so its children carry an owner
// reference. Both workloads run unless opts say otherwise.
func platform(name string, opts ...testgen.PlatformOption) *v1alpha1.Platform {
	return testgen.Platform(name, append([]testgen.PlatformOption{testgen.WithNamespace("demo"), testgen.WithUID(testUID)}, opts...)...)
}

// Peers a metricsFrom may name.
func namespacePeer(ns string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}}
}

func prometheusPeer(ns string) networkingv1.NetworkPolicyPeer {
	peer := namespacePeer(ns)
	peer.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "prometheus"}}
	return peer
}

func cidrPeer(cidr string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr}}
}

func requests(cpu, memory string) corev1.ResourceRequirements {
	r := corev1.ResourceRequirements{Requests: corev1.ResourceList{}}
	if cpu != "" {
		r.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if memory != "" {
		r.Requests[corev1.ResourceMemory] = resource.MustParse(memory)
	}
	return r
}

// testCredentials and testAdmin are fixed, valid and distinctive, so a
// leak is easy to find.
var (
	testCredentials = Credentials{
		NATSUser:       "testUserQwErTyUiOpAsDfGh",
		NATSPassword:   "testPasswordZxCvBnMLkJhGf",
		SystemUser:     "testSystemUserPoIuYtReWq",
		SystemPassword: "testSystemPasswordLkJhGfDsA",
	}
	testAdmin = Admin{Email: "admin@example.com", Password: "testAdminPasswordMnBvCxZ"}
)

// testTokenKeys holds fixed keys for every name the tests use; a render
// takes those its Platform names.
func testTokenKeys() TokenKeys {
	keys := TokenKeys{}
	for _, name := range []string{"v1", "v2", "blue", "green"} {
		keys[name] = testgen.TokenKey(name)
	}
	return keys
}

// testPublicPEM is a public key, where a private one belongs.
var testPublicPEM = func() string {
	priv, err := tokenkeys.ParsePrivate(testgen.TokenKey("v1"))
	if err != nil {
		panic(err)
	}
	s, _ := tokenkeys.EncodePublic(tokenkeys.Public(priv))
	return s
}()

// testBrokerUsers are fixed broker users of every service that uses the
// broker; the hashes are real bcrypt hashes (cost 4) of the passwords, made
// once and written here because bcrypt salts at random.
var testBrokerUsers = BrokerUsers{
	"user":           {User: "user", Password: "testNATSPasswordOfUser", PasswordHash: "$2a$04$dgHnmeY8FoR5j2E/fyqmFewUDORUp9fXyuUrWUnoeysPrqiQTcsYO"},
	"product":        {User: "product", Password: "testNATSPasswordOfProduct", PasswordHash: "$2a$04$am7i.tOKSfQQWQUw6SdYH.Sj068yKUAsK6y7YfWsSu4RyYcohoQMe"},
	"order":          {User: "order", Password: "testNATSPasswordOfOrder", PasswordHash: "$2a$04$S6aWYTuL2nZcVoQhTSHb6uOtzM2n2N8b7tThX2Pwn246t1lKKukwi"},
	"payment":        {User: "payment", Password: "testNATSPasswordOfPayment", PasswordHash: "$2a$04$PIe7RWjirIBEFEAN/zpT5uFG4aitYNEp8srEvRGdm7EGml.B7GTKi"},
	"notification":   {User: "notification", Password: "testNATSPasswordOfNotification", PasswordHash: "$2a$04$z8djJpQryCkLPcDzuPm47u8DitwjetEjxBaRdItnK3jAqDfSevlAG"},
	"account":        {User: "account", Password: "testNATSPasswordOfAccount", PasswordHash: "$2a$04$rNxuUMexP/3w0O1zp.pfceYq.shh2A/DyQgLeEYPkD3OfnGeb4W5."},
	"content":        {User: "content", Password: "testNATSPasswordOfContent", PasswordHash: "$2a$04$RvT5.CeVL7bnleBgdoKly.yXdDCxw1lDNZ9W47OHw7GZdRjxQmjoC"},
	"playback":       {User: "playback", Password: "testNATSPasswordOfPlayback", PasswordHash: "$2a$04$Wfkgy7vpOu9aV.wndRS3mO62RsdQapEofNk5HeSTOxQIf80g9d9Ty"},
	"analytics":      {User: "analytics", Password: "testNATSPasswordOfAnalytics", PasswordHash: "$2a$04$mHIiL0op9tnN7setwe76I.vkinkgwBdorG7DqVhKs4B7KaaTZQnxa"},
	"recommendation": {User: "recommendation", Password: "testNATSPasswordOfRecommendation", PasswordHash: "$2a$04$5qhhLzRaLAxUlMLCvvgmaO0J4nfTwhUvox1wE2USnrV1BdSTNm7ZO"},
}

// testIdentity stands in for the PKI material of every catalog service.
// Render copies it into Secrets without reading it, so fixed text keeps
// the golden files stable; KeepIdentity's tests use real certificates.
func testIdentity() Identity {
	id := Identity{CACert: []byte("test CA certificate\n"), CAKey: []byte("test CA key\n"), Leaves: map[string]Leaf{}}
	for _, s := range catalog.All() {
		id.Leaves[s.Name] = Leaf{Cert: []byte("test certificate of " + s.Name + "\n"), Key: []byte("test key of " + s.Name + "\n")}
	}
	return id
}

func testOptions() Options {
	return Options{ServicesImage: "ghcr.io/switchboard-dev/switchboard:test", Credentials: testCredentials, TokenKeys: testTokenKeys(), Admin: testAdmin,
		BrokerUsers: testBrokerUsers, Identity: testIdentity()}
}

func mustRender(t *testing.T, p *v1alpha1.Platform) []client.Object {
	t.Helper()
	return mustRenderWith(t, p, testOptions())
}

// mustRenderWithKEDA renders p where KEDA's ScaledObject CRD is installed.
func mustRenderWithKEDA(t *testing.T, p *v1alpha1.Platform) []client.Object {
	t.Helper()
	opts := testOptions()
	opts.KEDA = true
	return mustRenderWith(t, p, opts)
}

func mustRenderWith(t *testing.T, p *v1alpha1.Platform, opts Options) []client.Object {
	t.Helper()
	objs, err := Platform(p, opts)
	if err != nil {
		t.Fatalf("Platform: %v", err)
	}
	return objs
}

// ref names an object as "Kind/name".
func ref(o client.Object) string {
	return o.GetObjectKind().GroupVersionKind().Kind + "/" + o.GetName()
}

func refs(objs []client.Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = ref(o)
	}
	return out
}

// find returns the object of type T named name, or fails the test.
func find[T client.Object](t *testing.T, objs []client.Object, name string) T {
	t.Helper()
	for _, o := range objs {
		if typed, ok := o.(T); ok && o.GetName() == name {
			return typed
		}
	}
	var zero T
	t.Fatalf("no %T named %q in %v", zero, name, refs(objs))
	return zero
}

func has(objs []client.Object, r string) bool {
	for _, o := range objs {
		if ref(o) == r {
			return true
		}
	}
	return false
}

// podTemplates returns every pod template rendered, keyed by "Kind/name".
func podTemplates(objs []client.Object) map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for _, o := range objs {
		switch w := o.(type) {
		case *appsv1.Deployment:
			out[ref(o)] = &w.Spec.Template
		case *appsv1.StatefulSet:
			out[ref(o)] = &w.Spec.Template
		}
	}
	return out
}

func envMap(c corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

func envNames(c corev1.Container) []string {
	var names []string
	for _, e := range c.Env {
		names = append(names, e.Name)
	}
	return names
}

func diffStrings(got, want []string) string {
	if reflect.DeepEqual(got, want) {
		return ""
	}
	return fmt.Sprintf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
}
