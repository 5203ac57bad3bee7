package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/upstream"
)

// poolOf is the real *upstream.Client behind a.
func poolOf(a *Admin) *upstream.Client { return a.cfg.Pool.(*upstream.Client) }

// urls lists the pool's backends.
func urls(p *upstream.Client) []string {
	var out []string
	for _, s := range p.Servers() {
		out = append(out, s.URL)
	}
	return out
}

// mustAdd adds raw to the pool directly (not through the routes under test).
func mustAdd(t *testing.T, p *upstream.Client, raw string) {
	t.Helper()
	if _, err := p.Add(context.Background(), raw); err != nil {
		t.Fatalf("add %s: %v", raw, err)
	}
}

// errorOf is the "error" member of a JSON reply, "" when there is none.
func errorOf(t *testing.T, r reply) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error == "" {
		t.Errorf("reply %d %q is not a JSON error", r.status, r.body)
	}
	return e.Error
}

// removals are the requests that would remove http://127.0.0.1:9000, in each form.
var removals = []string{"/_swr/servers/127.0.0.1/9000", "/_swr/servers?url=" + url.QueryEscape("http://127.0.0.1:9000")}

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

func TestABackendAddedThroughTheAPIIsListedAndCanBeRemovedAtItsLocation(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app, pool := newApp(a), poolOf(a)
	env := urls(pool)[0]

	got := sendTyped(t, app, "POST", "/_swr/servers", secret, "application/json; charset=utf-8", `{"url":"HTTP://127.0.0.1:9000/"}`)
	var added upstream.Server
	if err := json.Unmarshal([]byte(got.body), &added); got.status != 201 || err != nil {
		t.Fatalf("POST: %d %s", got.status, got.body)
	}
	if added.URL != "http://127.0.0.1:9000" || added.Source != "api" || added.State != "up" {
		t.Errorf("POST answered %+v, want the normalised URL, source api, up", added)
	}
	loc := got.header.Get("Location")
	if loc != "/_swr/servers?url=http%3A%2F%2F127.0.0.1%3A9000" {
		t.Errorf("Location = %q", loc)
	}

	got = send(t, app, "GET", "/_swr/servers", secret, "")
	var list struct {
		Instance string            `json:"instance"`
		Balance  string            `json:"balance"`
		Healthy  *int              `json:"healthy"`
		Servers  []upstream.Server `json:"servers"`
	}
	if err := json.Unmarshal([]byte(got.body), &list); got.status != 200 || err != nil {
		t.Fatalf("GET: %d %s", got.status, got.body)
	}
	if list.Instance != instance || list.Balance != "round_robin" || list.Healthy == nil || *list.Healthy != 2 || len(list.Servers) != 2 {
		t.Fatalf("GET: %s", got.body)
	}
	for _, s := range list.Servers {
		if want := map[string]string{"http://127.0.0.1:9000": "api", env: "env"}[s.URL]; s.Source != want || s.State != "up" {
			t.Errorf("GET lists %+v, want it up with source %q", s, want)
		}
	}
	var fields map[string]any
	json.Unmarshal([]byte(got.body), &fields)
	if keys := slices.Sorted(func(yield func(string) bool) {
		for k := range fields {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(keys, []string{"balance", "healthy", "instance", "servers"}) {
		t.Errorf("GET /_swr/servers has members %q", keys)
	}

	for _, body := range []string{`{"url":"http://127.0.0.1:9000"}`, `{"url":"http://127.0.0.1:9000/"}`} {
		got = sendTyped(t, app, "POST", "/_swr/servers", secret, "application/json", body)
		if got.status != 409 || !strings.Contains(errorOf(t, got), "already in the pool") {
			t.Errorf("POST %s again: %d %s, want 409", body, got.status, got.body)
		}
	}

	if got := send(t, app, "DELETE", loc, secret, ""); got.status != 204 || got.body != "" {
		t.Errorf("DELETE %s: %d %q, want 204", loc, got.status, got.body)
	}
	if after := urls(pool); !slices.Equal(after, []string{env}) {
		t.Errorf("after DELETE the pool is %q", after)
	}
}

func TestThePoolFullIsA409(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app, pool := newApp(a), poolOf(a)
	for i := len(urls(pool)); i < upstream.MaxBackends; i++ {
		mustAdd(t, pool, "http://127.0.0.1:"+strconv.Itoa(10000+i))
	}
	got := sendTyped(t, app, "POST", "/_swr/servers", secret, "application/json", `{"url":"http://127.0.0.1:9000"}`)
	if got.status != 409 || !strings.Contains(errorOf(t, got), "at most") {
		t.Errorf("POST to a full pool: %d %s, want 409", got.status, got.body)
	}
	if n := len(urls(pool)); n != upstream.MaxBackends {
		t.Errorf("the pool holds %d backends", n)
	}
}

var badBodies = []struct {
	name, ctype, body string
	status            int
	says              string
}{
	{"not JSON", "application/json", `url=http://127.0.0.1:9000`, 400, "invalid JSON"},
	{"url a number", "application/json", `{"url":1}`, 400, "invalid JSON"},
	{"an array", "", `[]`, 400, "invalid JSON"},
	{"no url", "application/json", `{}`, 400, "missing url"},
	{"url null", "application/json", `{"url":null}`, 400, "missing url"},
	{"null", "application/json", `null`, 400, "missing url"},
	{"empty body", "application/json", ``, 400, "empty body"},
	{"ftp", "application/json", `{"url":"ftp://x"}`, 400, "scheme must be http or https"},
	{"credentials", "application/json", `{"url":"http://u:p@127.0.0.1:9000"}`, 400, "credentials"},
	{"a port out of range", "application/json", `{"url":"http://127.0.0.1:70000"}`, 400, "port"},
	{"a query", "application/json", `{"url":"http://127.0.0.1:9000/?a=1"}`, 400, "query"},
	{"a second value", "application/json", `{"url":"http://127.0.0.1:9000"}{}`, 400, "more than one value"},
	{"trailing garbage", "application/json", `{"url":"http://127.0.0.1:9000"} x`, 400, "more than one value"},
	{"an unknown field", "application/json", `{"url":"http://127.0.0.1:9000","weight":2}`, 400, "unknown field"},
	{"a body over 4 KiB", "application/json", `{"url":"http://127.0.0.1:9000/` + strings.Repeat("a", 5<<10) + `"}`, 413, "4 KiB"},
	{"text/plain", "text/plain", `{"url":"http://127.0.0.1:9000"}`, 415, "application/json"},
	{"a real form", "application/x-www-form-urlencoded", `url=http%3A%2F%2F127.0.0.1%3A9000`, 400, "invalid JSON"},
	{"a bad Content-Type", "application/", `{"url":"http://127.0.0.1:9000"}`, 415, "application/json"},
}

func TestBadBodiesOfPostServersAreRefusedWithAJSONErrorAndChangeNothing(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app, pool := newApp(a), poolOf(a)
	before := urls(pool)
	for _, tt := range badBodies {
		got := sendTyped(t, app, "POST", "/_swr/servers", secret, tt.ctype, tt.body)
		if msg := errorOf(t, got); got.status != tt.status || !strings.Contains(msg, tt.says) {
			t.Errorf("%s: %d %s, want %d saying %q", tt.name, got.status, got.body, tt.status, tt.says)
		}
	}
	if after := urls(pool); !slices.Equal(after, before) {
		t.Errorf("the pool went from %q to %q", before, after)
	}
}

func TestAnErrorRepeatsAtMostAFewHundredBytesOfTheInput(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app := newApp(a)
	long := strings.Repeat("é", 1500) // 3000 bytes; clipping must not split one
	for _, tt := range []struct{ method, target, body string }{
		{"POST", "/_swr/servers", `{"` + long + `":1}`},
		{"DELETE", "/_swr/servers?url=" + url.QueryEscape(long), ""},
		{"DELETE", "/_swr/servers/" + url.PathEscape(long+"/") + "/1", ""},
		{"DELETE", "/_swr/servers/h/" + url.PathEscape(long), ""},
	} {
		got := sendTyped(t, app, tt.method, tt.target, secret, "application/json", tt.body)
		if msg := errorOf(t, got); got.status != 400 || len(msg) > 210 || !strings.HasSuffix(msg, "é…") {
			t.Errorf("%s %.40s…: %d, error of %d bytes %.80q…", tt.method, tt.target, got.status, len(msg), msg)
		}
	}
}

func TestDeleteRemovesABackendByHostAndPortOrByURL(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app, pool := newApp(a), poolOf(a)
	env := urls(pool)[0]
	for _, target := range removals {
		mustAdd(t, pool, "http://127.0.0.1:9000")
		if got := send(t, app, "DELETE", target, secret, ""); got.status != 204 {
			t.Errorf("DELETE %s: %d %s, want 204", target, got.status, got.body)
		}
		if got := urls(pool); !slices.Equal(got, []string{env}) {
			t.Errorf("after DELETE %s the pool is %q", target, got)
		}
		got := send(t, app, "DELETE", target, secret, "")
		if got.status != 404 || !strings.Contains(errorOf(t, got), "no such backend") {
			t.Errorf("DELETE %s again: %d %s, want 404", target, got.status, got.body)
		}
	}
	// Host names are case-insensitive and the port a number: the same backend.
	mustAdd(t, pool, "http://localhost:9001")
	if got := send(t, app, "DELETE", "/_swr/servers/LocalHost/09001", secret, ""); got.status != 204 {
		t.Errorf("DELETE /_swr/servers/LocalHost/09001: %d %s, want 204", got.status, got.body)
	}
	// A backend on the default port is named with it.
	mustAdd(t, pool, "https://origin.example")
	if got := send(t, app, "DELETE", "/_swr/servers/origin.example/443", secret, ""); got.status != 204 {
		t.Errorf("DELETE /_swr/servers/origin.example/443: %d %s, want 204", got.status, got.body)
	}
	if got := urls(pool); !slices.Equal(got, []string{env}) {
		t.Errorf("the pool is %q", got)
	}
}

func TestAnIPv6BackendCanBeNamedBareBracketedOrPercentEncoded(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app, pool := newApp(a), poolOf(a)
	for _, target := range []string{
		"/_swr/servers/[::1]/9000", "/_swr/servers/::1/9000", "/_swr/servers/%5B%3A%3A1%5D/9000",
		"/_swr/servers/%3A%3A1/9000", "/_swr/servers/%5B::1%5D/9000",
		"/_swr/servers?url=" + url.QueryEscape("http://[::1]:9000"), "/_swr/servers?url=" + url.QueryEscape("[::1]:9000"),
	} {
		mustAdd(t, pool, "http://[::1]:9000")
		if got := send(t, app, "DELETE", target, secret, ""); got.status != 204 {
			t.Errorf("DELETE %s: %d %s, want 204", target, got.status, got.body)
		}
		if slices.Contains(urls(pool), "http://[::1]:9000") {
			t.Fatalf("DELETE %s left the backend in the pool", target)
		}
	}
}

func TestDeleteRefusesTheLastBackendAnAmbiguousNameAndBadNames(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app, pool := newApp(a), poolOf(a)
	env := urls(pool)[0]
	envURL, _ := url.Parse(env)

	got := send(t, app, "DELETE", "/_swr/servers/"+envURL.Hostname()+"/"+envURL.Port(), secret, "")
	if got.status != 409 || !strings.Contains(errorOf(t, got), "last backend") {
		t.Errorf("DELETE the last backend: %d %s, want 409", got.status, got.body)
	}

	// Two backends at one address, under different paths: the address names neither.
	mustAdd(t, pool, "http://127.0.0.1:9000/a")
	mustAdd(t, pool, "http://127.0.0.1:9000/b")
	got = send(t, app, "DELETE", "/_swr/servers/127.0.0.1/9000", secret, "")
	if got.status != 409 || !strings.Contains(errorOf(t, got), "by its url") {
		t.Errorf("DELETE an ambiguous address: %d %s, want 409", got.status, got.body)
	}
	before := urls(pool)
	for _, tt := range []struct{ target, says string }{
		{"/_swr/servers", "name the backend"},
		{"/_swr/servers?url=", "name the backend"},
		{"/_swr/servers/127.0.0.1/9000?url=http%3A%2F%2F127.0.0.1%3A9000%2Fa", "not both"},
		{"/_swr/servers/127.0.0.1/http", "port"},
		{"/_swr/servers/127.0.0.1/0", "port"},
		{"/_swr/servers/127.0.0.1/65536", "port"},
		{"/_swr/servers/127.0.0.1/+80", "port"},
		{"/_swr/servers/a%2Fb/80", "not a host"},
		{"/_swr/servers/fe80::1%25eth0/80", "not a host"},
		{"/_swr/servers/[[::1]]/80", "not a host"},
		{"/_swr/servers?url=nothing", "neither a backend URL nor host:port"},
	} {
		got := send(t, app, "DELETE", tt.target, secret, "")
		if msg := errorOf(t, got); got.status != 400 || !strings.Contains(msg, tt.says) {
			t.Errorf("DELETE %s: %d %s, want 400 saying %q", tt.target, got.status, got.body, tt.says)
		}
	}
	if got := send(t, app, "DELETE", "/_swr/servers/127.0.0.1/9000/a", secret, ""); got.status != 404 || got.body != "Not Found" {
		t.Errorf("DELETE with three segments: %d %q, want the reserved prefix's 404", got.status, got.body)
	}
	if after := urls(pool); !slices.Equal(after, before) {
		t.Errorf("the pool went from %q to %q", before, after)
	}
	if got := send(t, app, "DELETE", "/_swr/servers?url="+url.QueryEscape("http://127.0.0.1:9000/a"), secret, ""); got.status != 204 {
		t.Errorf("DELETE one of the two by its url: %d %s, want 204", got.status, got.body)
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

// curl -d labels its JSON body a form: it is accepted, as POST /_swr/invalidate accepts it.
func TestPostServersAcceptsCurlsDefaultContentType(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app, pool := newApp(a), poolOf(a)
	got := sendTyped(t, app, "POST", "/_swr/servers", secret, "application/x-www-form-urlencoded", `{"url":"http://127.0.0.1:9000"}`)
	if got.status != 201 || !slices.Contains(urls(pool), "http://127.0.0.1:9000") {
		t.Errorf("POST as curl -d sends it: %d %s, want 201 and the backend added", got.status, got.body)
	}
}
