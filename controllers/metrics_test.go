package controllers_test

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/testgen"
)

// The CRD defaults the broker's metrics sidecar on; metricsFrom reaches the
// API server's NetworkPolicies as given; and neither makes a second
// reconcile write anything (no server-side default fights the render).
func TestBrokerMetricsAndMetricsFromReachTheCluster(t *testing.T) {
	ns := newNamespace(t)
	r, counter := newDirectReconciler(t)
	peers := []networkingv1.NetworkPolicyPeer{
		{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "prometheus"}},
		},
		{IPBlock: &networkingv1.IPBlock{CIDR: "10.20.0.0/16", Except: []string{"10.20.1.0/24"}}},
	}
	p := createAndReconcile(t, r, testgen.Platform("obs", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithMetricsFrom(peers...)))
	if got := p.Spec.Broker.Metrics.Enabled; got == nil || !*got {
		t.Errorf("spec.broker.metrics.enabled defaulted to %v, want true", got)
	}

	sts := &appsv1.StatefulSet{}
	mustGet(t, ns, "obs-nats", sts)
	var names []string
	for _, c := range sts.Spec.Template.Spec.Containers {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"nats", "metrics"}) {
		t.Errorf("broker containers %v, want nats and its metrics sidecar", names)
	}

	for name, port := range map[string]string{"obs-order": "ops", "obs-gateway": "ops", "obs-nats": "metrics"} {
		np := &networkingv1.NetworkPolicy{}
		mustGet(t, ns, name, np)
		rule := np.Spec.Ingress[len(np.Spec.Ingress)-1]
		if !equality.Semantic.DeepEqual(rule.From, peers) || len(rule.Ports) != 1 || rule.Ports[0].Port.String() != port {
			t.Errorf("%s: last rule %+v, want the metricsFrom peers on port %s", name, rule, port)
		}
	}

	before := resourceVersions(t, p)
	counter.reset()
	reconcile(t, r, p)
	if n := counter.writes.Load(); n != 0 {
		t.Errorf("a no-op reconcile sent %d writes (last: %v)", n, counter.last.Load())
	}
	for ref, rv := range resourceVersions(t, p) {
		if before[ref] != rv {
			t.Errorf("%s changed on a no-op reconcile", ref)
		}
	}

	t.Run("switching the sidecar off removes it and its policy rule", func(t *testing.T) {
		p := get(t, p)
		p.Spec.Broker.Metrics.Enabled = ptr.To(false)
		if err := k8s.Update(testCtx, p); err != nil {
			t.Fatal(err)
		}
		reconcile(t, r, p)
		mustGet(t, ns, "obs-nats", sts)
		if n := len(sts.Spec.Template.Spec.Containers); n != 1 {
			t.Errorf("%d broker containers, want 1", n)
		}
		np := &networkingv1.NetworkPolicy{}
		mustGet(t, ns, "obs-nats", np)
		for _, rule := range np.Spec.Ingress {
			for _, port := range rule.Ports {
				if port.Port.String() == "metrics" {
					t.Errorf("the broker's policy still admits port metrics: %+v", rule)
				}
			}
		}
	})
}
