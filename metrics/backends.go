package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/swrproxy/swrproxy/upstream"
)

// The series of each backend of the origin pool, labelled backend (its URL, as GET /_swr/servers
// names it; a backend URL carries no credentials, ParseBackend refuses them).
var (
	backendRequests = prometheus.NewDesc("swrproxy_backend_requests_total",
		"Exchanges with one backend by result: success (a response below 500) or failed (none, or a 5xx).",
		[]string{"backend", "result"}, nil)
	backendUp = prometheus.NewDesc("swrproxy_backend_up",
		"1 while this instance sends traffic to the backend (up), 0 while it is down.", []string{"backend"}, nil)
	backendInFlight = prometheus.NewDesc("swrproxy_backend_in_flight",
		"Requests to the backend whose response body is still being read.", []string{"backend"}, nil)
	backendFailures = prometheus.NewDesc("swrproxy_backend_consecutive_failures",
		"Failures of the backend in a row (health checks or traffic); SWR_HEALTH_FALL of them take it down.",
		[]string{"backend"}, nil)
	backendCheck = prometheus.NewDesc("swrproxy_backend_health_check_duration_seconds",
		"How long the backend's latest active health check took (absent before the first).", []string{"backend"}, nil)
)

// backendCollector exports each backend of the pool, read at scrape time from servers, so that
// the request path pays nothing for these series either. The series follow the pool: a backend
// removed from it takes its series with it (its counters disappear rather than stay frozen), and
// one added again starts from 0, which Prometheus reads as a counter reset. The pool-wide counts
// (swrproxy_upstream_requests_total) keep the whole history.
type backendCollector struct {
	servers func() []upstream.Server
}

func (c backendCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{backendRequests, backendUp, backendInFlight, backendFailures, backendCheck} {
		ch <- d
	}
}

func (c backendCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.servers() {
		up := 0.0
		if s.State == "up" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(backendRequests, prometheus.CounterValue, float64(s.Success), s.URL, "success")
		ch <- prometheus.MustNewConstMetric(backendRequests, prometheus.CounterValue, float64(s.Failed), s.URL, "failed")
		ch <- prometheus.MustNewConstMetric(backendUp, prometheus.GaugeValue, up, s.URL)
		ch <- prometheus.MustNewConstMetric(backendInFlight, prometheus.GaugeValue, float64(s.InFlight), s.URL)
		ch <- prometheus.MustNewConstMetric(backendFailures, prometheus.GaugeValue, float64(s.Failures), s.URL)
		if s.LastCheck != nil {
			ch <- prometheus.MustNewConstMetric(backendCheck, prometheus.GaugeValue, s.LastCheck.Duration.Seconds(), s.URL)
		}
	}
}
