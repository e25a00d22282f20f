package packaging

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
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
		p := createPlatform(t, ns)
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

// installChart applies the chart's RBAC and ServiceAccount for release, with
// edit applied to each ClusterRole rule, and returns the ServiceAccount's
// user name.
func installChart(t *testing.T, release string, edit func(*rbacv1.PolicyRule)) string {
	t.Helper()
	var keep []*unstructured.Unstructured
	for _, u := range decode(t, helmTemplate(t, release, operatorNamespace)) {
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
	if len(keep) != 5 {
		t.Fatalf("want a ServiceAccount, ClusterRole, ClusterRoleBinding, Role and RoleBinding; have %d objects", len(keep))
	}
	apply(t, k8s, keep, operatorNamespace, persist)
	sa := find(keep, "ServiceAccount")[0].GetName()
	return "system:serviceaccount:" + operatorNamespace + ":" + sa
}

// startOperator runs the manager as cmd/manager configures it, as user.
func startOperator(t *testing.T, user string) (stop func()) {
	t.Helper()
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: user}
	c.WarningHandler = nil

	// Prove impersonation is in force before trusting any result.
	as, err := client.New(c, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := as.List(testCtx, &rbacv1.ClusterRoleList{}); err == nil {
		t.Fatalf("%s may list ClusterRoles: impersonation is not in force", user)
	}

	cacheOpts, err := controllers.CacheOptions(scheme)
	if err != nil {
		t.Fatal(err)
	}
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
