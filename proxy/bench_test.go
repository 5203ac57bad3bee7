package proxy_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/internal/wasmtest"
	"github.com/swrproxy/swrproxy/invalidate"
	"github.com/swrproxy/swrproxy/policy"
	"github.com/swrproxy/swrproxy/policy/wasm"
	"github.com/swrproxy/swrproxy/proxy"
	"github.com/swrproxy/swrproxy/refresh"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// newHandler wires a real handler (L1 only, 64 MiB) in front of origin, as main does.
func newHandler(tb testing.TB, origin string) *proxy.Handler {
	tb.Helper()
	return newHandlerL1(tb, origin, 64<<20)
}

// newHandlerL1 is newHandler with an L1 of l1 bytes.
func newHandlerL1(tb testing.TB, origin string, l1 int64) *proxy.Handler {
	tb.Helper()
	return newHandlerWith(tb, origin, l1, nil, refresh.Compression{})
}

// newHandlerWith is the handler as main wires it: an L1 of l1 bytes, L2 in rdb (nil for none),
// and compression c (SWR_COMPRESS; the zero value is off).
func newHandlerWith(tb testing.TB, origin string, l1 int64, rdb redis.UniversalClient, c refresh.Compression) *proxy.Handler {
	tb.Helper()
	log := slog.New(slog.DiscardHandler)
	store, err := tiers.New(tiers.Options{L1MaxBytes: l1, L1MaxTTL: time.Hour, Redis: rdb, L2Timeout: time.Second, Log: log})
	if err != nil {
		tb.Fatal(err)
	}
	u, _ := url.Parse(origin)
	up, err := upstream.New(upstream.Options{Backends: []*url.URL{u}, Timeout: 5 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	ref := refresh.New(refresh.Options{Store: store, Origin: up, Defaults: httpcache.Defaults{TTL: time.Minute},
		MaxObjectBytes: 1 << 20, Timeout: 5 * time.Second, Workers: 2, Window: 5 * time.Minute,
		L1MaxBytes: 64 << 20, Log: log, Compress: c})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ref.Run(ctx); close(done) }()
	tb.Cleanup(func() { cancel(); <-done })
	return &proxy.Handler{Store: store, Filler: ref.Filler, Refresher: ref.Pool, Tracker: ref.Tracker,
		Invalidator: invalidate.New(store, ref, nil, log), Origin: up, Timeout: 5 * time.Second, Log: log}
}

// benchRules is a realistic rules file: the request benchmarked matches its fifth rule, after
// four that each fail on a different condition, and that rule rebuilds the key (ignored and
// sorted parameters, a keyed header).
const benchRules = `
rules:
  - name: private
    match: {path_prefix: /account/}
    cache: false
  - name: static
    match: {path: "/static/**", methods: [GET, HEAD]}
    ttl: 1h
    tags: ["static-{2}"]
  - name: tenant-dashboards
    match: {path_prefix: /dash/, header: {X-Tenant: "*"}}
    key: {include_headers: [X-Tenant]}
  - name: orders
    match: {path: "/api/orders/*", query: {book: "*"}}
    ttl: 500ms
  - name: prices
    match: {path: "/api/prices*", methods: [GET, HEAD]}
    ttl: 1h
    stale_while_revalidate: 30s
    key: {ignore_query: ["utm_*", "_"], sort_query: true, include_headers: [X-Region]}
    response_headers: {set: {X-Frame-Options: DENY}, remove: [Server]}
    tags: ["prices", "pair-{2}"]
  - name: rest
    default_ttl: 5s
`

// BenchmarkL1HitThroughFiber measures a fresh L1 hit through the whole app as a listener serves
// it (the guard with its connection deadline, the direct path to the handler, headers, body),
// without the network: without a policy, and with benchRules.
func BenchmarkL1HitThroughFiber(b *testing.B) {
	for _, tt := range []struct {
		name        string
		rules       string
		module      string // a Wasm policy module's package: its on_request runs on every hit
		conditional bool
	}{{"policy=none", "", "", false}, {"policy=none/if-none-match", "", "", true},
		{"policy=rules", benchRules, "", false}, {"policy=rules/if-none-match", benchRules, "", true},
		{"policy=rules+wasm-on_request", benchRules, "../examples/policy", false}} {
		conditional := tt.conditional
		b.Run(tt.name, func(b *testing.B) {
			origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=3600")
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"pair":"ALGO-USD","price":"0.1834","ts":1700000000}`)
			}))
			defer origin.Close()
			h := newHandler(b, origin.URL)
			if tt.rules != "" {
				h.Policy = loadPolicy(b, tt.rules, tt.module)
			}
			app := proxy.NewApp(h, nil)
			app.Handler()                 // builds the routes
			serve := app.Server().Handler // with the guard, as a listener serves it

			var ctx fasthttp.RequestCtx
			ctx.Init2(benchConn(b), nil, false) // a connection, whose deadline the guard keeps
			ctx.Request.Header.SetMethod(fasthttp.MethodGet)
			ctx.Request.SetRequestURI("/api/prices?pair=ALGO-USD&utm_source=feed&_=1700000000")
			ctx.Request.Header.SetHost("prices.example")
			ctx.Request.Header.Set("X-Region", "eu")
			ctx.Request.Header.Set("User-Agent", "poller/1.0")
			serve(&ctx) // the miss that fills the entry
			if got := string(ctx.Response.Header.Peek("X-Cache")); got != "MISS" {
				b.Fatalf("first request X-Cache = %q", got)
			}
			tag := string(ctx.Response.Header.Peek("ETag"))
			ctx.Response.Reset()
			if conditional {
				ctx.Request.Header.Set("If-None-Match", "W/"+tag)
			}
			b.ReportAllocs()
			for b.Loop() {
				serve(&ctx)
				ctx.Response.Reset()
			}
			serve(&ctx)
			if got := string(ctx.Response.Header.Peek("X-Cache")); got != "HIT" {
				b.Fatalf("X-Cache = %q, want HIT", got)
			}
		})
	}
}

// loadPolicy loads rules (a rules file's text) as SWR_POLICY_FILE would, and the module built
// from the package module ("" for none) as SWR_POLICY_WASM would.
func loadPolicy(tb testing.TB, rules, module string) *policy.Holder {
	tb.Helper()
	file := filepath.Join(tb.TempDir(), "policy.yaml")
	if err := os.WriteFile(file, []byte(rules), 0o600); err != nil {
		tb.Fatal(err)
	}
	src := policy.Source{File: file, Wasm: wasm.Options{Timeout: 5 * time.Second, Cache: wasmtest.Cache}}
	if module != "" {
		src.Module = wasmtest.File(tb, module)
	}
	h, err := policy.NewHolder(context.Background(), src, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// benchConn is a connection for a benchmark's RequestCtx, so that the guard finds one: the
// server end of a loopback connection accepted through KeepAccepting, as every listener's are
// (both ends closed when the benchmark ends). fasthttp's server would also set the request's
// time, which a benchmark cannot: the hit path reads the clock itself there.
func benchConn(b *testing.B) net.Conn {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	server, err := proxy.KeepAccepting(ln, slog.New(slog.DiscardHandler)).Accept()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { client.Close(); server.Close() })
	return server
}
