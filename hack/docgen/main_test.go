package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDocsAreCurrent fails when docs/api.md, the generated tables of
// docs/architecture.md or the generated markers of api/v1alpha1 differ from
// what the CRD and the catalog say.
func TestDocsAreCurrent(t *testing.T) {
	root := filepath.Join("..", "..")
	files, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range files {
		have, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		if string(have) != want {
			t.Errorf("%s is stale: run `make api-docs` and commit it", path)
		}
	}
}
