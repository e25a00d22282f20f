// Package brokermetrics exports a curated set of a nats-server's monitor
// figures (/varz and /jsz on its HTTP monitor port) as Prometheus metrics.
//
// nats-server has no Prometheus endpoint of its own. The operator runs this
// exporter as a sidecar of every broker pod (`switchboard broker-metrics`),
// from the services image, so it needs no image of its own and moves in
// lockstep with the operator and the services.
package brokermetrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultTimeout bounds each scrape of the monitor (both requests).
const DefaultTimeout = 2 * time.Second

// maxBody caps what is read from one monitor response. /varz of a plain
// server is a few KiB; the cap only stops a confused peer from exhausting
// the sidecar's small memory limit.
const maxBody = 4 << 20

// varz holds the fields of the server's Varz (nats-server
// server/monitor.go) that are exported. Minimal structs, rather than the
// server's own types, tie the exporter to these fields only: the broker may
// run another nats-server version (spec.broker.image) than the one
// Switchboard embeds. TestFieldsMatchTheServersTypes keeps the tags honest.
type varz struct {
	Connections      int    `json:"connections"`
	TotalConnections uint64 `json:"total_connections"`
	Subscriptions    uint32 `json:"subscriptions"`
	SlowConsumers    int64  `json:"slow_consumers"`
	InMsgs           int64  `json:"in_msgs"`
	OutMsgs          int64  `json:"out_msgs"`
	InBytes          int64  `json:"in_bytes"`
	OutBytes         int64  `json:"out_bytes"`
}

// jsz holds the fields of the server's JSInfo that are exported: the
// counts of its body and the usage of its embedded JetStreamStats.
type jsz struct {
	Disabled       bool   `json:"disabled"`
	Streams        int    `json:"streams"`
	Consumers      int    `json:"consumers"`
	Messages       uint64 `json:"messages"`
	Bytes          uint64 `json:"bytes"`
	Memory         uint64 `json:"memory"`
	Store          uint64 `json:"storage"`
	ReservedMemory uint64 `json:"reserved_memory"`
	ReservedStore  uint64 `json:"reserved_storage"`
}

// metric is one exported series and where its value comes from.
type metric[T any] struct {
	name  string
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(*T) float64
}

func gauge[T any](name, help string, value func(*T) float64) metric[T] {
	return metric[T]{name, prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, value}
}

func counter[T any](name, help string, value func(*T) float64) metric[T] {
	return metric[T]{name, prometheus.NewDesc(name, help, nil, nil), prometheus.CounterValue, value}
}

// The exported metric names. The server's totals since its start are
// counters, so rate() copes with a broker container restart.
const (
	MetricUp = "switchboard_nats_up"
)

var upDesc = prometheus.NewDesc(MetricUp,
	"1 if the broker's monitor answered /varz and /jsz in this scrape, else 0 (and no other switchboard_nats_ series).", nil, nil)

var varzMetrics = []metric[varz]{
	gauge("switchboard_nats_connections", "Client connections open now.",
		func(v *varz) float64 { return float64(v.Connections) }),
	counter("switchboard_nats_accepted_connections_total", "Client connections accepted since the server started.",
		func(v *varz) float64 { return float64(v.TotalConnections) }),
	gauge("switchboard_nats_subscriptions", "Active subscriptions.",
		func(v *varz) float64 { return float64(v.Subscriptions) }),
	counter("switchboard_nats_slow_consumers_total", "Clients disconnected as slow consumers since the server started.",
		func(v *varz) float64 { return float64(v.SlowConsumers) }),
	counter("switchboard_nats_in_messages_total", "Messages received (from clients, routes, gateways and leaf nodes).",
		func(v *varz) float64 { return float64(v.InMsgs) }),
	counter("switchboard_nats_out_messages_total", "Messages sent (to clients, routes, gateways and leaf nodes).",
		func(v *varz) float64 { return float64(v.OutMsgs) }),
	counter("switchboard_nats_in_bytes_total", "Payload bytes received.",
		func(v *varz) float64 { return float64(v.InBytes) }),
	counter("switchboard_nats_out_bytes_total", "Payload bytes sent.",
		func(v *varz) float64 { return float64(v.OutBytes) }),
}

// jszMetrics are left out when JetStream is disabled on the server.
var jszMetrics = []metric[jsz]{
	gauge("switchboard_nats_jetstream_streams", "JetStream streams on this server (replicas included).",
		func(j *jsz) float64 { return float64(j.Streams) }),
	gauge("switchboard_nats_jetstream_consumers", "JetStream consumers on this server (replicas included).",
		func(j *jsz) float64 { return float64(j.Consumers) }),
	gauge("switchboard_nats_jetstream_messages", "Messages stored in this server's streams.",
		func(j *jsz) float64 { return float64(j.Messages) }),
	gauge("switchboard_nats_jetstream_bytes", "Bytes stored in this server's streams.",
		func(j *jsz) float64 { return float64(j.Bytes) }),
	gauge("switchboard_nats_jetstream_storage_used_bytes", "File storage used by JetStream.",
		func(j *jsz) float64 { return float64(j.Store) }),
	gauge("switchboard_nats_jetstream_memory_used_bytes", "Memory storage used by JetStream.",
		func(j *jsz) float64 { return float64(j.Memory) }),
	gauge("switchboard_nats_jetstream_storage_reserved_bytes", "File storage reserved by streams with a byte limit.",
		func(j *jsz) float64 { return float64(j.ReservedStore) }),
	gauge("switchboard_nats_jetstream_memory_reserved_bytes", "Memory storage reserved by streams with a byte limit.",
		func(j *jsz) float64 { return float64(j.ReservedMemory) }),
}

// Collector is a prometheus.Collector that asks the monitor on every
// scrape, so each figure is as fresh as the scrape and nothing is cached
// between scrapes. It is safe for concurrent scrapes.
type Collector struct {
	monitor *url.URL
	client  *http.Client
	timeout time.Duration
	log     *slog.Logger
	// up is the last scrape's outcome (-1 before the first), so that only
	// changes are logged, not every failed scrape of a broker that is down.
	up atomic.Int32
}

// NewCollector returns a Collector of the monitor at monitorURL (such as
// http://127.0.0.1:8222). A timeout of 0 means DefaultTimeout; a nil log
// discards.
func NewCollector(monitorURL string, timeout time.Duration, log *slog.Logger) (*Collector, error) {
	u, err := ParseMonitorURL(monitorURL)
	if err != nil {
		return nil, err
	}
	if timeout < 0 {
		return nil, fmt.Errorf("timeout %v is negative", timeout)
	}
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Collector{
		monitor: u,
		// Never follow a redirect off the monitor, and keep the one
		// connection to the local monitor alive between scrapes.
		client:  &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		timeout: timeout,
		log:     log,
	}
	c.up.Store(-1)
	return c, nil
}

// ParseMonitorURL accepts an absolute http or https URL with a host and no
// query or fragment; a path is kept as the monitor's base path.
func ParseMonitorURL(s string) (*url.URL, error) {
	const want = "want an http:// or https:// URL, such as http://127.0.0.1:8222"
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, fmt.Errorf("monitor URL %q: %s (%w)", s, want, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("monitor URL %q: %s", s, want)
	case u.Host == "":
		return nil, fmt.Errorf("monitor URL %q has no host", s)
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("monitor URL %q: want no query or fragment", s)
	}
	return u, nil
}

// Describe sends every descriptor the Collector may emit.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- upDesc
	for _, m := range varzMetrics {
		ch <- m.desc
	}
	for _, m := range jszMetrics {
		ch <- m.desc
	}
}

// Collect scrapes the monitor. When it does not answer, only
// switchboard_nats_up 0 is sent: stale figures would look like a healthy
// broker that has gone quiet.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	v, j, err := c.scrape(ctx)
	c.noteOutcome(err)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 1)
	for _, m := range varzMetrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.value(v))
	}
	if j.Disabled {
		return
	}
	for _, m := range jszMetrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.value(j))
	}
}

func (c *Collector) scrape(ctx context.Context) (*varz, *jsz, error) {
	v, j := &varz{}, &jsz{}
	if err := c.get(ctx, "varz", v); err != nil {
		return nil, nil, err
	}
	if err := c.get(ctx, "jsz", j); err != nil {
		return nil, nil, err
	}
	return v, j, nil
}

func (c *Collector) get(ctx context.Context, endpoint string, into any) error {
	u := c.monitor.JoinPath(endpoint)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return fmt.Errorf("GET %s: %s", u.Redacted(), resp.Status)
	}
	if err := decode(io.LimitReader(resp.Body, maxBody), into); err != nil {
		return fmt.Errorf("GET %s: %w", u.Redacted(), err)
	}
	return nil
}

// decode reads one JSON object; unknown fields are expected (the server
// reports far more than is exported) and ignored.
func decode(r io.Reader, into any) error {
	if err := json.NewDecoder(r).Decode(into); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty response")
		}
		return fmt.Errorf("decoding: %w", err)
	}
	return nil
}

func (c *Collector) noteOutcome(err error) {
	var now int32
	if err == nil {
		now = 1
	}
	before := c.up.Swap(now)
	switch {
	case before == now:
	case err != nil:
		c.log.Warn("broker monitor does not answer; reporting "+MetricUp+" 0", "monitor", c.monitor.Redacted(), "err", err)
	default:
		c.log.Info("broker monitor answers", "monitor", c.monitor.Redacted())
	}
}
