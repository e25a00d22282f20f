package render

import (
	"bytes"
	"fmt"
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

// Applied is what the operator sends, so it may hold no null (which would
// remove a field), no status and none of the metadata the server owns, even
// when the object carries them.
func TestAppliedHoldsOnlyWhatTheOperatorOwns(t *testing.T) {
	for _, obj := range mustRender(t, fullPlatform()) {
		obj.SetResourceVersion("42")
		obj.SetUID("0000-live")
		obj.SetGeneration(7)
		m, err := Applied(obj)
		if err != nil {
			t.Fatal(err)
		}
		meta := m["metadata"].(map[string]any)
		for _, k := range serverMetadata {
			if _, ok := meta[k]; ok {
				t.Errorf("%s: metadata.%s is applied", ref(obj), k)
			}
		}
		if path := findServerField(m, ""); path != "" {
			t.Errorf("%s: %s is applied", ref(obj), path)
		}
	}
}

// findServerField returns the path of the first null or status under v.
func findServerField(v any, path string) string {
	switch t := v.(type) {
	case nil:
		return path + " (null)"
	case map[string]any:
		for k, e := range t {
			if k == "status" {
				return path + ".status"
			}
			if p := findServerField(e, path+"."+k); p != "" {
				return p
			}
		}
	case []any:
		for i, e := range t {
			if p := findServerField(e, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}
