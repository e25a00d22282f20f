package render

import (
	"encoding/json"
	"fmt"
	"io"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// WriteYAML writes objs as a multi-document YAML stream, each document
// preceded by "---": each object exactly as the operator applies it
// (Applied), so `kubectl apply -f -` takes the output as is.
func WriteYAML(w io.Writer, objs []client.Object) error {
	for _, obj := range objs {
		m, err := Applied(obj)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", obj.GetName(), err)
		}
		b, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", obj.GetName(), err)
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
