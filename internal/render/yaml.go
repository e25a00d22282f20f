package render

import (
	"encoding/json"
	"fmt"
	"io"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// WriteYAML writes objs as a multi-document YAML stream, each document
// preceded by "---". Status and the empty creationTimestamp Go types
// marshal are dropped, so `kubectl apply -f -` takes the output as is.
func WriteYAML(w io.Writer, objs []client.Object) error {
	for _, obj := range objs {
		b, err := json.Marshal(obj)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", obj.GetName(), err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		delete(m, "status")
		stripServerFields(m)
		b, err = json.Marshal(m)
		if err != nil {
			return err
		}
		y, err := yaml.JSONToYAML(b)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", obj.GetName(), err)
		}
		if _, err := fmt.Fprintf(w, "---\n%s", y); err != nil {
			return err
		}
	}
	return nil
}

// stripServerFields removes, at any depth, the null creationTimestamp of
// embedded ObjectMeta (pod and claim templates) and the empty status of
// claim templates: fields only the server sets.
func stripServerFields(v any) {
	switch t := v.(type) {
	case map[string]any:
		if ts, ok := t["creationTimestamp"]; ok && ts == nil {
			delete(t, "creationTimestamp")
		}
		if st, ok := t["status"].(map[string]any); ok && len(st) == 0 {
			delete(t, "status")
		}
		for _, e := range t {
			stripServerFields(e)
		}
	case []any:
		for _, e := range t {
			stripServerFields(e)
		}
	}
}
