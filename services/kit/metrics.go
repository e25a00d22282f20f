package kit

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds one service's Prometheus collectors. Each service owns a
// registry (not the global one) so that `switchboard dev` can run several
// services in one process without their series colliding.
type Metrics struct {
	Registry *prometheus.Registry

	HTTPRequests   *prometheus.CounterVec   // route, method, code
	HTTPDuration   *prometheus.HistogramVec // route, method
	EventsOut      *prometheus.CounterVec   // subject, result
	EventsIn       *prometheus.CounterVec   // consumer, subject, result
	ConsumerErrors *prometheus.CounterVec   // consumer
	DeadLetters    *prometheus.CounterVec   // consumer, subject, reason
	BreakerState   *prometheus.GaugeVec     // upstream; 0 closed, 1 half-open, 2 open
}

// NewMetrics registers the kit's collectors, labelled with the service name.
func NewMetrics(service string) *Metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	lbl := prometheus.Labels{"service": service}
	m := &Metrics{
		Registry: reg,
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_http_requests_total", Help: "HTTP requests served, by route and status code.", ConstLabels: lbl,
		}, []string{"route", "method", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_http_request_duration_seconds", Help: "HTTP request latency by route.", ConstLabels: lbl,
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		EventsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_events_published_total", Help: "Events published to JetStream.", ConstLabels: lbl,
		}, []string{"subject", "result"}),
		EventsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_events_consumed_total", Help: "Events handled by consumers: ack, retry, duplicate or dead_letter.", ConstLabels: lbl,
		}, []string{"consumer", "subject", "result"}),
		ConsumerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_consumer_errors_total", Help: "Errors raised by event handlers.", ConstLabels: lbl,
		}, []string{"consumer"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_events_dead_lettered_total", Help: "Messages consumers gave up on, stored in the dead-letter stream: exhausted (deliveries), permanent (handler error) or malformed.", ConstLabels: lbl,
		}, []string{"consumer", "subject", "reason"}),
		BreakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_breaker_state", Help: "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.", ConstLabels: lbl,
		}, []string{"upstream"}),
	}
	for _, c := range []prometheus.Collector{m.HTTPRequests, m.HTTPDuration, m.EventsOut, m.EventsIn, m.ConsumerErrors, m.DeadLetters,
		m.BreakerState,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	return m
}

// Handler serves the registry in the Prometheus exposition format, or in
// OpenMetrics to a scraper that asks for it: only OpenMetrics carries the
// histograms' exemplars (the trace of an observation).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry, EnableOpenMetrics: true})
}
