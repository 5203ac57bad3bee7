package main

// The private /_swr/ endpoints through run: health, readiness, metrics, the admin listener, keys and
// the checks every private endpoint makes.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

func TestHealthzAndReadyzAnswerWithRedisDisabled(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {})
	p := startProxy(t, o.URL, nil)
	if r := get(t, p.URL+"/_swr/healthz"); r.StatusCode != 200 {
		t.Fatalf("healthz: %d", r.StatusCode)
	}
	r := get(t, p.URL+"/_swr/readyz")
	if r.StatusCode != 200 || !strings.Contains(r.Body, `"origin":"ok"`) || !strings.Contains(r.Body, `"redis":"disabled"`) {
		t.Fatalf("readyz: %d %s", r.StatusCode, r.Body)
	}
}

func TestMetricsArePrometheusText(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "m")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_REDIS_URL": redistest.Start(t).URL()})
	get(t, p.URL+"/a")
	get(t, p.URL+"/a")
	do(http.MethodPost, p.URL+"/a")
	r := get(t, p.URL+"/_swr/metrics")
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`swrproxy_requests_total{cache="hit",tier="l1"} 1`,
		`swrproxy_requests_total{cache="miss",tier="origin"} 1`,
		`swrproxy_requests_total{cache="bypass",tier="origin"} 1`,
		`swrproxy_origin_requests_total 1`,
		`swrproxy_origin_request_duration_seconds_count{kind="fill"} 1`,
		`swrproxy_origin_request_duration_seconds_count{kind="pass"} 1`,
		`swrproxy_collapsed_total{scope="fleet"} 0`,
		`swrproxy_refreshes_total{outcome="overflow"} 0`,
		`swrproxy_invalidation_requests_total 1`,
		`swrproxy_write_invalidations_total 1`, // the POST cleared /a
		`swrproxy_refresh_tracked_keys 1`,
		`swrproxy_refresh_tracked_bytes `,
		`swrproxy_refresh_queue_bytes `,
		`swrproxy_refresh_untracked_total 0`,
		`swrproxy_l1_objects `,
		`swrproxy_l1_bytes `,
		`swrproxy_redis_errors_total 0`,
		`swrproxy_redis_circuit_open 0`,
		`swrproxy_instances 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(r.Body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestTheAdminListenerHasEveryPrivateEndpointAndTheProxyListenerOnlyHealthz(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "origin") })
	p := startProxy(t, o.URL, map[string]string{"SWR_ADMIN_LISTEN": "127.0.0.1:0", "SWR_INVALIDATE_SECRET": secret})
	auth := []string{"Authorization", "Bearer " + secret}
	for _, path := range []string{"/_swr/healthz", "/_swr/readyz", "/_swr/metrics", "/_swr/stats", "/_swr/keys"} {
		if r := get(t, p.Admin+path, auth...); r.StatusCode != 200 {
			t.Errorf("admin listener GET %s: %d, want 200", path, r.StatusCode)
		}
		want := 404
		if path == "/_swr/healthz" {
			want = 200 // liveness on every listener
		}
		if r := get(t, p.URL+path, auth...); r.StatusCode != want {
			t.Errorf("proxy listener GET %s: %d, want %d", path, r.StatusCode, want)
		}
	}
	if r := do("PURGE", p.URL+"/x", auth...); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PURGE on the proxy listener: %d, want 405", r.StatusCode)
	}
	if r := do("PURGE", p.Admin+"/x", auth...); r.StatusCode != 200 {
		t.Errorf("PURGE on the admin listener: %d %s, want 200", r.StatusCode, r.Body)
	}
	if n := o.hits.Load(); n != 0 {
		t.Errorf("the origin got %d requests for /_swr/ paths", n)
	}
}

func TestReadinessNamesNoInternalAddress(t *testing.T) {
	t.Parallel()
	// Redis and the origin are both down: once the health checks say so, the reply says so in
	// generic words.
	down := testenv.FreePort(t)
	p := startProxy(t, "http://127.0.0.1:"+strconv.Itoa(down), map[string]string{
		"SWR_REDIS_URL":       "redis://127.0.0.1:" + strconv.Itoa(down) + "/0",
		"SWR_HEALTH_INTERVAL": "50ms", "SWR_HEALTH_FALL": "1"})
	const want = `{"origin":"unreachable","redis":"unreachable","status":"ready"}`
	var r reply
	testenv.WaitFor(t, 10*time.Second, "readyz to say both are unreachable", func() bool {
		r = get(t, p.URL+"/_swr/readyz")
		return r.StatusCode == 200 && r.Body == want
	})
}

func TestPrivateEndpointsRejectBadRequestsAndChangeNothing(t *testing.T) {
	t.Parallel()
	o := newVersionedOrigin(t)
	p := startProxy(t, o.URL, map[string]string{"SWR_INVALIDATE_SECRET": secret})
	get(t, p.URL+"/keep")
	tests := []struct {
		name, token, body string
		status            int
		msg               string
	}{
		{"no token", "", `{"keys":["/keep"]}`, 401, "Bearer"},
		{"wrong token", "nope", `{"keys":["/keep"]}`, 401, "Bearer"},
		{"token with the secret as prefix", secret + "x", `{"keys":["/keep"]}`, 401, "Bearer"},
		{"invalid JSON", secret, `{"keys":`, 400, "invalid JSON"},
		{"unknown field", secret, `{"key":["/keep"]}`, 400, "unknown field"},
		{"empty selection", secret, `{"mode":"clear"}`, 400, "empty selection"},
		{"bad mode", secret, `{"keys":["/keep"],"mode":"nuke"}`, 400, "mode"},
		{"empty key", secret, `{"keys":[""]}`, 400, "empty"},
		{"two values", secret, `{"keys":["/keep"]} {}`, 400, "more than one"},
		{"too big", secret, `{"keys":["` + strings.Repeat("a", 1<<20) + `"]}`, 413, "1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, res := postJSON(t, p.URL+"/_swr/invalidate", tt.token, tt.body)
			if status != tt.status || !strings.Contains(fmt.Sprint(res["error"]), tt.msg) {
				t.Fatalf("got %d %v, want %d with %q", status, res, tt.status, tt.msg)
			}
			expect(t, get(t, p.URL+"/keep"), 200, "HIT", "/keep v1")
		})
	}
	for _, path := range []string{"/_swr/stats", "/_swr/keys"} {
		if r := get(t, p.URL+path); r.StatusCode != 401 {
			t.Errorf("GET %s without token: %d, want 401", path, r.StatusCode)
		}
	}
	if r := do("PURGE", p.URL+"/keep"); r.StatusCode != 401 {
		t.Errorf("PURGE without token: %d, want 401", r.StatusCode)
	}
	expect(t, get(t, p.URL+"/keep"), 200, "HIT", "/keep v1")
	if r := do("PURGE", p.URL+"/keep", "Authorization", "Bearer "+secret); r.StatusCode != 200 || !strings.Contains(r.Body, `"cleared":1`) {
		t.Fatalf("PURGE: %d %s", r.StatusCode, r.Body)
	}
	expect(t, get(t, p.URL+"/keep"), 200, "MISS", "/keep v1")
	if n := o.hits.Load(); n != 2 {
		t.Errorf("origin hits = %d, want 2 (PURGE requests never reach the origin)", n)
	}
}

func TestPrivateEndpointsAre404WithoutASecret(t *testing.T) {
	t.Parallel()
	o := newVersionedOrigin(t)
	p := startProxy(t, o.URL, nil)
	get(t, p.URL+"/keep")
	for _, r := range []reply{
		do(http.MethodPost, p.URL+"/_swr/invalidate", "Authorization", "Bearer "),
		do(http.MethodGet, p.URL+"/_swr/keys"),
		do(http.MethodGet, p.URL+"/_swr/stats"),
		do("PURGE", p.URL+"/keep"),
	} {
		if r.StatusCode != 404 {
			t.Errorf("got %d %q, want 404", r.StatusCode, r.Body)
		}
	}
	expect(t, get(t, p.URL+"/keep"), 200, "HIT", "/keep v1")
}

func TestKeysListingIsPaged(t *testing.T) {
	t.Parallel()
	o := newVersionedOrigin(t)
	p := startProxy(t, o.URL, map[string]string{"SWR_INVALIDATE_SECRET": secret, "SWR_REDIS_URL": redistest.Start(t).URL()})
	for _, path := range []string{"/a/1", "/a/2", "/a/3", "/b/1"} {
		get(t, p.URL+path)
	}
	get(t, p.URL+"/a/1")
	var got []string
	after := ""
	for page := 0; page < 5; page++ {
		r := get(t, p.URL+"/_swr/keys?prefix=/a/&limit=2&after="+after, "Authorization", "Bearer "+secret)
		var out struct {
			Keys []struct {
				Key   string `json:"key"`
				Bytes int    `json:"bytes"`
				Fresh bool   `json:"fresh"`
				Hits  int64  `json:"hits"`
			} `json:"keys"`
			Next string `json:"next"`
		}
		if err := json.Unmarshal([]byte(r.Body), &out); err != nil {
			t.Fatalf("keys: %d %s", r.StatusCode, r.Body)
		}
		for _, k := range out.Keys {
			if !k.Fresh || k.Bytes == 0 {
				t.Errorf("key %+v: want fresh with a size", k)
			}
			if k.Key == "/a/1" && k.Hits < 1 {
				t.Errorf("/a/1 hits = %d, want ≥ 1", k.Hits)
			}
			got = append(got, k.Key)
		}
		if out.Next == "" {
			break
		}
		after = out.Next
	}
	if strings.Join(got, " ") != "/a/1 /a/2 /a/3" {
		t.Errorf("listed %q, want /a/1 /a/2 /a/3 over two pages", got)
	}
	_, st := getStats(t, p)
	if st["hits_l1"] != float64(1) || st["misses"] != float64(4) {
		t.Errorf("stats %v", st)
	}
}
