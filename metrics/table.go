package metrics

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swrproxy/swrproxy/invalidate"
	"github.com/swrproxy/swrproxy/policy"
	"github.com/swrproxy/swrproxy/proxy"
	"github.com/swrproxy/swrproxy/refresh"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// Snapshot is every counter of this instance, as the parts reported them at one moment.
type Snapshot struct {
	Handler    proxy.HandlerStats
	Filler     refresh.FillerStats
	Pool       refresh.PoolStats
	Tracker    refresh.TrackerStats
	Store      tiers.StoreStats
	Invalidate invalidate.Stats
	Upstream   upstream.Stats       // the origin pool's, summed over its backends
	Bus        *invalidate.BusStats // nil without Redis
	Policy     *policy.Stats        // nil when Sources.Policy is
}

// Sources are the parts' snapshot functions (method values such as pool.Stats). Bus is nil
// without Redis; every other one is required.
type Sources struct {
	Handler    func() proxy.HandlerStats
	Filler     func() refresh.FillerStats
	Pool       func() refresh.PoolStats // the refresh queue's (refresh.Pool), not the origin pool
	Tracker    func() refresh.TrackerStats
	Store      func() tiers.StoreStats
	Invalidate func() invalidate.Stats
	// Upstream and Servers are the origin pool's (*upstream.Client): its summed counters, and
	// each backend as this instance sees it, for the series labelled by backend.
	Upstream func() upstream.Stats
	Servers  func() []upstream.Server
	Bus      func() invalidate.BusStats
	// Policy is the policy holder's counters (reloads, hook errors); nil: no such counters.
	Policy func() policy.Stats
}

// Snapshot asks every part for its counters. It blocks for at most one Redis round trip (the
// live instances, when Bus is set).
func (s Sources) Snapshot() Snapshot {
	snap := Snapshot{
		Handler:    s.Handler(),
		Filler:     s.Filler(),
		Pool:       s.Pool(),
		Tracker:    s.Tracker(),
		Store:      s.Store(),
		Invalidate: s.Invalidate(),
		Upstream:   s.Upstream(),
	}
	if s.Bus != nil {
		b := s.Bus()
		snap.Bus = &b
	}
	if s.Policy != nil {
		p := s.Policy()
		snap.Policy = &p
	}
	return snap
}

// counter names one field of a Snapshot twice: as a key of /_swr/stats and as a Prometheus series.
type counter struct {
	// json is the key in /_swr/stats; "group.name" puts it in the object "group" (weldr's
	// "client" and "server" counts).
	json   string
	metric string
	labels prometheus.Labels
	kind   prometheus.ValueType
	help   string
	// value returns the field (int, int64, uint64 or bool), or nil when its part is absent.
	value func(*Snapshot) any
}

const (
	requestsHelp     = "Client requests by X-Cache result and the tier that answered."
	collapsedHelp    = "Requests that got another request's origin fetch instead of their own, by where it ran."
	refreshesHelp    = "Background refresh jobs by outcome (overflow: dropped because the queue was full of sooner jobs)."
	keysHelp         = "Keys invalidated, by what was done to them."
	clientHelp       = "Replies to clients by result: success (a status below 500) or failed (500 and above)."
	upstreamHelp     = "Exchanges with the origin pool's backends by result: success (a response below 500) or failed (none, or a 5xx)."
	reloadsHelp      = "Policy reloads (SIGHUP, POST /_swr/policy/reload) by result: ok, or rejected (the policy in force stayed)."
	codedRepliesHelp = "Replies from cache sent with a stored content coding (SWR_COMPRESS), by coding."
	compressedHelp   = "Bodies stored with a content coding (SWR_COMPRESS), compressed once when stored, by coding."
	savedHelp        = "Bytes the stored codings save on their identity bodies, by coding (per stored body, not per reply)."
	hookHelp         = "WebAssembly hook calls that failed, by hook and reason (timeout, trap, bad_output, busy, instantiate); the request went on with the rules file's and the default behaviour."
)

// counters is the one list of swrproxy's counters: each Snapshot field once, with its name in
// the JSON of /_swr/stats and in the Prometheus exposition (the README documents both). The
// policy's hook errors, one row per hook and reason, are generated (policyErrors).
var counters = slices.Concat([]counter{
	{"hits_l1", "swrproxy_requests_total", prometheus.Labels{"cache": "hit", "tier": "l1"}, prometheus.CounterValue, requestsHelp,
		func(s *Snapshot) any { return s.Handler.HitL1 }},
	{"hits_l2", "swrproxy_requests_total", prometheus.Labels{"cache": "hit", "tier": "l2"}, prometheus.CounterValue, requestsHelp,
		func(s *Snapshot) any { return s.Handler.HitL2 }},
	{"misses", "swrproxy_requests_total", prometheus.Labels{"cache": "miss", "tier": "origin"}, prometheus.CounterValue, requestsHelp,
		func(s *Snapshot) any { return s.Handler.Miss }},
	{"stale_served", "swrproxy_requests_total", prometheus.Labels{"cache": "stale", "tier": "cache"}, prometheus.CounterValue, requestsHelp,
		func(s *Snapshot) any { return s.Handler.Stale }},
	{"bypass", "swrproxy_requests_total", prometheus.Labels{"cache": "bypass", "tier": "origin"}, prometheus.CounterValue, requestsHelp,
		func(s *Snapshot) any { return s.Handler.Bypass }},
	{"client.success", "swrproxy_client_responses_total", prometheus.Labels{"result": "success"}, prometheus.CounterValue, clientHelp,
		func(s *Snapshot) any { return s.Handler.ClientSuccess }},
	{"client.failed", "swrproxy_client_responses_total", prometheus.Labels{"result": "failed"}, prometheus.CounterValue, clientHelp,
		func(s *Snapshot) any { return s.Handler.ClientFailed }},
	{"not_modified", "swrproxy_not_modified_total", nil, prometheus.CounterValue, "Replies answered 304 from cache.",
		func(s *Snapshot) any { return s.Handler.NotModified }},
	{"stale_if_error", "swrproxy_stale_if_error_total", nil, prometheus.CounterValue, "Stale copies served because the origin failed.",
		func(s *Snapshot) any { return s.Handler.StaleIfError }},
	{"write_invalidations", "swrproxy_write_invalidations_total", nil, prometheus.CounterValue,
		"Keys cleared because a POST, PUT, PATCH or DELETE to their URL (or its same-origin Location) succeeded.",
		func(s *Snapshot) any { return s.Handler.WriteInvalidations }},
	{"errors", "swrproxy_errors_total", nil, prometheus.CounterValue,
		"Replies that became 502/504 because the origin failed and no stale copy could stand in.",
		func(s *Snapshot) any { return s.Handler.Errors }},

	{"origin_requests", "swrproxy_origin_requests_total", nil, prometheus.CounterValue,
		"Requests sent to the origin for cacheable keys (fills and refreshes).",
		func(s *Snapshot) any { return s.Filler.OriginRequests }},
	{"origin_errors", "swrproxy_origin_errors_total", nil, prometheus.CounterValue, "Origin failures: no response, broken body, 5xx, 429 or 408.",
		func(s *Snapshot) any { return s.Filler.OriginErrors }},
	{"fills_stored", "swrproxy_fills_stored_total", nil, prometheus.CounterValue, "Origin responses stored in the cache.",
		func(s *Snapshot) any { return s.Filler.Stored }},
	{"revalidated_304", "swrproxy_revalidations_not_modified_total", nil, prometheus.CounterValue, "Origin 304 answers that renewed a stored entry.",
		func(s *Snapshot) any { return s.Filler.Revalidated }},
	{"replies_gzip", "swrproxy_coded_replies_total", prometheus.Labels{"coding": "gzip"}, prometheus.CounterValue, codedRepliesHelp,
		func(s *Snapshot) any { return s.Handler.RepliesGzip }},
	{"replies_br", "swrproxy_coded_replies_total", prometheus.Labels{"coding": "br"}, prometheus.CounterValue, codedRepliesHelp,
		func(s *Snapshot) any { return s.Handler.RepliesBr }},
	{"compressed_gzip", "swrproxy_compressed_total", prometheus.Labels{"coding": "gzip"}, prometheus.CounterValue, compressedHelp,
		func(s *Snapshot) any { return s.Filler.CompressedGzip }},
	{"compressed_br", "swrproxy_compressed_total", prometheus.Labels{"coding": "br"}, prometheus.CounterValue, compressedHelp,
		func(s *Snapshot) any { return s.Filler.CompressedBrotli }},
	{"compressed_saved_bytes_gzip", "swrproxy_compressed_saved_bytes_total", prometheus.Labels{"coding": "gzip"}, prometheus.CounterValue, savedHelp,
		func(s *Snapshot) any { return s.Filler.SavedGzip }},
	{"compressed_saved_bytes_br", "swrproxy_compressed_saved_bytes_total", prometheus.Labels{"coding": "br"}, prometheus.CounterValue, savedHelp,
		func(s *Snapshot) any { return s.Filler.SavedBrotli }},
	{"compress_busy", "swrproxy_compress_busy_total", nil, prometheus.CounterValue,
		"Compressible bodies stored without codings because as many fills as allowed (half the processors) were compressing.",
		func(s *Snapshot) any { return s.Filler.CompressBusy }},
	{"collapsed_local", "swrproxy_collapsed_total", prometheus.Labels{"scope": "instance"}, prometheus.CounterValue, collapsedHelp,
		func(s *Snapshot) any { return s.Filler.SharedLocal }},
	{"collapsed_remote", "swrproxy_collapsed_total", prometheus.Labels{"scope": "fleet"}, prometheus.CounterValue, collapsedHelp,
		func(s *Snapshot) any { return s.Filler.SharedRemote }},

	{"refreshes_done", "swrproxy_refreshes_total", prometheus.Labels{"outcome": "done"}, prometheus.CounterValue, refreshesHelp,
		func(s *Snapshot) any { return s.Pool.Done }},
	{"refreshes_failed", "swrproxy_refreshes_total", prometheus.Labels{"outcome": "failed"}, prometheus.CounterValue, refreshesHelp,
		func(s *Snapshot) any { return s.Pool.Failed }},
	{"refreshes_skipped", "swrproxy_refreshes_total", prometheus.Labels{"outcome": "skipped"}, prometheus.CounterValue, refreshesHelp,
		func(s *Snapshot) any { return s.Pool.Skipped }},
	{"refresh_overflow", "swrproxy_refreshes_total", prometheus.Labels{"outcome": "overflow"}, prometheus.CounterValue, refreshesHelp,
		func(s *Snapshot) any { return s.Pool.Overflow }},
	{"refresh_queue", "swrproxy_refresh_queue_jobs", nil, prometheus.GaugeValue, "Background refresh jobs waiting.",
		func(s *Snapshot) any { return s.Pool.Queued }},
	{"refresh_queue_bytes", "swrproxy_refresh_queue_bytes", nil, prometheus.GaugeValue, "Weight of the refresh jobs waiting (bounded: README, Memory).",
		func(s *Snapshot) any { return s.Pool.QueuedBytes }},

	{"refresh_tracked_keys", "swrproxy_refresh_tracked_keys", nil, prometheus.GaugeValue, "Key variants the hot-key tracker holds.",
		func(s *Snapshot) any { return s.Tracker.Records }},
	{"refresh_tracked_bytes", "swrproxy_refresh_tracked_bytes", nil, prometheus.GaugeValue,
		"Weight of the hot-key tracker's records (bounded: README, Memory).",
		func(s *Snapshot) any { return s.Tracker.Bytes }},
	{"refresh_untracked", "swrproxy_refresh_untracked_total", nil, prometheus.CounterValue,
		"Requests for keys the full hot-key tracker had no room for (not refreshed ahead).",
		func(s *Snapshot) any { return s.Tracker.Untracked }},

	{"invalidations", "swrproxy_invalidation_requests_total", nil, prometheus.CounterValue,
		"Invalidation requests (POST /_swr/invalidate, PURGE, writes).",
		func(s *Snapshot) any { return s.Invalidate.Requests }},
	{"invalidated_cleared", "swrproxy_invalidated_keys_total", prometheus.Labels{"mode": "clear"}, prometheus.CounterValue, keysHelp,
		func(s *Snapshot) any { return s.Invalidate.Cleared }},
	{"invalidated_refreshed", "swrproxy_invalidated_keys_total", prometheus.Labels{"mode": "refresh"}, prometheus.CounterValue, keysHelp,
		func(s *Snapshot) any { return s.Invalidate.Refreshed }},

	{"l1_objects", "swrproxy_l1_objects", nil, prometheus.GaugeValue, "Objects (URLs) in this instance's L1.",
		func(s *Snapshot) any { return s.Store.L1Objects }},
	{"l1_bytes", "swrproxy_l1_bytes", nil, prometheus.GaugeValue, "Weight of this instance's L1 in bytes.",
		func(s *Snapshot) any { return s.Store.L1Bytes }},
	{"l2_errors", "swrproxy_redis_errors_total", nil, prometheus.CounterValue, "Failed Redis calls.",
		func(s *Snapshot) any { return s.Store.L2Errors }},
	{"l2_circuit_open", "swrproxy_redis_circuit_open", nil, prometheus.GaugeValue, "1 while the Redis circuit breaker is open (L2 skipped).",
		func(s *Snapshot) any { return s.Store.L2Open }},
	{"warm_keys", "swrproxy_warm_keys_total", nil, prometheus.CounterValue, "Keys copied from the fleet's hot set in L2 into L1 (warm start, POST /_swr/populate).",
		func(s *Snapshot) any { return s.Store.WarmKeys }},
	{"warm_bytes", "swrproxy_warm_bytes_total", nil, prometheus.CounterValue, "Bytes copied from the fleet's hot set in L2 into L1.",
		func(s *Snapshot) any { return s.Store.WarmBytes }},
	{"warm_last_seconds", "swrproxy_warm_last_duration_seconds", nil, prometheus.GaugeValue, "How long the last warm-up took.",
		func(s *Snapshot) any { return s.Store.WarmSeconds }},

	{"server.success", "swrproxy_upstream_requests_total", prometheus.Labels{"result": "success"}, prometheus.CounterValue, upstreamHelp,
		func(s *Snapshot) any { return s.Upstream.Success }},
	{"server.failed", "swrproxy_upstream_requests_total", prometheus.Labels{"result": "failed"}, prometheus.CounterValue, upstreamHelp,
		func(s *Snapshot) any { return s.Upstream.Failed }},
	{"upstream_backends", "swrproxy_upstream_backends", nil, prometheus.GaugeValue, "Backends in the origin pool, as this instance sees it.",
		func(s *Snapshot) any { return s.Upstream.Backends }},
	{"upstream_backends_up", "swrproxy_upstream_backends_up", nil, prometheus.GaugeValue, "Backends of the origin pool that are up.",
		func(s *Snapshot) any { return s.Upstream.Up }},
	{"upstream_unavailable", "swrproxy_upstream_unavailable_total", nil, prometheus.CounterValue,
		"Origin requests refused at once because no backend was up.",
		func(s *Snapshot) any { return s.Upstream.Unavailable }},
	{"upstream_retries", "swrproxy_upstream_retries_total", nil, prometheus.CounterValue,
		"Origin requests sent to a second backend after the first failed.",
		func(s *Snapshot) any { return s.Upstream.Retries }},
	{"origin_budget_in_use", "swrproxy_origin_budget_in_use", nil, prometheus.GaugeValue,
		"Origin budget slots this instance holds now (SWR_ORIGIN_MAX_CONCURRENCY).",
		func(s *Snapshot) any { return s.Upstream.Budget.InUse }},
	{"origin_budget_waits", "swrproxy_origin_budget_waits_total", nil, prometheus.CounterValue,
		"Origin requests that had to wait for a budget slot.",
		func(s *Snapshot) any { return s.Upstream.Budget.Waits }},
	{"origin_budget_timeouts", "swrproxy_origin_budget_timeouts_total", nil, prometheus.CounterValue,
		"Client origin requests refused because no budget slot came free in time.",
		func(s *Snapshot) any { return s.Upstream.Budget.Timeouts }},
	{"origin_budget_yielded", "swrproxy_origin_budget_yielded_total", nil, prometheus.CounterValue,
		"Background origin requests (refreshes) refused so that clients could go first.",
		func(s *Snapshot) any { return s.Upstream.Budget.Yielded }},
	{"origin_budget_fleet_errors", "swrproxy_origin_budget_fleet_errors_total", nil, prometheus.CounterValue,
		"Redis failures of the fleet's origin budget; each made the fleet cap a local one for a while.",
		func(s *Snapshot) any { return s.Upstream.Budget.FleetErrors }},

	{"instances_live", "swrproxy_instances", nil, prometheus.GaugeValue, "Live swrproxy instances sharing this Redis, as seen by their heartbeats.",
		func(s *Snapshot) any {
			if s.Bus == nil {
				return nil
			}
			return s.Bus.Live
		}},

	{"policy_reloads", "swrproxy_policy_reloads_total", prometheus.Labels{"result": "ok"}, prometheus.CounterValue, reloadsHelp,
		func(s *Snapshot) any {
			if s.Policy == nil {
				return nil
			}
			return s.Policy.Reloads
		}},
	{"policy_reload_failures", "swrproxy_policy_reloads_total", prometheus.Labels{"result": "rejected"}, prometheus.CounterValue, reloadsHelp,
		func(s *Snapshot) any {
			if s.Policy == nil {
				return nil
			}
			return s.Policy.Failures
		}},
}, policyErrors())

// policyErrors is a row per hook and reason of policy.Stats.Errors: "policy_errors.<hook>_<reason>"
// in /_swr/stats, swrproxy_policy_errors_total{hook,reason} in Prometheus.
func policyErrors() []counter {
	var out []counter
	for i, hook := range policy.Hooks {
		for j, reason := range policy.Reasons {
			out = append(out, counter{"policy_errors." + hook + "_" + reason, "swrproxy_policy_errors_total",
				prometheus.Labels{"hook": hook, "reason": reason}, prometheus.CounterValue, hookHelp,
				func(s *Snapshot) any {
					if s.Policy == nil {
						return nil
					}
					return s.Policy.Errors[i][j]
				}})
		}
	}
	return out
}

// byJSON indexes counters by their JSON name.
var byJSON = func() map[string]*counter {
	m := make(map[string]*counter, len(counters))
	for i := range counters {
		m[counters[i].json] = &counters[i]
	}
	return m
}()

// Value returns the counter of s named name in /_swr/stats ("group.name" for a member of the
// object group) and reports whether s has it: an unknown name, or one of a part that is absent
// (no Redis: no bus), has none.
func (s *Snapshot) Value(name string) (any, bool) {
	c, ok := byJSON[name]
	if !ok {
		return nil, false
	}
	v := c.value(s)
	return v, v != nil
}

// MarshalJSON encodes s as the object of GET /_swr/stats: one member per counter, under its
// JSON name ("group.name": member name of the object group); a part that is absent (no Redis:
// no bus) has no members.
func (s Snapshot) MarshalJSON() ([]byte, error) {
	out := make(map[string]any, len(counters))
	for _, c := range counters {
		v := c.value(&s)
		if v == nil {
			continue
		}
		group, name, nested := strings.Cut(c.json, ".")
		if !nested {
			out[c.json] = v
			continue
		}
		g, _ := out[group].(map[string]any)
		if g == nil {
			g = map[string]any{}
			out[group] = g
		}
		g[name] = v
	}
	return json.Marshal(out)
}

// float is a counter's value as Prometheus reads it: a number, true as 1.
func float(v any) float64 {
	switch v := v.(type) {
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case uint64:
		return float64(v)
	case float64:
		return v
	case bool:
		if v {
			return 1
		}
		return 0
	}
	panic("metrics: counter of unexpected type")
}

// collector exports the counters: one snapshot per scrape, one series per counter.
type collector struct {
	src   Sources
	descs []*prometheus.Desc // descs[i] is counters[i]'s
}

func newCollector(src Sources) *collector {
	c := &collector{src: src}
	for _, k := range counters {
		c.descs = append(c.descs, prometheus.NewDesc(k.metric, k.help, nil, k.labels))
	}
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	snap := c.src.Snapshot()
	for i, k := range counters {
		if v := k.value(&snap); v != nil {
			ch <- prometheus.MustNewConstMetric(c.descs[i], k.kind, float(v))
		}
	}
}
