package render

import (
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/testgen"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
)

func TestObservabilityEnv(t *testing.T) {
	const jaeger = "http://jaeger-collector.observability:4317"
	tests := []struct {
		name     string
		platform *v1alpha1.Platform
		want     map[string]string
	}{
		{"nothing set: no tracing env, so every trace is kept in memory only", platform("shop"), map[string]string{}},
		{"an endpoint alone: exported, every trace", platform("shop", testgen.WithObservability(jaeger, "")),
			map[string]string{catalog.EnvOTLPEndpoint: jaeger}},
		{"one trace in a hundred", platform("shop", testgen.WithObservability(jaeger, "0.01")),
			map[string]string{catalog.EnvOTLPEndpoint: jaeger, catalog.EnvTracesSampler: "parentbased_traceidratio", catalog.EnvTracesSamplerArg: "0.01"}},
		{"a ratio alone, written canonically", platform("shop", testgen.WithObservability("", "1.000")),
			map[string]string{catalog.EnvTracesSampler: "parentbased_traceidratio", catalog.EnvTracesSamplerArg: "1"}},
		{"no trace at all", platform("shop", testgen.WithObservability("", "0")),
			map[string]string{catalog.EnvTracesSampler: "parentbased_traceidratio", catalog.EnvTracesSamplerArg: "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := mustRender(t, tt.platform)
			for _, svc := range catalog.Names(catalog.ForWorkloads(tt.platform.Spec.Workloads...)) {
				d := find[*appsv1.Deployment](t, objs, ObjectName(tt.platform, svc))
				got := map[string]string{}
				for _, e := range d.Spec.Template.Spec.Containers[0].Env {
					if strings.HasPrefix(e.Name, "OTEL_") {
						got[e.Name] = e.Value
					}
				}
				if !equality.Semantic.DeepEqual(got, tt.want) {
					t.Errorf("%s: %v, want %v", svc, got, tt.want)
				}
				// What the operator renders, the service accepts.
				env := map[string]string{}
				for k, v := range got {
					env[k] = v
				}
				if _, err := kit.LoadTracingConfig(kit.MapEnv(env)); err != nil {
					t.Errorf("%s: the service refuses its env: %v", svc, err)
				}
			}
		})
	}
}

func TestObservabilityErrors(t *testing.T) {
	for _, c := range []struct {
		name, endpoint, ratio string
		to                    []networkingv1.NetworkPolicyPeer
		want                  string
	}{
		{"a ratio above 1", "", "1.5", nil, `spec.observability.samplingRatio: "1.5" is not a ratio from 0 to 1`},
		{"a negative ratio", "", "-0.1", nil, "spec.observability.samplingRatio"},
		{"a percentage", "", "10%", nil, "spec.observability.samplingRatio"},
		{"seven decimals", "", "0.0000001", nil, "at most 6 decimals"},
		{"an endpoint without a scheme", "jaeger:4317", "", nil, `spec.observability.otlpEndpoint: "jaeger:4317" is not a collector URL with its port`},
		{"an endpoint without a port", "http://jaeger", "", nil, "spec.observability.otlpEndpoint"},
		{"an endpoint with a port out of range", "http://jaeger:99999", "", nil, "spec.observability.otlpEndpoint"},
		{"an empty collector peer", "http://jaeger:4317", "", []networkingv1.NetworkPolicyPeer{{}}, "spec.observability.collectorTo[0]: needs an ipBlock"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Platform(platform("shop", testgen.WithObservability(c.endpoint, c.ratio, c.to...)), testOptions())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestCollectorEgress(t *testing.T) {
	collectorNS := namespacePeer("observability")
	rule := func(to ...networkingv1.NetworkPolicyPeer) networkingv1.NetworkPolicyEgressRule {
		return networkingv1.NetworkPolicyEgressRule{To: to, Ports: []networkingv1.NetworkPolicyPort{
			{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(4317))}}}
	}
	for _, c := range []struct {
		name     string
		platform *v1alpha1.Platform
		want     *networkingv1.NetworkPolicyEgressRule
	}{
		{"no endpoint: no rule", platform("shop"), nil},
		{"an endpoint: its port, anywhere", platform("shop", testgen.WithObservability("http://jaeger.observability:4317", "")), ptr.To(rule())},
		{"an endpoint and where it runs", platform("shop", testgen.WithObservability("https://jaeger.observability:4317/", "0.5", collectorNS)), ptr.To(rule(collectorNS))},
	} {
		t.Run(c.name, func(t *testing.T) {
			objs := mustRender(t, c.platform)
			for _, svc := range catalog.Names(catalog.ForWorkloads(c.platform.Spec.Workloads...)) {
				np := find[*networkingv1.NetworkPolicy](t, objs, ObjectName(c.platform, svc))
				var found *networkingv1.NetworkPolicyEgressRule
				for i, r := range np.Spec.Egress {
					for _, port := range r.Ports {
						if port.Port != nil && port.Port.IntValue() == 4317 {
							found = &np.Spec.Egress[i]
						}
					}
				}
				if !equality.Semantic.DeepEqual(found, c.want) {
					g, _ := json.Marshal(found)
					w, _ := json.Marshal(c.want)
					t.Errorf("%s: collector rule %s, want %s", svc, g, w)
				}
			}
		})
	}
	// With NetworkPolicies off there is nothing to open.
	for _, o := range mustRender(t, platform("shop", testgen.WithNetworkPolicy(false), testgen.WithObservability("http://jaeger:4317", ""))) {
		if _, ok := o.(*networkingv1.NetworkPolicy); ok {
			t.Fatalf("a NetworkPolicy %s with networkPolicy disabled", o.GetName())
		}
	}
}
