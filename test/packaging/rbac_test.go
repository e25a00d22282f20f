package packaging

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/controllers"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/internal/testenv"
	"github.com/switchboard-dev/switchboard/internal/testgen"
)

const (
	operatorNamespace = "switchboard-system"
	servicesImage     = "example.test/switchboard:rbac"
)

// TestChartRBACIsLeastPrivilege: the chart grants exactly the rules the
// operator's markers generate, with no wildcard anywhere.
func TestChartRBACIsLeastPrivilege(t *testing.T) {
	objs := decode(t, helmTemplate(t, "lp", operatorNamespace))
	generated := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(readFile(t, "config", "rbac", "role.yaml"), generated); err != nil {
		t.Fatal(err)
	}
	chart := toTyped[rbacv1.ClusterRole](t, find(objs, "ClusterRole")[0])
	if !slices.EqualFunc(chart.Rules, generated.Rules, ruleEqual) {
		t.Errorf("chart ClusterRole rules differ from config/rbac/role.yaml:\nchart: %+v\ngenerated: %+v", chart.Rules, generated.Rules)
	}
	noWildcards(t, objs)

	t.Run("in namespace mode it splits the same rules between a Role per namespace and a ClusterRole", func(t *testing.T) {
		objs := decode(t, helmTemplate(t, "lp", operatorNamespace, "watchNamespaces={shop,stream}"))
		noWildcards(t, objs)
		if k := kinds(objs); k["ClusterRole"] != 1 || k["ClusterRoleBinding"] != 1 || k["Role"] != 3 || k["RoleBinding"] != 3 {
			t.Fatalf("kinds %v, want a ClusterRole and its binding, and a Role and RoleBinding in shop, stream and %s (leader election)", k, operatorNamespace)
		}
		cluster := toTyped[rbacv1.ClusterRole](t, find(objs, "ClusterRole")[0]).Rules
		for _, r := range cluster {
			if !slices.Equal(r.Resources, []string{"customresourcedefinitions"}) {
				t.Errorf("the ClusterRole grants %+v: in namespace mode it holds only cluster-scoped rules", r)
			}
		}
		for _, ns := range []string{"shop", "stream"} {
			role := findNamed(t, objs, "Role", ns, "lp-switchboard-manager")
			rules := toTyped[rbacv1.Role](t, role).Rules
			if split := slices.Concat(rules, cluster); !sameRules(split, generated.Rules) {
				t.Errorf("the Role in %s and the ClusterRole grant, together:\n%+v\nwant config/rbac/role.yaml:\n%+v", ns, split, generated.Rules)
			}
			binding := toTyped[rbacv1.RoleBinding](t, findNamed(t, objs, "RoleBinding", ns, "lp-switchboard-manager"))
			if binding.RoleRef.Kind != "Role" || binding.RoleRef.Name != role.GetName() ||
				len(binding.Subjects) != 1 || binding.Subjects[0].Namespace != operatorNamespace {
				t.Errorf("RoleBinding in %s: %+v", ns, binding)
			}
		}
		if c := container(t, find(objs, "Deployment")[0]); !contains(c["args"], "--watch-namespaces=shop,stream") {
			t.Errorf("operator args %v lack --watch-namespaces=shop,stream", c["args"])
		}
		cmd := exec.Command(helmBin, "template", "lp", filepath.Join(root, "charts", "switchboard"), "--namespace", operatorNamespace,
			"--set", "watchNamespaces={shop}", "--set", "platform.create=true")
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "is not in watchNamespaces") {
			t.Errorf("a chart Platform outside watchNamespaces: err %v, output %s", err, out)
		}
	})
}

func noWildcards(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, kind := range []string{"ClusterRole", "Role"} {
		for _, u := range find(objs, kind) {
			for _, r := range toTyped[rbacv1.ClusterRole](t, u).Rules {
				for _, v := range slices.Concat(r.APIGroups, r.Resources, r.Verbs, r.ResourceNames, r.NonResourceURLs) {
					if strings.Contains(v, "*") {
						t.Errorf("%s %s grants a wildcard: %+v", kind, u.GetName(), r)
					}
				}
			}
		}
	}
}

// sameRules: a and b hold the same rules, in any order.
func sameRules(a, b []rbacv1.PolicyRule) bool {
	if len(a) != len(b) {
		return false
	}
	for _, r := range a {
		if !slices.ContainsFunc(b, func(o rbacv1.PolicyRule) bool { return ruleEqual(r, o) }) {
			return false
		}
	}
	return true
}

func findNamed(t *testing.T, objs []*unstructured.Unstructured, kind, namespace, name string) *unstructured.Unstructured {
	t.Helper()
	for _, u := range find(objs, kind) {
		if u.GetNamespace() == namespace && u.GetName() == name {
			return u
		}
	}
	t.Fatalf("no %s %s/%s", kind, namespace, name)
	return nil
}

// TestOperatorRunsWithTheChartsRBAC runs the operator in-process,
// authenticated as the chart's ServiceAccount (impersonation), with the
// chart's RBAC installed, leader election on as in the chart.
func TestOperatorRunsWithTheChartsRBAC(t *testing.T) {
	newNamespace(t, operatorNamespace)

	t.Run("with the chart's permissions it reconciles a Platform to Ready", func(t *testing.T) {
		sa := installChart(t, "full", nil)
		stop := startOperator(t, sa)
		defer stop()

		ns := newNamespace(t, fmt.Sprintf("rbac-full-%d", time.Now().UnixNano()%1000000))
		reconcileToReady(t, createPlatform(t, ns))
	})

	t.Run("without one permission it reports a clear error and keeps running", func(t *testing.T) {
		// Drop "patch" on NetworkPolicies: server-side apply needs it.
		sa := installChart(t, "minus", func(r *rbacv1.PolicyRule) {
			if slices.Contains(r.Resources, "networkpolicies") {
				r.Verbs = slices.DeleteFunc(r.Verbs, func(v string) bool { return v == "patch" })
			}
		})
		stop := startOperator(t, sa)
		defer stop()

		ns := newNamespace(t, fmt.Sprintf("rbac-minus-%d", time.Now().UnixNano()%1000000))
		p := createPlatform(t, ns)
		eventually(t, 60*time.Second, "Degraded=True naming the missing permission", func() error {
			return conditionIs(p, "Degraded", metav1.ConditionTrue, `cannot patch resource "networkpolicies"`)
		})
		if err := conditionIs(p, "Ready", metav1.ConditionTrue, ""); err == nil {
			t.Error("Ready=True without permission to apply the NetworkPolicies")
		}
		eventually(t, 30*time.Second, "a Warning Event ApplyFailed", func() error {
			var evs eventsv1.EventList
			if err := k8s.List(testCtx, &evs, client.InNamespace(ns)); err != nil {
				return err
			}
			for _, e := range evs.Items {
				if e.Type == "Warning" && e.Reason == "ApplyFailed" && strings.Contains(e.Note, "forbidden") {
					return nil
				}
			}
			return fmt.Errorf("no such Event among %d", len(evs.Items))
		})
	})
}

// TestOperatorRunsWithNamespaceScopedRBAC installs the chart in namespace
// mode (watchNamespaces) and runs the operator as its ServiceAccount with
// the --watch-namespaces the chart passes: the Roles are enough to
// reconcile a Platform to Ready in the watched namespace, and the operator
// can read no Secret, nor any Platform, anywhere else.
func TestOperatorRunsWithNamespaceScopedRBAC(t *testing.T) {
	newNamespace(t, operatorNamespace)
	suffix := time.Now().UnixNano() % 1000000
	watched := newNamespace(t, fmt.Sprintf("rbac-scoped-%d", suffix))
	other := newNamespace(t, fmt.Sprintf("rbac-elsewhere-%d", suffix))

	sa := installChart(t, "scoped", nil, "watchNamespaces={"+watched+"}")
	stop := startOperator(t, sa, watched)
	defer stop()
	p := createPlatform(t, watched)
	reconcileToReady(t, p)

	as := impersonate(t, sa)
	t.Run("it reads the Secrets of the watched namespace", func(t *testing.T) {
		if err := as.Get(testCtx, client.ObjectKey{Namespace: watched, Name: render.AuthSecretName(p)}, &corev1.Secret{}); err != nil {
			t.Errorf("reading the Platform's auth Secret: %v", err)
		}
	})
	t.Run("it cannot read Secrets or Platforms in another namespace", func(t *testing.T) {
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "not-for-the-operator", Namespace: other},
			StringData: map[string]string{"password": "elsewhere"},
		}
		if err := k8s.Create(testCtx, secret); err != nil {
			t.Fatal(err)
		}
		elsewhere := testgen.Platform("elsewhere", testgen.WithNamespace(other), testgen.WithWorkloads(v1alpha1.WorkloadCommerce))
		if err := k8s.Create(testCtx, elsewhere); err != nil {
			t.Fatal(err)
		}
		for what, err := range map[string]error{
			"get a Secret in " + other:   as.Get(testCtx, client.ObjectKeyFromObject(secret), &corev1.Secret{}),
			"list Secrets in " + other:   as.List(testCtx, &corev1.SecretList{}, client.InNamespace(other)),
			"list Secrets cluster-wide":  as.List(testCtx, &corev1.SecretList{}),
			"get a Platform in " + other: as.Get(testCtx, client.ObjectKeyFromObject(elsewhere), &v1alpha1.Platform{}),
		} {
			if !apierrors.IsForbidden(err) {
				t.Errorf("%s: err %v, want Forbidden", what, err)
			}
		}
	})
}

// TestKustomizeNamespacedOverlay: config/namespaced binds the generated
// ClusterRole in namespace demo only, keeps the cluster-scoped rules (and
// only those) in a ClusterRole of their own, equal to the generated ones,
// passes --watch-namespaces=demo, and the API server accepts it.
func TestKustomizeNamespacedOverlay(t *testing.T) {
	out := kustomizeBuild(t, "namespaced")
	out = bytes.ReplaceAll(out, []byte("controller:latest"), []byte("ghcr.io/switchboard-dev/switchboard:test"))
	objs := decode(t, out)

	generated := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(readFile(t, "config", "rbac", "role.yaml"), generated); err != nil {
		t.Fatal(err)
	}
	var clusterScoped []rbacv1.PolicyRule
	for _, r := range generated.Rules {
		if slices.Contains(r.Resources, "customresourcedefinitions") {
			clusterScoped = append(clusterScoped, r)
		}
	}
	const sa = "switchboard-controller-manager"
	bound := map[string]string{} // ClusterRole → where it is bound ("" = cluster-wide)
	for _, u := range find(objs, "ClusterRoleBinding") {
		b := toTyped[rbacv1.ClusterRoleBinding](t, u)
		bound[b.RoleRef.Name] += "cluster-wide "
	}
	for _, u := range find(objs, "RoleBinding") {
		b := toTyped[rbacv1.RoleBinding](t, u)
		if b.RoleRef.Kind == "ClusterRole" {
			bound[b.RoleRef.Name] += b.Namespace + " "
			if len(b.Subjects) != 1 || b.Subjects[0].Name != sa || b.Subjects[0].Namespace != "switchboard-system" {
				t.Errorf("RoleBinding %s/%s binds %+v", b.Namespace, b.Name, b.Subjects)
			}
		}
	}
	if want := map[string]string{"switchboard-manager-role": "demo ", "switchboard-manager-crd-reader": "cluster-wide "}; !maps.Equal(bound, want) {
		t.Errorf("ClusterRoles bound %v, want %v", bound, want)
	}
	for _, u := range find(objs, "ClusterRole") {
		cr := toTyped[rbacv1.ClusterRole](t, u)
		switch cr.Name {
		case "switchboard-manager-role":
			if !sameRules(cr.Rules, generated.Rules) {
				t.Errorf("%s differs from config/rbac/role.yaml", cr.Name)
			}
		case "switchboard-manager-crd-reader":
			if !sameRules(cr.Rules, clusterScoped) {
				t.Errorf("%s grants %+v; config/rbac/role.yaml's cluster-scoped rules are %+v", cr.Name, cr.Rules, clusterScoped)
			}
		}
	}
	if c := container(t, find(objs, "Deployment")[0]); !contains(c["args"], "--watch-namespaces=demo") {
		t.Errorf("operator args %v lack --watch-namespaces=demo", c["args"])
	}

	newNamespace(t, "demo")
	for _, u := range objs {
		if u.GetKind() == "Namespace" {
			labels := u.GetLabels()
			labels["pod-security.kubernetes.io/warn"] = "restricted"
			u.SetLabels(labels)
		}
	}
	apply(t, k8s, objs, "", persist)
}

// reconcileToReady waits for the operator to create every child of p,
// plays the kubelet, and waits for Ready=True without Degraded.
func reconcileToReady(t *testing.T, p *v1alpha1.Platform) {
	t.Helper()
	desired := expectedChildren(t, p)
	eventually(t, 60*time.Second, "every child of the Platform exists", func() error {
		for _, obj := range desired {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(obj.GetObjectKind().GroupVersionKind())
			if err := k8s.Get(testCtx, client.ObjectKeyFromObject(obj), u); err != nil {
				return fmt.Errorf("%s %s: %w (status: %s)", u.GetKind(), obj.GetName(), err, conditions(p))
			}
		}
		return nil
	})
	markReady(t, p)
	eventually(t, 60*time.Second, "Ready=True", func() error {
		return conditionIs(p, "Ready", metav1.ConditionTrue, "")
	})
	if err := conditionIs(p, "Degraded", metav1.ConditionFalse, ""); err != nil {
		t.Error(err)
	}
}

// installChart applies the chart's RBAC and ServiceAccount for release,
// rendered with the values set, with edit applied to each ClusterRole rule,
// and returns the ServiceAccount's user name.
func installChart(t *testing.T, release string, edit func(*rbacv1.PolicyRule), set ...string) string {
	t.Helper()
	var keep []*unstructured.Unstructured
	for _, u := range decode(t, helmTemplate(t, release, operatorNamespace, set...)) {
		switch u.GetKind() {
		case "ClusterRole":
			if edit != nil {
				cr := toTyped[rbacv1.ClusterRole](t, u)
				for i := range cr.Rules {
					edit(&cr.Rules[i])
				}
				m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cr)
				if err != nil {
					t.Fatal(err)
				}
				u = &unstructured.Unstructured{Object: m}
				u.SetAPIVersion("rbac.authorization.k8s.io/v1")
				u.SetKind("ClusterRole")
			}
			keep = append(keep, u)
		case "ServiceAccount", "ClusterRoleBinding", "Role", "RoleBinding":
			keep = append(keep, u)
		}
	}
	if k := kinds(keep); k["ServiceAccount"] != 1 || k["ClusterRole"] != 1 || k["ClusterRoleBinding"] != 1 ||
		k["Role"] == 0 || k["Role"] != k["RoleBinding"] {
		t.Fatalf("want a ServiceAccount, a ClusterRole and its binding, and Roles with their bindings; have %v", k)
	}
	apply(t, k8s, keep, operatorNamespace, persist)
	sa := find(keep, "ServiceAccount")[0].GetName()
	return "system:serviceaccount:" + operatorNamespace + ":" + sa
}

// impersonatedConfig is the suite's config acting as user.
func impersonatedConfig(user string) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: user}
	c.WarningHandler = nil
	return c
}

// impersonate returns a client acting as user, after proving impersonation
// is in force (user may not list ClusterRoles), so no result is trusted
// that the suite's own admin rights produced.
func impersonate(t *testing.T, user string) client.Client {
	t.Helper()
	as, err := client.New(impersonatedConfig(user), client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := as.List(testCtx, &rbacv1.ClusterRoleList{}); err == nil {
		t.Fatalf("%s may list ClusterRoles: impersonation is not in force", user)
	}
	return as
}

// startOperator runs the manager as cmd/manager configures it, as user,
// watching watchNamespaces (none: every namespace, as --watch-namespaces).
func startOperator(t *testing.T, user string, watchNamespaces ...string) (stop func()) {
	t.Helper()
	impersonate(t, user)
	c := impersonatedConfig(user)

	cacheOpts, err := controllers.CacheOptions(scheme)
	if err != nil {
		t.Fatal(err)
	}
	cacheOpts = controllers.WatchNamespaces(cacheOpts, watchNamespaces)
	mgr, err := ctrl.NewManager(c, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                true,
		LeaderElectionNamespace:       operatorNamespace,
		LeaderElectionID:              controllers.LeaderElectionID,
		LeaderElectionReleaseOnCancel: true,
		Cache:                         cacheOpts,
		// Each subtest starts its own manager with the same controller.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &controllers.PlatformReconciler{
		Client:        mgr.GetClient(),
		APIReader:     mgr.GetAPIReader(),
		Scheme:        scheme,
		Recorder:      mgr.GetEventRecorder("switchboard-operator"),
		ServicesImage: servicesImage,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() {
		// The manager must still be running: a missing permission is
		// reported, not fatal.
		select {
		case err := <-done:
			t.Errorf("the manager stopped on its own: %v", err)
		default:
		}
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("manager: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the manager did not stop within 30s")
		}
	}
}

func createPlatform(t *testing.T, ns string) *v1alpha1.Platform {
	t.Helper()
	p := testgen.Platform("shop", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce),
		testgen.WithService("order", testgen.Replicas(2)))
	if err := k8s.Create(testCtx, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// expectedChildren renders p as the operator does, once its Secret exists.
func expectedChildren(t *testing.T, p *v1alpha1.Platform) []client.Object {
	t.Helper()
	var creds render.Credentials
	eventually(t, 60*time.Second, "the operator writes the auth Secret", func() error {
		s := &corev1.Secret{}
		if err := k8s.Get(testCtx, client.ObjectKey{Namespace: p.Namespace, Name: render.AuthSecretName(p)}, s); err != nil {
			return fmt.Errorf("%w (status: %s)", err, conditions(p))
		}
		var ok bool
		if creds, ok = render.CredentialsFromSecret(s); !ok {
			return errors.New("incomplete Secret")
		}
		return nil
	})
	if err := k8s.Get(testCtx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	// Keys and admin do not affect names.
	keys := render.TokenKeys{}
	for _, name := range render.KeyNames(p) {
		keys[name] = testgen.TokenKey(name)
	}
	users, _, err := (&render.BrokerUserKeeper{Cost: bcrypt.MinCost}).Keep(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	identity, _, err := render.KeepIdentity(p, render.Identity{}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := render.Platform(p, render.Options{ServicesImage: servicesImage, Credentials: creds, BrokerUsers: users, Identity: identity,
		TokenKeys: keys, Admin: render.Admin{Email: "names@example.com", Password: "password-for-names-only"}})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// markReady plays the kubelet and the workload controllers for p.
func markReady(t *testing.T, p *v1alpha1.Platform) {
	t.Helper()
	if err := testenv.MarkReady(testCtx, k8s, p); err != nil {
		t.Fatal(err)
	}
}

// conditionIs re-reads p and checks one condition's status and, if
// message is set, that its message contains it.
func conditionIs(p *v1alpha1.Platform, typ string, status metav1.ConditionStatus, message string) error {
	if err := k8s.Get(testCtx, client.ObjectKeyFromObject(p), p); err != nil {
		return err
	}
	c := meta.FindStatusCondition(p.Status.Conditions, typ)
	if c == nil || c.Status != status || !strings.Contains(c.Message, message) {
		return fmt.Errorf("want %s=%s with message containing %q; conditions: %s", typ, status, message, conditions(p))
	}
	return nil
}

func conditions(p *v1alpha1.Platform) string {
	var parts []string
	for _, c := range p.Status.Conditions {
		parts = append(parts, fmt.Sprintf("%s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

func toTyped[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func ruleEqual(a, b rbacv1.PolicyRule) bool {
	return slices.Equal(a.APIGroups, b.APIGroups) && slices.Equal(a.Resources, b.Resources) &&
		slices.Equal(a.Verbs, b.Verbs) && slices.Equal(a.ResourceNames, b.ResourceNames) &&
		slices.Equal(a.NonResourceURLs, b.NonResourceURLs)
}
