package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// The layers table of docs/architecture.md is the rule for who may import
// whom inside the module. These tests hold the code to it and it to the
// code: an import the table does not allow fails, and so does a row that
// allows an import nothing uses, so the drawing cannot drift from the tree.

const (
	modulePath  = "github.com/switchboard-dev/switchboard/"
	layersBegin = "<!-- BEGIN layers"
	layersEnd   = "<!-- END layers -->"
	// anything, in the imports column, lets a row import any package.
	anything = "anything"
	// servicePlaceholder stands for any service of the catalog.
	servicePlaceholder = "<service>"
)

// layerRule is one row: packages matching pattern may import mayImport.
type layerRule struct {
	pattern   string
	mayImport []string
}

func TestPackageLayers(t *testing.T) {
	root := filepath.Join("..", "..")
	rules := readLayerRules(t, filepath.Join(root, architecturePath))
	imports := moduleImports(t, root)

	used := map[string]map[string]bool{} // rule pattern → allowed patterns used
	for pkg, deps := range imports {
		rule, ok := ruleFor(rules, pkg)
		if !ok {
			t.Errorf("package %s has no row in the layers table of %s: add one", pkg, architecturePath)
			continue
		}
		if used[rule.pattern] == nil {
			used[rule.pattern] = map[string]bool{}
		}
		for _, dep := range deps {
			allowed := ""
			for _, p := range rule.mayImport {
				if p == anything || matches(p, dep) {
					allowed = p
					break
				}
			}
			if allowed == "" {
				t.Errorf("%s imports %s, which its row (%s) in %s does not allow", pkg, dep, rule.pattern, architecturePath)
				continue
			}
			used[rule.pattern][allowed] = true
		}
	}
	for _, r := range rules {
		for _, p := range r.mayImport {
			if p != anything && !used[r.pattern][p] {
				t.Errorf("the row %s of %s allows %s, which none of its packages imports: drop it", r.pattern, architecturePath, p)
			}
		}
	}
}

func TestLayerPatterns(t *testing.T) {
	for _, tc := range []struct {
		pattern, pkg string
		want         bool
	}{
		{"services/kit", "services/kit", true},
		{"services/kit", "services/kit/kittest", false},
		{"gen/...", "gen/switchboard/payment/v1", true},
		{"gen/...", "gen", true},
		{"gen/...", "generator", false},
		{"services/<service>", "services/order", true},
		{"services/<service>", "services/gateway", true},
		{"services/<service>", "services/kit", false},
		{"services/<service>", "services/order/internal", false},
	} {
		if got := matches(tc.pattern, tc.pkg); got != tc.want {
			t.Errorf("matches(%q, %q) = %v, want %v", tc.pattern, tc.pkg, got, tc.want)
		}
	}
}

// readLayerRules parses the rows between the layers markers.
func readLayerRules(t *testing.T, path string) []layerRule {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rules []layerRule
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, layersBegin):
			in = true
			continue
		case line == layersEnd:
			in = false
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 2 {
			t.Fatalf("%s: layers row %q: want two cells", path, line)
		}
		r := layerRule{pattern: strings.Trim(strings.TrimSpace(cells[0]), "`")}
		for _, p := range strings.Split(cells[1], ",") {
			if p = strings.Trim(strings.TrimSpace(p), "`"); p != "" {
				r.mayImport = append(r.mayImport, p)
			}
		}
		rules = append(rules, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rules) == 0 {
		t.Fatalf("%s has no layers table between %q and %q", path, layersBegin, layersEnd)
	}
	return rules
}

// moduleImports lists, for every package of the module, the packages of the
// module its non-test files import, both without the module path.
func moduleImports(t *testing.T, root string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, ok := strings.CutPrefix(fields[0], modulePath)
		if !ok {
			t.Fatalf("go list: %s is outside module %s", fields[0], modulePath)
		}
		imports[pkg] = nil
		for _, dep := range fields[1:] {
			if d, ok := strings.CutPrefix(dep, modulePath); ok {
				imports[pkg] = append(imports[pkg], d)
			}
		}
	}
	return imports
}

func ruleFor(rules []layerRule, pkg string) (layerRule, bool) {
	i := slices.IndexFunc(rules, func(r layerRule) bool { return matches(r.pattern, pkg) })
	if i < 0 {
		return layerRule{}, false
	}
	return rules[i], true
}

// matches reports whether pkg is named by pattern: a package path, a path
// ending in /... (it and everything below it), or one whose last element is
// <service> (any service of the catalog).
func matches(pattern, pkg string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
	}
	if dir, ok := strings.CutSuffix(pattern, servicePlaceholder); ok {
		name, ok := strings.CutPrefix(pkg, dir)
		return ok && slices.Contains(catalog.Names(catalog.All()), name)
	}
	return pattern == pkg
}
