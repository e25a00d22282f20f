package catalog_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// Every route a service registers is a public route of the catalog, so
// nothing a service serves escapes the table: a new route must say who may
// call it. Operations only services call are internal gRPC methods
// (InternalMethods), never REST routes. (The gateway's own routes come from
// the table itself.)
func TestEveryServedRouteIsDeclared(t *testing.T) {
	declared := map[string]bool{}
	for _, r := range catalog.Routes() {
		declared[r.Service+" "+r.Method+" "+r.ServicePath()] = true
	}
	for _, svc := range catalog.All() {
		if svc.Name == catalog.Gateway {
			continue
		}
		t.Run(svc.Name, func(t *testing.T) {
			patterns := servedPatterns(t, filepath.Join("..", svc.Name))
			if len(patterns) == 0 {
				t.Fatalf("services/%s registers no route", svc.Name)
			}
			for _, p := range patterns {
				if !declared[svc.Name+" "+p] {
					t.Errorf("%s serves %q, which is not a route of the catalog (an operation only services call is an internal gRPC method)", svc.Name, p)
				}
			}
		})
	}
}

// servedPatterns lists the ServeMux patterns the non-test files of dir
// register with mux.Handle or mux.HandleFunc.
func servedPatterns(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				t.Errorf("%s: a route registered with a pattern that is not a literal", e.Name())
				return true
			}
			p, _ := strconv.Unquote(lit.Value)
			out = append(out, p)
			return true
		})
	}
	return out
}
