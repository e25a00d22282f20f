package controllers_test

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/switchboard-dev/switchboard/internal/render"
)

// childVerbs are what the reconciler does to a child kind: its cache gets,
// lists and watches it, apply patches it and prune deletes it.
var childVerbs = []string{"get", "list", "watch", "patch", "delete"}

// The RBAC markers on the reconciler generate the operator's ClusterRole
// (config/rbac, and the chart's copy). They must grant the child verbs on
// every kind render.ChildKinds lists, and write access to nothing else but
// the Platform's status and Events.
func TestRBACMarkersGrantEveryChildKindAndNothingElse(t *testing.T) {
	grants := rbacMarkers(t, "platform_controller.go")
	children := map[schema.GroupResource]bool{}
	for _, gvk := range render.ChildKinds() {
		m, err := k8s.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s: %v", gvk, err)
		}
		gr := m.Resource.GroupResource()
		children[gr] = true
		for _, v := range childVerbs {
			if !slices.Contains(grants[gr], v) {
				t.Errorf("render.ChildKinds lists %s, but no +kubebuilder:rbac marker grants %q on %s", gvk.Kind, v, gr)
			}
		}
	}
	others := map[schema.GroupResource]bool{
		{Group: "platform.switchboard.dev", Resource: "platforms"}:        true,
		{Group: "platform.switchboard.dev", Resource: "platforms/status"}: true,
		{Group: "events.k8s.io", Resource: "events"}:                      true,
	}
	for gr, verbs := range grants {
		if !children[gr] && !others[gr] {
			t.Errorf("a +kubebuilder:rbac marker grants %v on %s, which is not in render.ChildKinds", verbs, gr)
		}
	}
}

// rbacMarkers reads the +kubebuilder:rbac markers of a Go file, as verbs by
// group and resource.
func rbacMarkers(t *testing.T, file string) map[schema.GroupResource][]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	grants := map[schema.GroupResource][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		marker, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "// +kubebuilder:rbac:")
		if !ok {
			continue
		}
		args := map[string][]string{}
		for _, kv := range strings.Split(marker, ",") {
			k, v, _ := strings.Cut(kv, "=")
			args[k] = strings.Split(strings.Trim(v, `"`), ";")
		}
		for _, g := range args["groups"] {
			for _, r := range args["resources"] {
				gr := schema.GroupResource{Group: g, Resource: r}
				grants[gr] = append(grants[gr], args["verbs"]...)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(grants) == 0 {
		t.Fatalf("%s has no +kubebuilder:rbac markers", file)
	}
	return grants
}
