package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/swrproxy/swrproxy/policy"
)

var (
	policyErrors = prometheus.NewDesc("swrproxy_policy_errors_total",
		"WebAssembly hook calls that failed, by hook and reason (timeout, trap, bad_output, busy, instantiate); the request went on with the rules file's and the default behaviour.",
		[]string{"hook", "reason"}, nil)
	policyReloads = prometheus.NewDesc("swrproxy_policy_reloads_total",
		"Policy reloads (SIGHUP, POST /_swr/policy/reload) by result: ok, or rejected (the policy in force stayed).",
		[]string{"result"}, nil)
)

// policyCollector exports the policy holder's counters, read at scrape time.
type policyCollector struct {
	stats func() policy.Stats
}

func (c policyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- policyErrors
	ch <- policyReloads
}

func (c policyCollector) Collect(ch chan<- prometheus.Metric) {
	if c.stats == nil {
		return
	}
	s := c.stats()
	for _, e := range s.Errors {
		ch <- prometheus.MustNewConstMetric(policyErrors, prometheus.CounterValue, float64(e.N), e.Hook, e.Reason)
	}
	ch <- prometheus.MustNewConstMetric(policyReloads, prometheus.CounterValue, float64(s.Reloads), "ok")
	ch <- prometheus.MustNewConstMetric(policyReloads, prometheus.CounterValue, float64(s.Rejected), "rejected")
}
