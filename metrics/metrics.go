// Package metrics owns swrproxy's one list of counters: each field of the parts' stats snapshots,
// named once for the JSON of /_swr/stats and once for the Prometheus exposition of /_swr/metrics;
// and the series of each backend of the origin pool, labelled by its URL. The counters are read
// at scrape time from the snapshots the parts keep anyway, so the request path pays nothing for
// them; only the origin latency histogram is observed as it happens.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Origin times origin exchanges. Build it first and give Observe to the parts that go to the
// origin; New exports it.
type Origin struct {
	latency *prometheus.HistogramVec
}

// NewOrigin returns the origin latency histogram, empty.
func NewOrigin() *Origin {
	return &Origin{latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "swrproxy_origin_request_duration_seconds",
		Help:    "Time to the origin's response headers (fills, refreshes and pass-through), by kind.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"kind"})}
}

// Observe records one origin exchange of the given kind ("fill" or "pass"). Safe for concurrent use.
func (o *Origin) Observe(kind string, d time.Duration) {
	o.latency.WithLabelValues(kind).Observe(d.Seconds())
}

// Metrics is the registry of /_swr/metrics and the counters of /_swr/stats.
type Metrics struct {
	src Sources
	reg *prometheus.Registry
}

// New returns a registry with the Go and process collectors, origin's histogram, the counters
// of src and the series of each backend of src.Servers.
func New(origin *Origin, src Sources) *Metrics {
	m := &Metrics{src: src, reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		origin.latency, newCollector(src), backendCollector{src.Servers})
	return m
}

// Snapshot returns every counter now (the body of /_swr/stats).
func (m *Metrics) Snapshot() Snapshot { return m.src.Snapshot() }

// Handler serves the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
