// Package metrics exposes swrproxy's counters in the Prometheus text format at /_swr/metrics.
// Most values are read at scrape time from the atomic counters the parts keep anyway, so the
// request path pays nothing for them; only the origin latency histogram is observed as it happens.
package metrics

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/swrproxy/swrproxy/invalidate"
	"github.com/swrproxy/swrproxy/proxy"
	"github.com/swrproxy/swrproxy/refresh"
	"github.com/swrproxy/swrproxy/tiers"
)

// Sources are the parts whose counters are exported. Bus may be nil (no Redis).
type Sources struct {
	Handler    *proxy.Handler
	Filler     *refresh.Filler
	Pool       *refresh.Pool
	Tracker    *refresh.Tracker
	Store      *tiers.Store
	Invalidate *invalidate.Handler
	Bus        *invalidate.Bus
}

// Metrics is a registry with swrproxy's collectors.
type Metrics struct {
	reg           *prometheus.Registry
	originLatency *prometheus.HistogramVec
}

// New registers every metric over s.
func New(s Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.originLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "swrproxy_origin_request_duration_seconds",
		Help:    "Time to the origin's response headers (fills, refreshes and pass-through), by kind.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"kind"})
	m.reg.MustRegister(m.originLatency)

	counter := func(name, help string, labels prometheus.Labels, f func() float64) {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, f))
	}
	gauge := func(name, help string, labels prometheus.Labels, f func() float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, f))
	}
	h := &s.Handler.Stats
	const reqHelp = "Client requests by X-Cache result and the tier that answered."
	for _, r := range []struct {
		result, tier string
		v            func() int64
	}{
		{"hit", "l1", h.HitL1.Load},
		{"hit", "l2", h.HitL2.Load},
		{"miss", "origin", h.Miss.Load},
		{"stale", "cache", h.Stale.Load},
		{"bypass", "origin", h.Bypass.Load},
	} {
		counter("swrproxy_requests_total", reqHelp, prometheus.Labels{"cache": r.result, "tier": r.tier}, f64(r.v))
	}
	counter("swrproxy_not_modified_total", "Replies answered 304 from cache.", nil, f64(h.NotModified.Load))
	counter("swrproxy_stale_if_error_total", "Stale copies served because the origin failed.", nil, f64(h.StaleIfError.Load))
	counter("swrproxy_write_invalidations_total", "Keys cleared because a POST, PUT, PATCH or DELETE to their URL (or its same-origin Location) succeeded.",
		nil, f64(h.WriteInvalidations.Load))
	counter("swrproxy_errors_total", "Replies that became 502/504 because the origin failed and no stale copy could stand in.", nil, f64(h.Errors.Load))

	f := s.Filler.Stats
	counter("swrproxy_origin_requests_total", "Requests sent to the origin for cacheable keys (fills and refreshes).", nil, f64(f.OriginRequests.Load))
	counter("swrproxy_origin_errors_total", "Origin failures: no response, broken body, or 5xx.", nil, f64(f.OriginErrors.Load))
	counter("swrproxy_fills_stored_total", "Origin responses stored in the cache.", nil, f64(f.Stored.Load))
	counter("swrproxy_revalidations_not_modified_total", "Origin 304 answers that renewed a stored entry.", nil, f64(f.Revalidated.Load))
	counter("swrproxy_collapsed_total", "Requests that got another request's origin fetch instead of their own, by where it ran.",
		prometheus.Labels{"scope": "instance"}, f64(f.SharedLocal.Load))
	counter("swrproxy_collapsed_total", "Requests that got another request's origin fetch instead of their own, by where it ran.",
		prometheus.Labels{"scope": "fleet"}, f64(f.SharedRemote.Load))

	p := s.Pool
	const refHelp = "Background refresh jobs by outcome (overflow: dropped because the queue was full of sooner jobs)."
	for outcome, v := range map[string]func() int64{"done": p.Done.Load, "failed": p.Failed.Load, "skipped": p.Skipped.Load, "overflow": p.Overflow.Load} {
		counter("swrproxy_refreshes_total", refHelp, prometheus.Labels{"outcome": outcome}, f64(v))
	}
	gauge("swrproxy_refresh_queue_jobs", "Background refresh jobs waiting.", nil, func() float64 { return float64(p.Len()) })
	gauge("swrproxy_refresh_queue_bytes", "Weight of the refresh jobs waiting (bounded: README, Memory).", nil, func() float64 { return float64(p.Bytes()) })
	tr := s.Tracker
	gauge("swrproxy_refresh_tracked_keys", "Key variants the hot-key tracker holds.", nil, func() float64 { n, _ := tr.Size(); return float64(n) })
	gauge("swrproxy_refresh_tracked_bytes", "Weight of the hot-key tracker's records (bounded: README, Memory).", nil, func() float64 { _, b := tr.Size(); return float64(b) })
	counter("swrproxy_refresh_untracked_total", "Requests for keys the full hot-key tracker had no room for (not refreshed ahead).", nil, f64(tr.Untracked.Load))

	inv := s.Invalidate
	counter("swrproxy_invalidation_requests_total", "Invalidation requests (POST /_swr/invalidate, PURGE, writes).", nil, f64(inv.Requests.Load))
	counter("swrproxy_invalidated_keys_total", "Keys invalidated, by what was done to them.", prometheus.Labels{"mode": "clear"}, f64(inv.Cleared.Load))
	counter("swrproxy_invalidated_keys_total", "Keys invalidated, by what was done to them.", prometheus.Labels{"mode": "refresh"}, f64(inv.Refreshed.Load))

	st := s.Store
	gauge("swrproxy_l1_objects", "Objects (URLs) in this instance's L1.", nil, func() float64 { n, _ := st.L1Stats(); return float64(n) })
	gauge("swrproxy_l1_bytes", "Weight of this instance's L1 in bytes.", nil, func() float64 { _, b := st.L1Stats(); return float64(b) })
	counter("swrproxy_redis_errors_total", "Failed Redis calls.", nil, f64(st.L2Errors))
	gauge("swrproxy_redis_circuit_open", "1 while the Redis circuit breaker is open (L2 skipped).", nil, func() float64 {
		if st.L2Open() {
			return 1
		}
		return 0
	})
	if s.Bus != nil {
		bus := s.Bus
		gauge("swrproxy_instances", "Live swrproxy instances sharing this Redis, as seen by their heartbeats.", nil, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			return float64(bus.Live(ctx))
		})
	}
	return m
}

func f64(f func() int64) func() float64 { return func() float64 { return float64(f()) } }

// ObserveOrigin records one origin exchange of the given kind ("fill" or "pass").
func (m *Metrics) ObserveOrigin(kind string, d time.Duration) {
	m.originLatency.WithLabelValues(kind).Observe(d.Seconds())
}

// Mount adds GET /_swr/metrics.
func (m *Metrics) Mount(r fiber.Router) {
	r.Get("/_swr/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})))
}
