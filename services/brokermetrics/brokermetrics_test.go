package brokermetrics

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// startBroker starts an embedded nats-server with its monitor on a random
// port, as the broker pod runs it, and stops it when the test ends.
func startBroker(t *testing.T, jetStream bool) *server.Server {
	t.Helper()
	opts := &server.Options{
		Host: "127.0.0.1", Port: -1, HTTPHost: "127.0.0.1", HTTPPort: -1,
		JetStream: jetStream, NoLog: true, NoSigs: true,
	}
	if jetStream {
		opts.StoreDir = t.TempDir()
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

func monitorURL(s *server.Server) string {
	return "http://" + s.MonitorAddr().String()
}

// scrape GETs /metrics of a Handler over HTTP and parses the text format,
// as Prometheus does.
func scrape(t *testing.T, c *Collector) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(Handler(c))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value returns the one unlabelled sample of a family, failing if absent.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no %s in %v", name, slices.Sorted(maps.Keys(fams)))
	}
	if len(f.Metric) != 1 || len(f.Metric[0].Label) != 0 {
		t.Fatalf("%s: want one unlabelled sample, got %v", name, f.Metric)
	}
	m := f.Metric[0]
	switch f.GetType() {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	}
	t.Fatalf("%s has type %v", name, f.GetType())
	return 0
}

func newCollector(t *testing.T, url string) *Collector {
	t.Helper()
	c, err := NewCollector(url, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func allNames() []string {
	names := []string{MetricUp}
	for _, m := range varzMetrics {
		names = append(names, m.name)
	}
	for _, m := range jszMetrics {
		names = append(names, m.name)
	}
	return names
}

func TestCollectorReportsTheBroker(t *testing.T) {
	s := startBroker(t, true)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const (
		fileLimit = 1 << 20
		memLimit  = 1 << 16
	)
	orders, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"order.>"}, MaxBytes: fileLimit})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CACHE", Subjects: []string{"cache.>"}, Storage: jetstream.MemoryStorage, MaxBytes: memLimit}); err != nil {
		t.Fatal(err)
	}
	if _, err := orders.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "notification", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	const n = 25
	payload := []byte(strings.Repeat("x", 100))
	for i := range n {
		if _, err := js.Publish(ctx, fmt.Sprintf("order.created.%d", i), payload); err != nil {
			t.Fatal(err)
		}
	}

	c := newCollector(t, monitorURL(s))
	fams := scrape(t, c)
	want, err := s.Jsz(nil)
	if err != nil {
		t.Fatal(err)
	}

	if got := slices.Sorted(maps.Keys(fams)); !slices.Equal(got, slices.Sorted(slices.Values(allNames()))) {
		t.Errorf("families %v, want %v", got, allNames())
	}
	exact := map[string]float64{
		"switchboard_nats_up":                               1,
		"switchboard_nats_connections":                      1,
		"switchboard_nats_slow_consumers_total":             0,
		"switchboard_nats_jetstream_streams":                2,
		"switchboard_nats_jetstream_consumers":              1,
		"switchboard_nats_jetstream_messages":               n,
		"switchboard_nats_jetstream_bytes":                  float64(want.Bytes),
		"switchboard_nats_jetstream_storage_used_bytes":     float64(want.Store),
		"switchboard_nats_jetstream_memory_used_bytes":      0,
		"switchboard_nats_jetstream_storage_reserved_bytes": fileLimit,
		"switchboard_nats_jetstream_memory_reserved_bytes":  memLimit,
	}
	for name, w := range exact {
		if got := value(t, fams, name); got != w {
			t.Errorf("%s = %v, want %v", name, got, w)
		}
	}
	atLeast := map[string]float64{
		"switchboard_nats_accepted_connections_total": 1,
		"switchboard_nats_subscriptions":              1,
		// JetStream API requests and acks count too, so only bounds.
		"switchboard_nats_in_messages_total":  n,
		"switchboard_nats_out_messages_total": n,
		"switchboard_nats_in_bytes_total":     n * float64(len(payload)),
		"switchboard_nats_out_bytes_total":    1,
		// The stored bytes include headers and subjects.
		"switchboard_nats_jetstream_storage_used_bytes": n * float64(len(payload)),
	}
	for name, w := range atLeast {
		if got := value(t, fams, name); got < w {
			t.Errorf("%s = %v, want at least %v", name, got, w)
		}
	}

	t.Run("counters follow the broker between scrapes", func(t *testing.T) {
		before := value(t, fams, "switchboard_nats_in_messages_total")
		for i := range 10 {
			if _, err := js.Publish(ctx, fmt.Sprintf("order.paid.%d", i), payload); err != nil {
				t.Fatal(err)
			}
		}
		again := scrape(t, c)
		if got := value(t, again, "switchboard_nats_in_messages_total"); got < before+10 {
			t.Errorf("in messages %v after 10 more publishes, was %v", got, before)
		}
		if got := value(t, again, "switchboard_nats_jetstream_messages"); got != n+10 {
			t.Errorf("stored messages %v, want %d", got, n+10)
		}
	})

	t.Run("names and help pass promlint", func(t *testing.T) {
		problems, err := promlint.NewWithMetricFamilies(slices.Collect(maps.Values(scrape(t, c)))).Lint()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	})
}

func TestJetStreamDisabledLeavesItsSeriesOut(t *testing.T) {
	s := startBroker(t, false)
	fams := scrape(t, newCollector(t, monitorURL(s)))
	if value(t, fams, MetricUp) != 1 || value(t, fams, "switchboard_nats_connections") != 0 {
		t.Errorf("up %v, connections %v", value(t, fams, MetricUp), value(t, fams, "switchboard_nats_connections"))
	}
	for name := range fams {
		if strings.HasPrefix(name, "switchboard_nats_jetstream_") {
			t.Errorf("%s reported without JetStream", name)
		}
	}
}

// A monitor that does not answer, or answers nonsense, yields up 0 and no
// other series.
func TestAMonitorThatDoesNotAnswerIsDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + l.Addr().String()
	l.Close()

	serve := func(varz, jsz http.HandlerFunc) string {
		mux := http.NewServeMux()
		mux.HandleFunc("/varz", varz)
		mux.HandleFunc("/jsz", jsz)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	ok := func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `{"connections": 3}`) }
	tests := []struct {
		name string
		url  string
	}{
		{"nothing listens", deadURL},
		{"the monitor answers 500", serve(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", 500) }, ok)},
		{"the monitor answers HTML", serve(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "<html>") }, ok)},
		{"the monitor answers nothing", serve(func(http.ResponseWriter, *http.Request) {}, ok)},
		{"a number out of range", serve(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `{"subscriptions": -1}`) }, ok)},
		{"/varz answers but /jsz does not", serve(ok, func(w http.ResponseWriter, _ *http.Request) { http.NotFound(w, nil) })},
		{"the monitor redirects elsewhere", serve(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://example.invalid/", http.StatusFound)
		}, ok)},
		{"the monitor is too slow", serve(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, ok)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fams := scrape(t, newCollector(t, tt.url))
			if got := slices.Collect(maps.Keys(fams)); !slices.Equal(got, []string{MetricUp}) {
				t.Errorf("families %v, want %s alone", got, MetricUp)
			}
			if got := value(t, fams, MetricUp); got != 0 {
				t.Errorf("up = %v, want 0", got)
			}
		})
	}

	t.Run("a broker that stops turns up to 0", func(t *testing.T) {
		s := startBroker(t, true)
		c := newCollector(t, monitorURL(s))
		if got := value(t, scrape(t, c), MetricUp); got != 1 {
			t.Fatalf("up = %v before the stop", got)
		}
		s.Shutdown()
		s.WaitForShutdown()
		if got := value(t, scrape(t, c), MetricUp); got != 0 {
			t.Errorf("up = %v after the stop", got)
		}
	})
}

// The minimal structs decode what the server's own types encode.
func TestFieldsMatchTheServersTypes(t *testing.T) {
	sv := server.Varz{Connections: 1, TotalConnections: 2, Subscriptions: 3, SlowConsumers: 4, InMsgs: 5, OutMsgs: 6, InBytes: 7, OutBytes: 8}
	var v varz
	roundTrip(t, sv, &v)
	if want := (varz{1, 2, 3, 4, 5, 6, 7, 8}); v != want {
		t.Errorf("varz %+v, want %+v", v, want)
	}
	sj := server.JSInfo{
		JetStreamStats: server.JetStreamStats{Memory: 11, Store: 12, ReservedMemory: 13, ReservedStore: 14},
		Disabled:       true, Streams: 15, Consumers: 16, Messages: 17, Bytes: 18,
	}
	var j jsz
	roundTrip(t, sj, &j)
	if want := (jsz{Disabled: true, Streams: 15, Consumers: 16, Messages: 17, Bytes: 18, Memory: 11, Store: 12, ReservedMemory: 13, ReservedStore: 14}); j != want {
		t.Errorf("jsz %+v, want %+v", j, want)
	}
}

func roundTrip(t *testing.T, from, into any) {
	t.Helper()
	b, err := json.Marshal(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatal(err)
	}
}

func TestNewCollectorRefusesBadInput(t *testing.T) {
	tests := []struct {
		name, url string
		timeout   time.Duration
		want      string
	}{
		{"no scheme", "127.0.0.1:8222", 0, "want an http:// or https:// URL"},
		{"another scheme", "nats://127.0.0.1:4222", 0, "want an http:// or https:// URL"},
		{"no host", "http:///varz", 0, "has no host"},
		{"a query", "http://127.0.0.1:8222/?x=1", 0, "no query"},
		{"not a URL", "http://[::1", 0, "monitor URL"},
		{"a negative timeout", "http://127.0.0.1:8222", -time.Second, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewCollector(tt.url, tt.timeout, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestAMonitorBasePathIsKept(t *testing.T) {
	var (
		mu    sync.Mutex
		paths []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		paths = append(paths, r.URL.Path)
		fmt.Fprint(w, `{}`)
	}))
	defer srv.Close()
	if got := value(t, scrape(t, newCollector(t, srv.URL+"/nats/")), MetricUp); got != 1 {
		t.Errorf("up = %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"/nats/varz", "/nats/jsz"}; !slices.Equal(paths, want) {
		t.Errorf("paths %v, want %v", paths, want)
	}
}

func TestHandlerAndServe(t *testing.T) {
	s := startBroker(t, true)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, Handler(newCollector(t, monitorURL(s))), nil) }()
	base := "http://" + l.Addr().String()

	for path, want := range map[string]int{"/healthz": 200, "/metrics": 200, "/": 404} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	resp, err := http.Post(base+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve returned %v after its context ended", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not stop")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still serving after the stop")
	}
}

// FuzzCollect feeds arbitrary monitor answers: a scrape never panics, and
// yields either up 0 alone or up 1 with every varz series.
func FuzzCollect(f *testing.F) {
	f.Add([]byte(`{"connections": 2, "in_msgs": 10}`), []byte(`{"streams": 1, "storage": 5}`))
	f.Add([]byte(`{"connections": 2}`), []byte(`{"disabled": true}`))
	f.Add([]byte(`{"connections": 1e30}`), []byte(`{}`))
	f.Add([]byte(`[]`), []byte(`null`))
	f.Fuzz(func(t *testing.T, varzBody, jszBody []byte) {
		mux := http.NewServeMux()
		mux.HandleFunc("/varz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(varzBody) })
		mux.HandleFunc("/jsz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(jszBody) })
		srv := httptest.NewServer(mux)
		defer srv.Close()
		fams := scrape(t, newCollector(t, srv.URL))
		switch value(t, fams, MetricUp) {
		case 0:
			if len(fams) != 1 {
				t.Errorf("up 0 with %d families", len(fams))
			}
		case 1:
			if len(fams) != 1+len(varzMetrics) && len(fams) != 1+len(varzMetrics)+len(jszMetrics) {
				t.Errorf("up 1 with %d families", len(fams))
			}
		default:
			t.Errorf("up = %v", value(t, fams, MetricUp))
		}
	})
}

// The chart's Grafana dashboard queries only series this exporter sends,
// and counters only through rate() or increase().
func TestDashboardQueriesExportedSeries(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "charts", "switchboard", "files", "dashboards", "switchboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, n := range allNames() {
		exported[n] = true
	}
	name := regexp.MustCompile(`(\w*\(\s*)?(switchboard_nats_\w+)`)
	queried := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for _, m := range name.FindAllStringSubmatch(target.Expr, -1) {
				queried++
				fn, series := strings.TrimSpace(strings.TrimSuffix(m[1], "(")), m[2]
				if !exported[series] {
					t.Errorf("panel %q queries %s, which broker-metrics does not export", p.Title, series)
				}
				if strings.HasSuffix(series, "_total") && fn != "rate" && fn != "increase" {
					t.Errorf("panel %q uses counter %s outside rate() or increase(): %s", p.Title, series, target.Expr)
				}
			}
		}
	}
	if queried == 0 {
		t.Error("the dashboard has no NATS panel")
	}
	if strings.Contains(string(b), "gnatsd_") {
		t.Error("the dashboard queries gnatsd_* (prometheus-nats-exporter), which nothing here exports")
	}
}
