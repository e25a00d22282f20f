package render

import (
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// serverMetadata are the metadata fields only the API server sets.
var serverMetadata = []string{"creationTimestamp", "resourceVersion", "uid", "generation", "managedFields"}

// Applied turns a desired object into the map that is applied: the operator
// sends it with server-side apply and `switchboard render` prints it, so
// what a user reviews is what the operator writes. It holds no status, none
// of the metadata the server sets, and no nulls: in an apply, a null means
// "remove this field", and Go types marshal unset fields of embedded
// metadata (pod and claim templates) as null.
func Applied(obj client.Object) (map[string]any, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	if meta, ok := m["metadata"].(map[string]any); ok {
		for _, k := range serverMetadata {
			delete(meta, k)
		}
	}
	dropServerFields(m)
	return m, nil
}

// dropServerFields removes, at any depth, nulls and the empty status of
// embedded objects (a StatefulSet's claim templates).
func dropServerFields(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if st, ok := e.(map[string]any); e == nil || (k == "status" && ok && len(st) == 0) {
				delete(t, k)
				continue
			}
			dropServerFields(e)
		}
	case []any:
		for _, e := range t {
			dropServerFields(e)
		}
	}
}
