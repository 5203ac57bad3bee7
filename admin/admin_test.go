package admin

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/invalidate"
	"github.com/swrproxy/swrproxy/proxy"
	"github.com/swrproxy/swrproxy/tiers"
)

// public are the /_swr/ routes anyone may call.
var public = []string{"/_swr/healthz", "/_swr/readyz", "/_swr/metrics"}

// pageRoutes are the admin page's own routes: the page, its login, logout and assets, gated by
// the session and its tokens rather than the Bearer token (ui_test.go); like every private
// route they answer 404 without a secret.
var pageRoutes = []string{"/_swr/ui", "/_swr/ui/", "/_swr/ui/login", "/_swr/ui/logout", "/_swr/ui/app.js", "/_swr/ui/app.css"}

// next marks requests that got past the admin routes to the handler registered after them.
const next = 299

// withNext is an app with the production Fiber configuration and guard (proxy.NewAdminApp's):
// mount, then a handler answering next, which stands for the proxy's handler.
func withNext(mount func(fiber.Router)) *fiber.App {
	return proxy.NewAdminApp(quiet, func(r fiber.Router) {
		mount(r)
		r.Use(func(c *fiber.Ctx) error { return c.SendStatus(next) })
	})
}

// private lists the routes under /_swr/ that the app registered, other than the public ones.
func private(t *testing.T, app *fiber.App) []fiber.Route {
	t.Helper()
	var rs []fiber.Route
	for _, r := range app.GetRoutes(true) {
		if strings.HasPrefix(r.Path, "/_swr/") && !slices.Contains(public, r.Path) {
			rs = append(rs, r)
		}
	}
	for _, want := range []string{"/_swr/invalidate", "/_swr/keys", "/_swr/stats", "/_swr/stats/detail", "/_swr/servers",
		"/_swr/servers/:host/:port"} {
		if !slices.ContainsFunc(rs, func(r fiber.Route) bool { return r.Path == want }) {
			t.Fatalf("no route %s among %v", want, rs)
		}
	}
	return rs
}

func TestEveryPrivateRouteAnswers401WithoutTheRightTokenAndChangesNothing(t *testing.T) {
	a, store := newAdmin(t, secret)
	app := newApp(a)
	for _, r := range private(t, app) {
		if slices.Contains(pageRoutes, r.Path) {
			continue
		}
		for _, token := range []string{"", "nope", secret + "x", secret[:len(secret)-1]} {
			got := send(t, app, r.Method, r.Path, token, `{"all":true}`)
			if got.status != 401 || got.header.Get("WWW-Authenticate") != `Bearer realm="swrproxy"` {
				t.Errorf("%s %s with token %q: %d %q, want 401 with a Bearer challenge", r.Method, r.Path, token, got.status, got.body)
			}
			if r.Method != fiber.MethodHead && !strings.Contains(got.body, "missing or wrong Bearer token") {
				t.Errorf("%s %s: body %q", r.Method, r.Path, got.body)
			}
		}
	}
	if got := send(t, app, "PURGE", "/a", "nope", ""); got.status != 401 {
		t.Errorf("PURGE with a wrong token: %d, want 401", got.status)
	}
	if store.Peek("/a") == nil {
		t.Error("a request without the token changed the cache")
	}
}

func TestPrivateRoutesAre404WithoutASecret(t *testing.T) {
	a, store := newAdmin(t, "")
	app := newApp(a)
	for _, r := range private(t, app) {
		if got := send(t, app, r.Method, r.Path, "", `{"all":true}`); got.status != 404 {
			t.Errorf("%s %s: %d, want 404", r.Method, r.Path, got.status)
		}
		if got := send(t, app, r.Method, r.Path, " ", `{"all":true}`); got.status != 404 {
			t.Errorf("%s %s with an empty Bearer token: %d, want 404", r.Method, r.Path, got.status)
		}
	}
	if got := send(t, app, "PURGE", "/a", "", ""); got.status != 404 || got.body != "Not Found" {
		t.Errorf("PURGE: %d %q, want 404", got.status, got.body)
	}
	if store.Peek("/a") == nil {
		t.Error("a request without a secret set changed the cache")
	}
}

func TestPublicRoutesNeedNoToken(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app := newApp(a)
	if got := send(t, app, "GET", "/_swr/healthz", "", ""); got.status != 200 || got.body != "ok\n" {
		t.Errorf("healthz: %d %q", got.status, got.body)
	}
	if got := send(t, app, "GET", "/_swr/readyz", "", ""); got.status != 200 || got.body != `{"origin":"ok","redis":"disabled","status":"ready"}` {
		t.Errorf("readyz: %d %q", got.status, got.body)
	}
	got := send(t, app, "GET", "/_swr/metrics", "", "")
	if got.status != 200 || !strings.HasPrefix(got.header.Get("Content-Type"), "text/plain") ||
		!strings.Contains(got.body, `swrproxy_requests_total{cache="hit",tier="l1"} 7`) {
		t.Errorf("metrics: %d %s\n%s", got.status, got.header.Get("Content-Type"), got.body)
	}
}

func TestTheTokenOpensStatsKeysInvalidateAndPurge(t *testing.T) {
	a, store := newAdmin(t, secret)
	app := newApp(a)

	got := send(t, app, "GET", "/_swr/stats", secret, "")
	var stats map[string]any
	if err := json.Unmarshal([]byte(got.body), &stats); got.status != 200 || err != nil || stats["hits_l1"] != float64(7) || stats["l1_objects"] != float64(1) {
		t.Errorf("stats: %d %s", got.status, got.body)
	}
	// The policy's counters, as metrics' table names them.
	perr, _ := stats["policy_errors"].(map[string]any)
	if stats["policy_reloads"] != float64(2) || stats["policy_reload_failures"] != float64(1) ||
		perr["on_request_timeout"] != float64(4) || perr["on_response_busy"] != float64(0) {
		t.Errorf("stats lack the policy's counters: %s", got.body)
	}

	got = send(t, app, "GET", "/_swr/keys?prefix=/&limit=1", secret, "")
	var page struct {
		Keys []map[string]any `json:"keys"`
		Next *string          `json:"next"`
	}
	if err := json.Unmarshal([]byte(got.body), &page); got.status != 200 || err != nil || len(page.Keys) != 1 {
		t.Fatalf("keys: %d %s", got.status, got.body)
	}
	fields := slices.Sorted(maps.Keys(page.Keys[0]))
	if want := []string{"age_seconds", "bytes", "fresh", "fresh_for_seconds", "hits", "key", "tags", "variants"}; !slices.Equal(fields, want) {
		t.Errorf("a key has fields %q, want %q", fields, want)
	}
	if k := page.Keys[0]; k["key"] != "/a" || k["hits"] != float64(3) || k["fresh"] != true || k["variants"] != float64(1) || page.Next != nil {
		t.Errorf("keys: %s", got.body)
	}
	if got := send(t, app, "GET", "/_swr/keys?limit=0", secret, ""); got.status != 400 || !strings.Contains(got.body, "limit must be") {
		t.Errorf("keys?limit=0: %d %s", got.status, got.body)
	}

	got = send(t, app, "POST", "/_swr/invalidate", secret, `{"keys":["/a"],"mode":"refresh"}`)
	if got.status != 200 || got.body != `{"mode":"refresh","matched":1,"cleared":0,"refreshing":0,"instances":1,"acknowledged":1,"complete":true}` {
		t.Errorf("invalidate: %d %s", got.status, got.body)
	}
	if got := send(t, app, "POST", "/_swr/invalidate", secret, `{"key":["/a"]}`); got.status != 400 || !strings.Contains(got.body, "unknown field") {
		t.Errorf("invalidate with an unknown field: %d %s", got.status, got.body)
	}
	if got := send(t, app, "POST", "/_swr/invalidate", secret, strings.Repeat(" ", invalidate.MaxBody+1)); got.status != 413 || !strings.Contains(got.body, "1 MiB") {
		t.Errorf("invalidate with a body over 1 MiB: %d %s", got.status, got.body)
	}

	if got := send(t, app, "PURGE", "/a", secret, ""); got.status != 200 || !strings.Contains(got.body, `"cleared":1`) {
		t.Errorf("PURGE: %d %s", got.status, got.body)
	}
	if o := store.Peek("/a"); o != nil && len(o.Variants) > 0 {
		t.Error("/a is still cached after PURGE")
	}
}

func TestEveryOtherReservedPathIs404InAnyCaseAndTheRestPassesOn(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app := withNext(a.Mount)
	for _, path := range []string{"/_swr", "/_swr/", "/_swr/nope", "/_SWR/stats", "/_Swr/healthz", "/_swr/stats/", "/_swr/healthz/"} {
		if got := send(t, app, "GET", path, secret, ""); got.status != 404 || got.body != "Not Found" {
			t.Errorf("GET %s: %d %q, want 404", path, got.status, got.body)
		}
	}
	if got := send(t, app, "POST", "/_swr/stats", secret, ""); got.status != 404 {
		t.Errorf("POST /_swr/stats: %d, want 404", got.status)
	}
	for _, path := range []string{"/x", "/_swrx", "/api/_swr/stats", "/x?/_swr/stats"} {
		if got := send(t, app, "GET", path, secret, ""); got.status != next {
			t.Errorf("GET %s: %d, want it passed on", path, got.status)
		}
	}
}

func TestThePublicMountHasOnlyHealthzAndRefusesPurge(t *testing.T) {
	a, store := newAdmin(t, secret)
	app := withNext(a.MountPublic)
	if got := send(t, app, "GET", "/_swr/healthz", "", ""); got.status != 200 || got.body != "ok\n" {
		t.Errorf("healthz: %d %q", got.status, got.body)
	}
	for _, path := range append([]string{"/_swr/stats", "/_swr/keys", "/_swr/invalidate"}, public[1:]...) {
		if got := send(t, app, "GET", path, secret, ""); got.status != 404 {
			t.Errorf("GET %s: %d, want 404", path, got.status)
		}
	}
	if got := send(t, app, "PURGE", "/a", secret, ""); got.status != 405 || got.body != "Method Not Allowed" {
		t.Errorf("PURGE: %d %q, want 405", got.status, got.body)
	}
	if store.Peek("/a") == nil {
		t.Error("PURGE on the public mount changed the cache")
	}
	if got := send(t, app, "GET", "/x", "", ""); got.status != next {
		t.Errorf("GET /x: %d, want it passed on", got.status)
	}
}

// TestPurgeNamesTheKeyTheProxyStoredWithItsHost: with SWR_KEY_HOST, PURGE keys the path by the
// request's Host as the proxy does (httpcache.AppendKeyHost: lower case, default port dropped),
// so it clears the entry a lookup of the same URL finds.
func TestPurgeNamesTheKeyTheProxyStoredWithItsHost(t *testing.T) {
	a, store := newAdmin(t, secret)
	a.cfg.KeyHost = true
	key := httpcache.Key(string(httpcache.AppendKeyHost(nil, []byte("shop.example"), false)), "/p?x=1")
	if key != "shop.example /p?x=1" {
		t.Fatalf("key = %q", key)
	}
	if err := store.Set(context.Background(), &tiers.Entry{Key: key, Status: 200, Body: []byte("p"), ETag: `"p"`,
		Stored: time.Now(), Fresh: time.Hour}); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("PURGE", "/p?x=1", nil)
	req.Host = "SHOP.example:80"
	req.Header.Set("Authorization", "Bearer "+secret)
	res, err := newApp(a).Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), `"cleared":1`) {
		t.Errorf("PURGE with Host SHOP.example:80: %d %s, want the entry cleared", res.StatusCode, b)
	}
	if o := store.Peek(key); o != nil && len(o.Variants) > 0 {
		t.Errorf("%q is still cached after PURGE", key)
	}
}
