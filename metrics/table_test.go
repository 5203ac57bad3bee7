package metrics

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/swrproxy/swrproxy/invalidate"
	"github.com/swrproxy/swrproxy/policy"
	"github.com/swrproxy/swrproxy/proxy"
	"github.com/swrproxy/swrproxy/refresh"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// leaves returns the settable number and bool fields of *s, named "Part.Field" (and
// "Part.Struct.Field" inside a nested struct such as upstream.Stats.Budget, "Part.Field[i][j]"
// inside an array such as policy.Stats.Errors), Bus and Policy included.
func leaves(s *Snapshot) map[string]reflect.Value {
	out := map[string]reflect.Value{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		if v.Kind() == reflect.Array {
			for i := range v.Len() {
				walk(fmt.Sprintf("%s[%d]", prefix, i), v.Index(i))
			}
			return
		}
		if v.Kind() != reflect.Struct {
			out[prefix] = v
			return
		}
		for i := range v.NumField() {
			name := v.Type().Field(i).Name
			if prefix != "" {
				name = prefix + "." + name
			}
			walk(name, v.Field(i))
		}
	}
	walk("", reflect.ValueOf(s).Elem())
	return out
}

// numbered returns a snapshot whose fields all differ: 1, 2, 3, … (true for the bool).
func numbered() Snapshot {
	var s Snapshot
	names := slices.Sorted(maps.Keys(leaves(&s)))
	fields := leaves(&s)
	for i, n := range names {
		f := fields[n]
		switch f.Kind() {
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(i + 1))
		case reflect.Uint64:
			f.SetUint(uint64(i + 1))
		case reflect.Float64:
			f.SetFloat(float64(i + 1))
		default:
			panic(n + ": a snapshot field of a kind the table cannot export")
		}
	}
	return s
}

func TestEverySnapshotFieldIsNamedByExactlyOneCounter(t *testing.T) {
	var zero Snapshot
	fields := leaves(&zero)
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		var s Snapshot
		f := leaves(&s)[name]
		if f.Kind() == reflect.Bool {
			f.SetBool(true)
		} else {
			f.Set(reflect.ValueOf(1).Convert(f.Type()))
		}
		var readers []string
		for _, c := range counters {
			if float(c.value(&s)) != float(c.value(&zero)) {
				readers = append(readers, c.json)
			}
		}
		if len(readers) != 1 {
			t.Errorf("%s is read by the counters %q, want exactly one", name, readers)
		}
	}
	if len(counters) != len(fields) {
		t.Errorf("%d counters for %d snapshot fields: some counter reads no field of its own", len(counters), len(fields))
	}
}

func TestEveryCounterHasOneJSONNameAndOnePrometheusSeries(t *testing.T) {
	jsonNames, series := map[string]bool{}, map[string]bool{}
	help := map[string]string{}
	groups := map[string]bool{}
	for _, c := range counters {
		if g, _, ok := strings.Cut(c.json, "."); ok {
			groups[g] = true
		}
	}
	for _, c := range counters {
		if groups[c.json] {
			t.Errorf("%s is both a counter and a group of counters in /_swr/stats", c.json)
		}
		s := c.metric + fmt.Sprint(c.labels)
		if jsonNames[c.json] || series[s] {
			t.Errorf("%s / %s named twice", c.json, s)
		}
		jsonNames[c.json], series[s] = true, true
		if h, ok := help[c.metric]; ok && h != c.help {
			t.Errorf("%s has two help texts", c.metric)
		}
		help[c.metric] = c.help
	}
}

// The names users, dashboards and the README rely on: /_swr/stats keys and Prometheus series.
var (
	wantJSON = []string{"bypass", "client.failed", "client.success", "collapsed_local", "collapsed_remote", "compress_busy",
		"compressed_br", "compressed_gzip", "compressed_saved_bytes_br", "compressed_saved_bytes_gzip", "errors",
		"fills_stored", "hits_l1", "hits_l2",
		"instances_live", "invalidated_cleared", "invalidated_refreshed", "invalidations", "l1_bytes", "l1_objects",
		"l2_circuit_open", "l2_errors", "misses", "not_modified",
		"origin_budget_fleet_errors", "origin_budget_in_use", "origin_budget_timeouts", "origin_budget_waits",
		"origin_budget_yielded", "origin_errors", "origin_requests",
		"policy_errors.on_request_bad_output", "policy_errors.on_request_busy", "policy_errors.on_request_instantiate",
		"policy_errors.on_request_timeout", "policy_errors.on_request_trap",
		"policy_errors.on_response_bad_output", "policy_errors.on_response_busy", "policy_errors.on_response_instantiate",
		"policy_errors.on_response_timeout", "policy_errors.on_response_trap",
		"policy_reload_failures", "policy_reloads", "refresh_overflow",
		"refresh_queue", "refresh_queue_bytes", "refresh_tracked_bytes", "refresh_tracked_keys", "refresh_untracked",
		"refreshes_done", "refreshes_failed", "refreshes_skipped", "replies_br", "replies_gzip", "revalidated_304", "server.failed", "server.success",
		"stale_if_error", "stale_served", "upstream_backends", "upstream_backends_up", "upstream_retries",
		"upstream_unavailable", "warm_bytes", "warm_keys", "warm_last_seconds", "write_invalidations"}
	wantSeries = []string{
		`swrproxy_client_responses_total{result="failed"}`, `swrproxy_client_responses_total{result="success"}`,
		`swrproxy_coded_replies_total{coding="br"}`, `swrproxy_coded_replies_total{coding="gzip"}`,
		`swrproxy_collapsed_total{scope="fleet"}`, `swrproxy_collapsed_total{scope="instance"}`,
		`swrproxy_compress_busy_total`,
		`swrproxy_compressed_saved_bytes_total{coding="br"}`, `swrproxy_compressed_saved_bytes_total{coding="gzip"}`,
		`swrproxy_compressed_total{coding="br"}`, `swrproxy_compressed_total{coding="gzip"}`,
		`swrproxy_errors_total`, `swrproxy_fills_stored_total`, `swrproxy_instances`,
		`swrproxy_invalidated_keys_total{mode="clear"}`, `swrproxy_invalidated_keys_total{mode="refresh"}`,
		`swrproxy_invalidation_requests_total`, `swrproxy_l1_bytes`, `swrproxy_l1_objects`, `swrproxy_not_modified_total`,
		`swrproxy_origin_budget_fleet_errors_total`, `swrproxy_origin_budget_in_use`, `swrproxy_origin_budget_timeouts_total`,
		`swrproxy_origin_budget_waits_total`, `swrproxy_origin_budget_yielded_total`,
		`swrproxy_origin_errors_total`, `swrproxy_origin_requests_total`,
		`swrproxy_policy_errors_total{hook="on_request",reason="bad_output"}`, `swrproxy_policy_errors_total{hook="on_request",reason="busy"}`,
		`swrproxy_policy_errors_total{hook="on_request",reason="instantiate"}`, `swrproxy_policy_errors_total{hook="on_request",reason="timeout"}`,
		`swrproxy_policy_errors_total{hook="on_request",reason="trap"}`,
		`swrproxy_policy_errors_total{hook="on_response",reason="bad_output"}`, `swrproxy_policy_errors_total{hook="on_response",reason="busy"}`,
		`swrproxy_policy_errors_total{hook="on_response",reason="instantiate"}`, `swrproxy_policy_errors_total{hook="on_response",reason="timeout"}`,
		`swrproxy_policy_errors_total{hook="on_response",reason="trap"}`,
		`swrproxy_policy_reloads_total{result="ok"}`, `swrproxy_policy_reloads_total{result="rejected"}`,
		`swrproxy_redis_circuit_open`,
		`swrproxy_redis_errors_total`, `swrproxy_refresh_queue_bytes`, `swrproxy_refresh_queue_jobs`,
		`swrproxy_refresh_tracked_bytes`, `swrproxy_refresh_tracked_keys`, `swrproxy_refresh_untracked_total`,
		`swrproxy_refreshes_total{outcome="done"}`, `swrproxy_refreshes_total{outcome="failed"}`,
		`swrproxy_refreshes_total{outcome="overflow"}`, `swrproxy_refreshes_total{outcome="skipped"}`,
		`swrproxy_requests_total{cache="bypass",tier="origin"}`, `swrproxy_requests_total{cache="hit",tier="l1"}`,
		`swrproxy_requests_total{cache="hit",tier="l2"}`, `swrproxy_requests_total{cache="miss",tier="origin"}`,
		`swrproxy_requests_total{cache="stale",tier="cache"}`, `swrproxy_revalidations_not_modified_total`,
		`swrproxy_stale_if_error_total`,
		`swrproxy_upstream_backends`, `swrproxy_upstream_backends_up`,
		`swrproxy_upstream_requests_total{result="failed"}`, `swrproxy_upstream_requests_total{result="success"}`,
		`swrproxy_upstream_retries_total`, `swrproxy_upstream_unavailable_total`,
		`swrproxy_warm_bytes_total`, `swrproxy_warm_keys_total`, `swrproxy_warm_last_duration_seconds`,
		`swrproxy_write_invalidations_total`}
)

// series is c's Prometheus series as the text format writes it: name{label="value",…}.
func series(c counter) string {
	if len(c.labels) == 0 {
		return c.metric
	}
	var ls []string
	for _, k := range slices.Sorted(maps.Keys(c.labels)) {
		ls = append(ls, fmt.Sprintf("%s=%q", k, c.labels[k]))
	}
	return c.metric + "{" + strings.Join(ls, ",") + "}"
}

func TestTheNamesAreTheDocumentedOnes(t *testing.T) {
	var js, ss []string
	for _, c := range counters {
		js, ss = append(js, c.json), append(ss, series(c))
	}
	sort.Strings(js)
	sort.Strings(ss)
	if !slices.Equal(js, wantJSON) {
		t.Errorf("JSON names\n%q\nwant\n%q", js, wantJSON)
	}
	if !slices.Equal(ss, wantSeries) {
		t.Errorf("Prometheus series\n%q\nwant\n%q", ss, wantSeries)
	}
}

// sources serves snap as the parts' snapshots (Bus and Policy only when snap has them), with no
// backends.
func sources(snap Snapshot) Sources {
	src := Sources{
		Handler:    func() proxy.HandlerStats { return snap.Handler },
		Filler:     func() refresh.FillerStats { return snap.Filler },
		Pool:       func() refresh.PoolStats { return snap.Pool },
		Tracker:    func() refresh.TrackerStats { return snap.Tracker },
		Store:      func() tiers.StoreStats { return snap.Store },
		Invalidate: func() invalidate.Stats { return snap.Invalidate },
		Upstream:   func() upstream.Stats { return snap.Upstream },
		Servers:    func() []upstream.Server { return nil },
	}
	if snap.Bus != nil {
		src.Bus = func() invalidate.BusStats { return *snap.Bus }
	}
	if snap.Policy != nil {
		src.Policy = func() policy.Stats { return *snap.Policy }
	}
	return src
}

// member is the value of the counter named name ("group.name" inside the object group) in the
// /_swr/stats object stats; nil when absent.
func member(stats map[string]any, name string) any {
	if g, n, ok := strings.Cut(name, "."); ok {
		group, _ := stats[g].(map[string]any)
		return group[n]
	}
	return stats[name]
}

// scrape returns the exposition text and the /_swr/stats object of m.
func scrape(t *testing.T, m *Metrics) (string, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/_swr/metrics", nil))
	b, err := json.Marshal(m.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var stats map[string]any
	if err := json.Unmarshal(b, &stats); err != nil {
		t.Fatal(err)
	}
	return rec.Body.String(), stats
}

func TestStatsJSONAndPrometheusShowTheSameValues(t *testing.T) {
	snap := numbered()
	text, stats := scrape(t, New(NewOrigin(), sources(snap)))
	for _, c := range counters {
		v := c.value(&snap)
		if got := member(stats, c.json); fmt.Sprint(got) != fmt.Sprint(v) {
			t.Errorf("stats %s = %v, want %v", c.json, got, v)
		}
		if line := fmt.Sprintf("\n%s %v\n", series(c), float(v)); !strings.Contains(text, line) {
			t.Errorf("metrics lack %q", strings.TrimSpace(line))
		}
	}
	n := 0
	for _, v := range stats {
		if g, ok := v.(map[string]any); ok {
			n += len(g)
		} else {
			n++
		}
	}
	if n != len(counters) {
		t.Errorf("stats has %d counters, want %d", n, len(counters))
	}
}

func TestWithoutABusNeitherSaysHowManyInstancesLive(t *testing.T) {
	snap := numbered()
	snap.Bus = nil
	text, stats := scrape(t, New(NewOrigin(), sources(snap)))
	if _, ok := stats["instances_live"]; ok {
		t.Error("stats has instances_live without a bus")
	}
	if strings.Contains(text, "\nswrproxy_instances ") {
		t.Error("metrics have swrproxy_instances without a bus")
	}
	if !strings.Contains(text, "\nswrproxy_l1_objects ") || !strings.Contains(text, "\ngo_goroutines ") {
		t.Error("metrics lack the other series")
	}
}

func TestWithoutAPolicyNeitherShowsItsCounters(t *testing.T) {
	snap := numbered()
	snap.Policy = nil
	text, stats := scrape(t, New(NewOrigin(), sources(snap)))
	for name := range stats {
		if strings.HasPrefix(name, "policy_") {
			t.Errorf("stats has %s without a policy", name)
		}
	}
	if strings.Contains(text, "\nswrproxy_policy_") {
		t.Error("metrics have swrproxy_policy_ series without a policy")
	}
}

func TestEveryCounterCanBeReadByItsJSONName(t *testing.T) {
	snap := numbered()
	for _, c := range counters {
		if v, ok := snap.Value(c.json); !ok || v != c.value(&snap) {
			t.Errorf("Value(%q) = %v, %v; want %v", c.json, v, ok, c.value(&snap))
		}
	}
	if _, ok := snap.Value("no_such_counter"); ok {
		t.Error("Value of an unknown name reports ok")
	}
	snap.Bus = nil
	if _, ok := snap.Value("instances_live"); ok {
		t.Error("Value of instances_live reports ok without a bus")
	}
}

func TestOriginLatencyIsObservedByKind(t *testing.T) {
	o := NewOrigin()
	o.Observe("fill", 0)
	o.Observe("pass", 0)
	o.Observe("pass", 0)
	text, _ := scrape(t, New(o, sources(Snapshot{})))
	for _, want := range []string{`swrproxy_origin_request_duration_seconds_count{kind="fill"} 1`, `swrproxy_origin_request_duration_seconds_count{kind="pass"} 2`} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
