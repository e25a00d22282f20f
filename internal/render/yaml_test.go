package render

import (
	"bytes"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

func TestWriteYAMLRoundTrips(t *testing.T) {
	objs := mustRender(t, fullPlatform())
	var buf bytes.Buffer
	if err := WriteYAML(&buf, objs); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.HasPrefix(out, "---\n") {
		t.Errorf("output does not start with a document separator")
	}
	docs := strings.Split(strings.TrimPrefix(out, "---\n"), "\n---\n")
	if len(docs) != len(objs) {
		t.Fatalf("%d documents for %d objects", len(docs), len(objs))
	}
	decode := scheme.Codecs.UniversalDeserializer().Decode
	for i, doc := range docs {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		if _, ok := m["status"]; ok {
			t.Errorf("document %d (%s) has a status", i, ref(objs[i]))
		}
		if strings.Contains(doc, "creationTimestamp") {
			t.Errorf("document %d (%s) has a creationTimestamp", i, ref(objs[i]))
		}
		got, _, err := decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("document %d does not decode: %v", i, err)
		}
		if !equality.Semantic.DeepEqual(got, objs[i]) {
			t.Errorf("document %d does not decode to %s", i, ref(objs[i]))
		}
	}
}
