package catalog_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// servicesPath is the import path every service package lives under.
const servicesPath = "github.com/switchboard-dev/switchboard/services/"

// Services talk to each other over REST and through the contracts of
// services/events, never by importing each other: a service's code must
// build, change and deploy without another's. Tests may import other
// services to run them.
func TestNoServiceImportsAnother(t *testing.T) {
	names := catalog.Names(catalog.All())
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("..", name)
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			files := 0
			for _, e := range entries {
				if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
					continue
				}
				files++
				f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, e.Name()), nil, parser.ImportsOnly)
				if err != nil {
					t.Fatal(err)
				}
				for _, imp := range f.Imports {
					path, _ := strconv.Unquote(imp.Path.Value)
					other, ok := strings.CutPrefix(path, servicesPath)
					if ok && other != name && slices.Contains(names, strings.SplitN(other, "/", 2)[0]) {
						t.Errorf("%s imports service %s", e.Name(), other)
					}
				}
			}
			if files == 0 {
				t.Fatalf("no Go files in services/%s", name)
			}
		})
	}
}
