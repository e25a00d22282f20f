package controllers_test

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/switchboard-dev/switchboard/internal/render"
)

// childVerbs are what the reconciler does to a child kind: its cache gets,
// lists and watches it, apply patches it and prune deletes it.
var childVerbs = []string{"get", "list", "watch", "patch", "delete"}

// readVerbs are all the operator may do to what it only observes.
var readVerbs = []string{"get", "list", "watch"}

// The RBAC markers of the controllers package generate the operator's
// ClusterRole (config/rbac, and the chart's copy). They must grant the
// child verbs on every kind render.ChildKinds lists, read access to what
// the reconciler observes (pods and claims, for why they do not start;
// the optional kinds' CRDs, by name), and write access to nothing else but
// the Platform's status and Events.
func TestRBACMarkersGrantEveryChildKindAndNothingElse(t *testing.T) {
	grants := rbacMarkers(t)
	children := map[schema.GroupResource]bool{}
	for _, gvk := range render.ChildKinds() {
		gr := childResource(t, gvk)
		children[gr] = true
		for _, v := range childVerbs {
			if !slices.Contains(grants[gr].verbs, v) {
				t.Errorf("render.ChildKinds lists %s, but no +kubebuilder:rbac marker grants %q on %s", gvk.Kind, v, gr)
			}
		}
	}
	others := map[schema.GroupResource]bool{
		{Group: "platform.switchboard.dev", Resource: "platforms"}:        true,
		{Group: "platform.switchboard.dev", Resource: "platforms/status"}: true,
		{Group: "events.k8s.io", Resource: "events"}:                      true,
	}
	readOnly := map[schema.GroupResource][]string{
		{Resource: "pods"}:                   nil,
		{Resource: "persistentvolumeclaims"}: nil,
		{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"}: optionalCRDs(),
	}
	for gr, g := range grants {
		names, isReadOnly := readOnly[gr]
		switch {
		case children[gr] || others[gr]:
		case !isReadOnly:
			t.Errorf("a +kubebuilder:rbac marker grants %v on %s, which is not in render.ChildKinds", g.verbs, gr)
		case !isSubset(g.verbs, readVerbs):
			t.Errorf("a +kubebuilder:rbac marker grants %v on %s, which the operator only reads", g.verbs, gr)
		case !slices.Equal(g.resourceNames, names):
			t.Errorf("the grant on %s names %v, want %v", gr, g.resourceNames, names)
		}
	}
}

// childResource maps a child kind to its resource: through the API
// server for the kinds it always serves, through the CRD's name
// (<plural>.<group>) for an optional kind, whose CRD this suite does not
// install for every test.
func childResource(t *testing.T, gvk schema.GroupVersionKind) schema.GroupResource {
	t.Helper()
	if crd, optional := render.OptionalKindCRD(gvk); optional {
		plural, group, _ := strings.Cut(crd, ".")
		if group != gvk.Group {
			t.Fatalf("CRD %s does not serve group %s", crd, gvk.Group)
		}
		return schema.GroupResource{Group: group, Resource: plural}
	}
	m, err := k8s.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		t.Fatalf("%s: %v", gvk, err)
	}
	return m.Resource.GroupResource()
}

func optionalCRDs() []string {
	var names []string
	for _, gvk := range render.ChildKinds() {
		if crd, ok := render.OptionalKindCRD(gvk); ok {
			names = append(names, crd)
		}
	}
	return names
}

func isSubset(have, of []string) bool {
	for _, v := range have {
		if !slices.Contains(of, v) {
			return false
		}
	}
	return true
}

// grant is what the +kubebuilder:rbac markers give on one resource.
type grant struct {
	verbs         []string
	resourceNames []string
}

// rbacMarkers reads the +kubebuilder:rbac markers of the package's Go
// files (controller-gen reads them all), by group and resource.
func rbacMarkers(t *testing.T) map[schema.GroupResource]grant {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	grants := map[schema.GroupResource]grant{}
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
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
					have := grants[gr]
					have.verbs = append(have.verbs, args["verbs"]...)
					have.resourceNames = append(have.resourceNames, args["resourceNames"]...)
					grants[gr] = have
				}
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if len(grants) == 0 {
		t.Fatal("the controllers package has no +kubebuilder:rbac markers")
	}
	return grants
}
