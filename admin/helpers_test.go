package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/internal/rawhttp"
	"github.com/swrproxy/swrproxy/invalidate"
	"github.com/swrproxy/swrproxy/metrics"
	"github.com/swrproxy/swrproxy/policy"
	"github.com/swrproxy/swrproxy/proxy"
	"github.com/swrproxy/swrproxy/refresh"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

const secret = "0123456789abcdef0123456789abcdef"

// instance is the id of newAdmin's instance.
const instance = "swr-test-1"

var quiet = slog.New(slog.DiscardHandler)

type hits map[string]int64

func (h hits) Hits(key string) int64 { return h[key] }

type noRefresh struct{}

func (noRefresh) Refresh(*tiers.Entry, uint64) bool { return false }
func (noRefresh) Forget(string)                     {}
func (noRefresh) Hot(string) bool                   { return false }

// newAdmin returns the routes over a real L1-only store holding /a, a real invalidation service
// and real metrics, with secret as the token (empty: private routes disabled).
func newAdmin(t testing.TB, secret string) (*Admin, *tiers.Store) {
	t.Helper()
	store, err := tiers.New(tiers.Options{L1MaxBytes: 1 << 20, L1MaxTTL: time.Minute, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	err = store.Set(context.Background(), &tiers.Entry{Key: "/a", Status: 200, Body: []byte("a"), ETag: `"a"`,
		Tags: []string{"t"}, Stored: time.Now(), Fresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	inv := invalidate.New(store, noRefresh{}, nil, quiet)
	// The origin answers 500 at /fail, 404 elsewhere: one failed and one successful exchange.
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(origin.Close)
	u, _ := url.Parse(origin.URL)
	pool, err := upstream.New(upstream.Options{Backends: []*url.URL{u}, Timeout: 5 * time.Second, Instance: instance})
	if err != nil {
		t.Fatal(err)
	}
	src := metrics.Sources{
		Handler:    func() proxy.HandlerStats { return proxy.HandlerStats{HitL1: 7, ClientSuccess: 5, ClientFailed: 2} },
		Filler:     func() refresh.FillerStats { return refresh.FillerStats{} },
		Pool:       func() refresh.PoolStats { return refresh.PoolStats{} },
		Tracker:    func() refresh.TrackerStats { return refresh.TrackerStats{} },
		Store:      store.Stats,
		Invalidate: inv.Stats,
		Upstream:   pool.Stats,
		Servers:    pool.Servers,
		Policy: func() policy.Stats {
			var s policy.Stats
			s.Reloads, s.Failures, s.Errors[0][0] = 2, 1, 4
			return s
		},
	}
	return New(Config{
		Secret: secret, Invalidator: inv, Store: store, Hits: hits{"/a": 3}, Pool: pool,
		Metrics: metrics.New(metrics.NewOrigin(), src), Log: quiet,
	}), store
}

// newApp is the admin listener's app (the production Fiber config and guard) over a.
func newApp(a *Admin) *fiber.App { return proxy.NewAdminApp(quiet, a.Mount) }

type reply struct {
	status int
	header http.Header
	body   string
}

func send(t *testing.T, app *fiber.App, method, target, token, body string) reply {
	t.Helper()
	return sendTyped(t, app, method, target, token, "", body)
}

// sendTyped is send with a Content-Type field (none when ctype is "").
func sendTyped(t *testing.T, app *fiber.App, method, target, token, ctype, body string) reply {
	t.Helper()
	var r io.Reader
	if body != "" && method != fiber.MethodGet && method != fiber.MethodHead {
		r = strings.NewReader(body) // the guard refuses a GET or HEAD with a body
	}
	req := httptest.NewRequest(method, target, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := app.Test(req, -1)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return reply{res.StatusCode, res.Header, string(b)}
}

// serve runs the admin listener's app over a on a loopback listener until the test ends and
// returns its address: these tests write bytes that no HTTP client would.
func serve(t *testing.T, a *Admin) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := newApp(a)
	done := make(chan struct{})
	go func() { app.Listener(ln); close(done) }()
	t.Cleanup(func() { app.Shutdown(); <-done })
	return ln.Addr().String()
}

const (
	auth        = "Authorization: Bearer " + secret + "\r\n"
	listServers = "GET /_swr/servers HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n"
	healthz     = "GET /_swr/healthz HTTP/1.1\r\nHost: x\r\n\r\n"
)

func exchange(t *testing.T, addr, raw string) rawhttp.Result {
	t.Helper()
	res, err := rawhttp.Exchange(addr, raw, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func statuses(res rawhttp.Result) []int {
	var out []int
	for _, r := range res.Responses {
		out = append(out, r.StatusCode)
	}
	return out
}

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
