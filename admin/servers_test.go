package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/upstream"
)

func TestPoolRoutesAnswer401WithoutTheTokenAnd404WithoutASecretAndChangeNothing(t *testing.T) {
	for _, tt := range []struct {
		secret, token string
		status        int
	}{{secret, "", 401}, {secret, "nope", 401}, {secret, secret + "x", 401}, {"", "", 404}, {"", secret, 404}} {
		a, _ := newAdmin(t, tt.secret)
		app, pool := newApp(a), poolOf(a)
		mustAdd(t, pool, "http://127.0.0.1:9000")
		before := urls(pool)
		got := sendTyped(t, app, "POST", "/_swr/servers", tt.token, "application/json", `{"url":"http://127.0.0.1:9001"}`)
		if got.status != tt.status {
			t.Errorf("secret %q, token %q: POST: %d %s, want %d", tt.secret, tt.token, got.status, got.body, tt.status)
		}
		for _, target := range append(removals, "/_swr/servers", "/_swr/stats/detail") {
			method := "DELETE"
			if strings.HasSuffix(target, "detail") || target == "/_swr/servers" {
				method = "GET"
			}
			if got := send(t, app, method, target, tt.token, ""); got.status != tt.status || strings.Contains(got.body, "127.0.0.1") {
				t.Errorf("secret %q, token %q: %s %s: %d %s, want %d naming no backend", tt.secret, tt.token, method, target, got.status, got.body, tt.status)
			}
		}
		if after := urls(pool); !slices.Equal(after, before) {
			t.Errorf("secret %q, token %q: the pool went from %q to %q", tt.secret, tt.token, before, after)
		}
	}
}

// TestAnUnreachableRedisIsA503AndChangesNothing: with the fleet's pool in a real Redis that has
// stopped, a change cannot be made; the reply says so without naming Redis's address.
func TestAnUnreachableRedisIsA503AndChangesNothing(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newAdmin(t, secret)
	env := urls(poolOf(a))[0]
	u, _ := url.Parse(env)
	// No retries: a refused connection fails at once, not after go-redis's backoffs.
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { rdb.Close() })
	pool, err := upstream.New(upstream.Options{Backends: []*url.URL{u}, Timeout: 5 * time.Second, Redis: rdb, PoolSecret: secret, Instance: instance})
	if err != nil {
		t.Fatal(err)
	}
	a.cfg.Pool = pool
	app := newApp(a)
	// Redis up: the change is the fleet's.
	got := sendTyped(t, app, "POST", "/_swr/servers", secret, "application/json", `{"url":"http://127.0.0.1:9000"}`)
	if got.status != 201 || len(urls(pool)) != 2 || !slices.Contains(urls(pool), "http://127.0.0.1:9000") {
		t.Fatalf("POST with Redis up: %d %s; pool %q", got.status, got.body, urls(pool))
	}
	srv.Stop()
	before := urls(pool)
	for _, tt := range []struct{ method, target, body string }{
		{"POST", "/_swr/servers", `{"url":"http://127.0.0.1:9001"}`},
		{"DELETE", removals[0], ""},
		{"DELETE", removals[1], ""},
	} {
		got := sendTyped(t, app, tt.method, tt.target, secret, "application/json", tt.body)
		if msg := errorOf(t, got); got.status != 503 || got.header.Get("Retry-After") == "" ||
			!strings.Contains(msg, "unreachable") || strings.Contains(msg, srv.Addr()) {
			t.Errorf("%s %s with Redis down: %d %s (Retry-After %q), want 503 naming no address",
				tt.method, tt.target, got.status, got.body, got.header.Get("Retry-After"))
		}
	}
	if after := urls(pool); !slices.Equal(after, before) {
		t.Errorf("the pool went from %q to %q", before, after)
	}
}

func TestStatsCarryTheClientAndServerCountsAndDetailListsEachBackend(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app, pool := newApp(a), poolOf(a)
	for _, path := range []string{"/ok", "/fail"} { // a 404 (success) and a 500 (failed)
		res, err := pool.Do(context.Background(), &upstream.Request{Method: "GET", URI: path, Header: http.Header{}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	env := urls(pool)[0]

	got := send(t, app, "GET", "/_swr/stats", secret, "")
	var stats map[string]any
	if err := json.Unmarshal([]byte(got.body), &stats); got.status != 200 || err != nil {
		t.Fatalf("stats: %d %s", got.status, got.body)
	}
	client, _ := stats["client"].(map[string]any)
	server, _ := stats["server"].(map[string]any)
	if client["success"] != float64(5) || client["failed"] != float64(2) || server["success"] != float64(1) || server["failed"] != float64(1) {
		t.Errorf("stats client %v, server %v; want 5/2 and 1/1", client, server)
	}
	for k, want := range map[string]float64{"hits_l1": 7, "upstream_backends": 1, "upstream_backends_up": 1,
		"upstream_retries": 0, "upstream_unavailable": 0, "origin_budget_in_use": 0, "origin_budget_waits": 0} {
		if stats[k] != want {
			t.Errorf("stats %s = %v, want %v", k, stats[k], want)
		}
	}

	got = send(t, app, "GET", "/_swr/stats/detail", secret, "")
	var detail struct {
		Instance string            `json:"instance"`
		Servers  []upstream.Server `json:"servers"`
	}
	if err := json.Unmarshal([]byte(got.body), &detail); got.status != 200 || err != nil {
		t.Fatalf("stats/detail: %d %s", got.status, got.body)
	}
	if detail.Instance != instance || len(detail.Servers) != 1 {
		t.Fatalf("stats/detail: %s", got.body)
	}
	if s := detail.Servers[0]; s.URL != env || s.Success != 1 || s.Failed != 1 || s.Latency.Samples != 2 {
		t.Errorf("stats/detail servers[0] = %+v", s)
	}

	got = send(t, app, "GET", "/_swr/metrics", "", "")
	for _, want := range []string{
		`swrproxy_backend_requests_total{backend="` + env + `",result="success"} 1`,
		`swrproxy_backend_requests_total{backend="` + env + `",result="failed"} 1`,
		`swrproxy_backend_up{backend="` + env + `"} 1`,
		`swrproxy_client_responses_total{result="success"} 5`,
		`swrproxy_upstream_requests_total{result="failed"} 1`,
	} {
		if !strings.Contains(got.body, "\n"+want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
}
