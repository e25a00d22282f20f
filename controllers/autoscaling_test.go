package controllers_test

import (
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/testgen"
)

// A memory target reaches the API server as a second resource metric of the
// HPA, and the API server's defaults do not make a second reconcile write.
func TestMemoryTargetReachesTheHPA(t *testing.T) {
	ns := newNamespace(t)
	r, counter := newDirectReconciler(t)
	p := createAndReconcile(t, r, testgen.Platform("mem", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce),
		testgen.WithService("order", testgen.Autoscaling(1, 4, 60), testgen.MemoryTarget(80))))

	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	mustGet(t, ns, "mem-order", hpa)
	targets := map[corev1.ResourceName]int32{}
	for _, m := range hpa.Spec.Metrics {
		if m.Resource != nil && m.Resource.Target.AverageUtilization != nil {
			targets[m.Resource.Name] = *m.Resource.Target.AverageUtilization
		}
	}
	if len(targets) != 2 || targets[corev1.ResourceCPU] != 60 || targets[corev1.ResourceMemory] != 80 {
		t.Errorf("HPA utilization targets %v, want cpu 60 and memory 80", targets)
	}

	counter.reset()
	reconcile(t, r, p)
	if n := counter.writes.Load(); n != 0 {
		t.Errorf("a no-op reconcile sent %d writes (last: %v)", n, counter.last.Load())
	}
}
