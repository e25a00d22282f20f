package gateway

import (
	"io"
	"math"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// The series of services/kit's metrics the console reads.
const (
	metricRequests  = "switchboard_http_requests_total"
	metricDuration  = "switchboard_http_request_duration_seconds"
	metricPublished = "switchboard_events_published_total"
)

// sample is what one scrape of a service's /metrics (summed over its
// instances) holds for the console: counters, so rates come from two
// samples.
type sample struct {
	at       time.Time
	requests float64
	errors   float64 // 5xx answers
	// buckets are the request-duration histogram's cumulative counts by
	// upper bound, every route summed; +Inf included.
	buckets   map[float64]float64
	published map[string]float64 // events by subject
}

func newSample(at time.Time) *sample {
	return &sample{at: at, buckets: map[float64]float64{}, published: map[string]float64{}}
}

type dtoFamily = dto.MetricFamily

// streams are the route labels of the event streams, as the gateway and
// their services register them: the gateway's pattern and the service's.
var streams = func() map[string]bool {
	out := map[string]bool{}
	for _, r := range catalog.Routes() {
		if r.EventStream {
			out[r.Pattern()] = true
			out[r.Method+" "+r.ServicePath()] = true
		}
	}
	return out
}()

// parseMetrics reads the Prometheus text exposition format.
func parseMetrics(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// add sums families into s.
func (s *sample) add(families map[string]*dto.MetricFamily) {
	if f := families[metricRequests]; f != nil {
		for _, m := range f.GetMetric() {
			v := m.GetCounter().GetValue()
			s.requests += v
			if code := label(m, "code"); strings.HasPrefix(code, "5") {
				s.errors += v
			}
		}
	}
	if f := families[metricDuration]; f != nil {
		for _, m := range f.GetMetric() {
			if streams[label(m, "route")] {
				// A stream lasts as long as its watcher: not a latency.
				continue
			}
			h := m.GetHistogram()
			for _, b := range h.GetBucket() {
				// The text format lists +Inf as a bucket; the registry's
				// own Gather does not: take it from the count, always.
				if !math.IsInf(b.GetUpperBound(), 1) {
					s.buckets[b.GetUpperBound()] += float64(b.GetCumulativeCount())
				}
			}
			s.buckets[math.Inf(1)] += float64(h.GetSampleCount())
		}
	}
	if f := families[metricPublished]; f != nil {
		for _, m := range f.GetMetric() {
			s.published[label(m, "subject")] += m.GetCounter().GetValue()
		}
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Rates are a service's figures between two samples. Nil fields are
// unknown: one sample only, or nothing to measure.
type Rates struct {
	RequestsPerSec *float64 `json:"requestsPerSec"`
	ErrorsPerSec   *float64 `json:"errorsPerSec"`
	// ErrorRatio is the share of answers that were 5xx, 0 to 1.
	ErrorRatio *float64 `json:"errorRatio"`
	// P99Ms is the 99th percentile of request durations, interpolated in
	// the histogram's buckets as Prometheus' histogram_quantile does.
	P99Ms *float64 `json:"p99Ms"`
}

// span is one instance's samples to measure between: the oldest still in
// its window and the newest.
type span struct{ old, cur *sample }

// seconds is the span's length; zero or less when there is nothing to
// measure.
func (s span) seconds() float64 {
	if s.old == nil || s.cur == nil {
		return 0
	}
	return s.cur.at.Sub(s.old.at).Seconds()
}

// ratesBetween compares an older sample with a newer one. A counter that
// went down means the service restarted: the newer sample then counts
// from zero.
func ratesBetween(old, cur *sample) Rates { return sumRates([]span{{old, cur}}) }

// sumRates are a service's rates from its instances' spans: each
// instance's counters are compared with its own earlier sample, and the
// rates added up, so an instance that joins, leaves or misses a scrape
// never reads as a counter going down.
func sumRates(spans []span) Rates {
	var r Rates
	var reqRate, errRate, reqs, errs float64
	buckets := map[float64]float64{}
	measured := false
	for _, s := range spans {
		dt := s.seconds()
		if dt <= 0 {
			continue
		}
		measured = true
		dr, de := delta(s.old.requests, s.cur.requests), delta(s.old.errors, s.cur.errors)
		reqRate, errRate, reqs, errs = reqRate+dr/dt, errRate+de/dt, reqs+dr, errs+de
		for le, c := range s.cur.buckets {
			buckets[le] += delta(s.old.buckets[le], c)
		}
	}
	if !measured {
		return r
	}
	r.RequestsPerSec, r.ErrorsPerSec = ptr(reqRate), ptr(errRate)
	if reqs > 0 {
		r.ErrorRatio = ptr(errs / reqs)
	}
	if q, ok := quantile(0.99, buckets); ok {
		r.P99Ms = ptr(q * 1000)
	}
	return r
}

// perSecond is the rate of events of subject over the instances' spans,
// added up; nil when no span measures anything.
func perSecond(spans []span, subject string) *float64 {
	var sum float64
	measured := false
	for _, s := range spans {
		if dt := s.seconds(); dt > 0 {
			measured = true
			sum += delta(s.old.published[subject], s.cur.published[subject]) / dt
		}
	}
	if !measured {
		return nil
	}
	return ptr(sum)
}

func delta(old, cur float64) float64 {
	if cur < old {
		return cur
	}
	return cur - old
}

func ptr(v float64) *float64 { return &v }

// quantile estimates the q-quantile of a cumulative histogram (upper bound
// → count, +Inf included) by linear interpolation inside the bucket that
// holds it; in the +Inf bucket it answers the highest finite bound. False
// when the histogram is empty.
func quantile(q float64, buckets map[float64]float64) (float64, bool) {
	bounds := make([]float64, 0, len(buckets))
	for le := range buckets {
		bounds = append(bounds, le)
	}
	slices.Sort(bounds)
	if len(bounds) == 0 || !math.IsInf(bounds[len(bounds)-1], 1) {
		return 0, false
	}
	total := buckets[bounds[len(bounds)-1]]
	if total <= 0 {
		return 0, false
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for i, le := range bounds {
		c := buckets[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				if i == 0 {
					return 0, false
				}
				return bounds[i-1], true
			}
			if c == below {
				return le, true
			}
			return lower + (le-lower)*(rank-below)/(c-below), true
		}
		lower, below = le, c
	}
	return bounds[len(bounds)-1], true
}

// history keeps one instance's recent samples, so rates span a few
// seconds rather than the jitter of one scrape interval.
type history struct {
	window  time.Duration
	samples []*sample
}

// push adds s, drops the samples the window has left behind (keeping one
// at least a window old, to measure from), and answers the span to
// measure: from the oldest sample still held to s.
func (h *history) push(s *sample) span {
	h.samples = append(h.samples, s)
	cut := 0
	for cut < len(h.samples)-2 && s.at.Sub(h.samples[cut+1].at) >= h.window {
		cut++
	}
	h.samples = h.samples[cut:]
	if len(h.samples) < 2 {
		return span{cur: s}
	}
	return span{h.samples[0], s}
}

// latest is the newest sample.
func (h *history) latest() *sample { return h.samples[len(h.samples)-1] }

// instanceHistories are a service's histories, by instance (its ops
// address).
type instanceHistories map[string]*history

// push adds one scrape of the instances that answered, forgets those that
// have not answered for a window (gone, or replaced: a pod's address is
// not reused for the same pod), and answers the spans of those that
// answered.
func (hs instanceHistories) push(samples map[string]*sample, at time.Time) []span {
	var spans []span
	for inst, s := range samples {
		h := hs[inst]
		if h == nil {
			h = &history{window: rateWindow}
			hs[inst] = h
		}
		spans = append(spans, h.push(s))
	}
	for inst, h := range hs {
		if at.Sub(h.latest().at) > rateWindow {
			delete(hs, inst)
		}
	}
	return spans
}
