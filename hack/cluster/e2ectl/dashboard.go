package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// panelQuery is one query of the dashboard: a panel's target, or a
// template variable's label_values(selector, label).
type panelQuery struct {
	Panel string
	Expr  string
	// Label is set for a template variable: the label whose values it lists.
	Label string
}

type grafanaPanel struct {
	Title   string         `json:"title"`
	Panels  []grafanaPanel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

type grafanaDashboard struct {
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

// dashboardQueries lists every query of a Grafana dashboard: the template
// variables' first (in order), then each panel's targets, rows included.
func dashboardQueries(b []byte) ([]panelQuery, error) {
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	var qs []panelQuery
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		// The query is a string, or an object with "query" (newer Grafana).
		var q string
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var o struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &o); err != nil {
				return nil, fmt.Errorf("variable %s: %w", v.Name, err)
			}
			q = o.Query
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			return nil, fmt.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, q)
		}
		qs = append(qs, panelQuery{Panel: "variable " + v.Name, Expr: m[1], Label: m[2]})
	}
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			walk(p.Panels)
			for _, t := range p.Targets {
				if strings.TrimSpace(t.Expr) != "" {
					qs = append(qs, panelQuery{Panel: p.Title, Expr: t.Expr})
				}
			}
		}
	}
	walk(d.Panels)
	if len(qs) == 0 {
		return nil, errors.New("the dashboard has no queries")
	}
	return qs, nil
}

var variable = regexp.MustCompile(`\$\{?([a-zA-Z_][a-zA-Z0-9_]*)\}?`)

// expand replaces the dashboard's variables ($name or ${name}) with vars,
// and fails on one it does not know.
func expand(expr string, vars map[string]string) (string, error) {
	var missing []string
	out := variable.ReplaceAllStringFunc(expr, func(m string) string {
		name := variable.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("unknown variables %v in %q", missing, expr)
	}
	return out, nil
}

type promResponse struct {
	Status string          `json:"status"`
	Error  string          `json:"error"`
	Data   json.RawMessage `json:"data"`
}

func promGet(ctx context.Context, base, path string, q url.Values) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r promResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %d: %w", path, resp.StatusCode, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", path, r.Error)
	}
	return r.Data, nil
}

func dashboard(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("dashboard", flag.ContinueOnError)
	prom := fs.String("prometheus", "", "Prometheus base URL")
	file := fs.String("dashboard", "charts/switchboard/files/dashboards/switchboard.json", "Grafana dashboard JSON")
	ns := fs.String("namespace", "", "value of $namespace (a regular expression, as Grafana passes it)")
	service := fs.String("service", ".*", "value of $service")
	window := fs.String("window", "5m", "value of $__rate_interval")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *prom == "" || *ns == "" {
		return errors.New("--prometheus and --namespace are required")
	}
	b, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	qs, err := dashboardQueries(b)
	if err != nil {
		return err
	}
	vars := map[string]string{"namespace": *ns, "service": *service, "__rate_interval": *window}
	var empty []string
	for _, q := range qs {
		expr, err := expand(q.Expr, vars)
		if err != nil {
			return fmt.Errorf("%s: %w", q.Panel, err)
		}
		var n int
		var sample string
		if q.Label != "" {
			data, err := promGet(ctx, *prom, "/api/v1/label/"+q.Label+"/values", url.Values{"match[]": {expr}})
			if err != nil {
				return fmt.Errorf("%s: %w", q.Panel, err)
			}
			var vals []string
			if err := json.Unmarshal(data, &vals); err != nil {
				return err
			}
			n, sample = len(vals), strings.Join(vals, " ")
		} else {
			data, err := promGet(ctx, *prom, "/api/v1/query", url.Values{"query": {expr}})
			if err != nil {
				return fmt.Errorf("%s: %w", q.Panel, err)
			}
			var v struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
					Value  [2]any            `json:"value"`
				} `json:"result"`
			}
			if err := json.Unmarshal(data, &v); err != nil {
				return err
			}
			n = len(v.Result)
			if n > 0 {
				sample = fmt.Sprintf("%v = %v", v.Result[0].Metric, v.Result[0].Value[1])
			}
		}
		status := "ok   "
		if n == 0 {
			status = "EMPTY"
			empty = append(empty, q.Panel+": "+expr)
		}
		fmt.Fprintf(stdout, "%s %3d series  %-34.34s %s\n", status, n, q.Panel, sample)
	}
	fmt.Fprintf(stdout, "dashboard: %d queries, %d with data, %d empty\n", len(qs), len(qs)-len(empty), len(empty))
	if len(empty) > 0 {
		return fmt.Errorf("queries without data:\n  %s", strings.Join(empty, "\n  "))
	}
	return nil
}
