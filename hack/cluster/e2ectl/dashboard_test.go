package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The chart's dashboard is what cluster-e2e checks: every query must be
// found, and every variable in it must be one the check fills in.
func TestChartDashboardQueriesExpand(t *testing.T) {
	b, err := os.ReadFile("../../../charts/switchboard/files/dashboards/switchboard.json")
	if err != nil {
		t.Fatal(err)
	}
	qs, err := dashboardQueries(b)
	if err != nil {
		t.Fatal(err)
	}
	targets := strings.Count(string(b), `"expr"`)
	var vars, panels int
	for _, q := range qs {
		if q.Label != "" {
			vars++
		} else {
			panels++
		}
		e, err := expand(q.Expr, map[string]string{"namespace": "demo", "service": ".*", "__rate_interval": "5m"})
		if err != nil {
			t.Errorf("%s: %v", q.Panel, err)
		}
		if strings.Contains(e, "$") {
			t.Errorf("%s: %q still has a variable", q.Panel, e)
		}
	}
	if panels != targets {
		t.Errorf("found %d panel queries, the file has %d exprs", panels, targets)
	}
	if vars == 0 {
		t.Errorf("no template variable query found")
	}
}

func TestDashboardQueries(t *testing.T) {
	tests := []struct {
		name, json string
		want       []panelQuery
		wantErr    string
	}{
		{"a row's panels and a string variable",
			`{"templating":{"list":[{"name":"ns","type":"query","query":"label_values(up, namespace)"},{"name":"ds","type":"datasource"}]},
			  "panels":[{"title":"row","panels":[{"title":"a","targets":[{"expr":"rate(x[$__rate_interval])"},{"expr":" "}]}]}]}`,
			[]panelQuery{{Panel: "variable ns", Expr: "up", Label: "namespace"}, {Panel: "a", Expr: "rate(x[$__rate_interval])"}}, ""},
		{"an object variable", `{"templating":{"list":[{"name":"s","type":"query","query":{"query":"label_values(m{a=\"b\"}, service)"}}]},"panels":[]}`,
			[]panelQuery{{Panel: "variable s", Expr: `m{a="b"}`, Label: "service"}}, ""},
		{"a variable that is not label_values", `{"templating":{"list":[{"name":"s","type":"query","query":"query_result(up)"}]}}`, nil, "is not label_values"},
		{"no queries", `{"panels":[{"title":"text"}]}`, nil, "no queries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dashboardQueries([]byte(tt.json))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("query %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestExpandRefusesUnknownVariables(t *testing.T) {
	if _, err := expand(`x{a="$cluster"}`, map[string]string{"namespace": "demo"}); err == nil || !strings.Contains(err.Error(), "cluster") {
		t.Fatalf("err = %v, want the unknown variable named", err)
	}
	got, err := expand(`x{a=~"${namespace}"}[$__rate_interval]`, map[string]string{"namespace": "demo", "__rate_interval": "1m"})
	if err != nil || got != `x{a=~"demo"}[1m]` {
		t.Fatalf("expand = %q, %v", got, err)
	}
}

// Every service metric the chart's dashboard queries is one services/kit
// registers (the broker's, switchboard_nats_*, are services/brokermetrics'
// and checked there): a metric renamed in kit, as the HTTP client's were
// when internal calls moved to gRPC, would leave its panel empty on a live
// cluster.
func TestChartDashboardServiceMetricsExist(t *testing.T) {
	b, err := os.ReadFile("../../../charts/switchboard/files/dashboards/switchboard.json")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("../../../services/kit/*.go")
	if err != nil {
		t.Fatal(err)
	}
	var kit strings.Builder
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		kit.Write(src)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`switchboard_[a-z_]+`).FindAllString(string(b), -1) {
		if strings.HasPrefix(m, "switchboard_nats_") {
			continue
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(m, suffix); ok && strings.HasSuffix(base, "_seconds") {
				m = base
			}
		}
		names[m] = true
	}
	if len(names) == 0 {
		t.Fatal("the dashboard names no service metric")
	}
	for n := range names {
		if !strings.Contains(kit.String(), `"`+n+`"`) {
			t.Errorf("the dashboard queries %s, which services/kit does not register", n)
		}
	}
}
