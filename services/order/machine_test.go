package order

import (
	"go/parser"
	gotoken "go/token"
	"strings"
	"testing"
)

// The package doc shows Transitions row for row: a reader learns the saga
// there, so it may not drift from the table the code runs.
func TestPackageDocShowsTheTransitionTable(t *testing.T) {
	f, err := parser.ParseFile(gotoken.NewFileSet(), "order.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, line := range strings.Split(f.Doc.Text(), "\n") {
		if fields := strings.Fields(line); len(fields) > 0 && strings.HasPrefix(line, "\t") && fields[0] != "from" {
			rows = append(rows, strings.Join(fields, " "))
		}
	}
	name := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	var want []string
	for _, tr := range Transitions {
		w := []string{name(tr.From), tr.On, tr.To, tr.Status, tr.Event}
		want = append(want, strings.Join(strings.Fields(strings.Join(w, " ")), " "))
	}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the package doc shows\n%s\nTransitions is\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
}

// Every step but done has a way on, and every step a row leads to exists.
func TestEveryStepLeadsSomewhere(t *testing.T) {
	leaves := map[string]bool{}
	for _, tr := range Transitions {
		leaves[tr.From] = true
	}
	for _, tr := range Transitions {
		if tr.To != StepDone && !leaves[tr.To] {
			t.Errorf("step %s is entered (from %s on %s) but never left", tr.To, tr.From, tr.On)
		}
	}
	for _, tr := range Transitions {
		if _, ok := next(tr.From, tr.On); !ok {
			t.Errorf("row %+v is not found", tr)
		}
	}
}
