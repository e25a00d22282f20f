package controllers_test

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/internal/testgen"
)

// The API server takes a collector URL with its port and a sampling ratio
// from 0 to 1, and refuses the rest before the operator sees it.
func TestObservabilitySpecIsValidated(t *testing.T) {
	ns := newNamespace(t)
	observability := &networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "observability"}}}
	for _, tt := range []struct {
		endpoint, ratio string
		to              []networkingv1.NetworkPolicyPeer
		ok              bool
	}{
		{"http://jaeger-collector.observability:4317", "0.01", []networkingv1.NetworkPolicyPeer{*observability}, true},
		{"https://otel.example.com:4317/", "1", nil, true},
		{"", "0", nil, true},
		{"", "1.000000", nil, true},
		{"", "1.5", nil, false},
		{"", "0.0000001", nil, false},
		{"", "ten percent", nil, false},
		{"", "-0", nil, false},
		{"jaeger:4317", "", nil, false},
		{"http://jaeger", "", nil, false},
		{"http://user:pw@jaeger:4317", "", nil, false},
		{"http://jaeger:4317", "", []networkingv1.NetworkPolicyPeer{{}}, false},
	} {
		p := testgen.Platform("traced", testgen.WithNamespace(ns), testgen.WithObservability(tt.endpoint, tt.ratio, tt.to...))
		err := k8s.Create(testCtx, p, client.DryRunAll)
		if (err == nil) != tt.ok {
			t.Errorf("otlpEndpoint %q samplingRatio %q collectorTo %v: accepted=%v, want %v (%v)", tt.endpoint, tt.ratio, tt.to, err == nil, tt.ok, err)
		}
	}
}
