package proxy_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/invalidate"
	"github.com/swrproxy/swrproxy/proxy"
	"github.com/swrproxy/swrproxy/refresh"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// newHandler wires a real handler (L1 only) in front of origin, as main does.
func newHandler(tb testing.TB, origin string) *proxy.Handler {
	tb.Helper()
	log := slog.New(slog.DiscardHandler)
	store, err := tiers.New(tiers.Options{L1MaxBytes: 64 << 20, L1MaxTTL: time.Hour, Log: log})
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
		L1MaxBytes: 64 << 20, Log: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ref.Run(ctx); close(done) }()
	tb.Cleanup(func() { cancel(); <-done })
	return &proxy.Handler{Store: store, Filler: ref.Filler, Refresher: ref.Pool, Tracker: ref.Tracker,
		Invalidator: invalidate.New(store, ref, nil, log), Origin: up, Timeout: 5 * time.Second, Log: log}
}

// BenchmarkL1HitThroughFiber measures a fresh L1 hit through the whole Fiber app (routing,
// handler, headers, body), without the network.
func BenchmarkL1HitThroughFiber(b *testing.B) {
	for _, conditional := range []bool{false, true} {
		b.Run(fmt.Sprintf("if-none-match=%v", conditional), func(b *testing.B) {
			origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=3600")
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"pair":"ALGO-USD","price":"0.1834","ts":1700000000}`)
			}))
			defer origin.Close()
			h := newHandler(b, origin.URL)
			app := proxy.NewApp(h, nil)
			app.Handler()                 // builds the routes
			serve := app.Server().Handler // with the guard, as a listener serves it

			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod(fasthttp.MethodGet)
			ctx.Request.SetRequestURI("/api/prices?pair=ALGO-USD")
			ctx.Request.Header.SetHost("prices.example")
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
