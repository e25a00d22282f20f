package render

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/switchboard-dev/switchboard/internal/testgen"
)

// The operator watches, caches and prunes the kinds ChildKinds lists: a kind
// rendered but not listed would drift unnoticed and never be pruned, and a
// kind listed but never rendered would cost a watch and a grant for nothing.
func TestEveryRenderedKindIsAChildKind(t *testing.T) {
	p := platform("kinds", testgen.WithBrokerReplicas(3), testgen.WithService("order", testgen.Replicas(2)))
	rendered := map[schema.GroupVersionKind]bool{}
	for _, obj := range mustRenderWithKEDA(t, p) {
		gvk := obj.GetObjectKind().GroupVersionKind()
		rendered[gvk] = true
		if !slices.Contains(ChildKinds(), gvk) {
			t.Errorf("render produces %s, which ChildKinds does not list", gvk)
		}
	}
	for _, gvk := range ChildKinds() {
		if !rendered[gvk] {
			t.Errorf("ChildKinds lists %s, which a Platform with every part switched on, KEDA installed, does not render", gvk)
		}
	}
}

// Render produces an optional kind only where its CRD is installed.
func TestOptionalKindsNeedTheirCRD(t *testing.T) {
	for _, obj := range mustRender(t, platform("kinds")) {
		if crd, optional := OptionalKindCRD(obj.GetObjectKind().GroupVersionKind()); optional {
			t.Errorf("render produces %s without its CRD %s", ref(obj), crd)
		}
	}
	if crd, ok := OptionalKindCRD(ScaledObjectKind); !ok || crd != "scaledobjects.keda.sh" {
		t.Errorf("OptionalKindCRD(ScaledObject) = %q, %v", crd, ok)
	}
}
