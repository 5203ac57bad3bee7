package proxy_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/swrproxy/swrproxy/proxy"
	"github.com/swrproxy/swrproxy/tiers"
)

// BenchmarkL1HitManyKeys is issue 14's "many keys": fresh L1 hits spread evenly over 1, 10 000
// and 1 000 000 cached keys, in an order that defeats the CPU's caches, through the whole Fiber
// app. Per-key work on the hit path (map loads, hot-key tracking, string building) must not grow
// with the key count, and a hit must not allocate: compare the ns/op of the three side by side.
//
//	go test ./proxy -run '^$' -bench L1HitManyKeys -benchmem
func BenchmarkL1HitManyKeys(b *testing.B) {
	for _, keys := range []int{1, 10_000, 1_000_000} {
		b.Run("keys="+strconv.Itoa(keys), func(b *testing.B) {
			h := newHandlerL1(b, "http://127.0.0.1:1", 8<<30) // every key fits; the origin is never asked
			body := []byte(`{"pair":"ALGO-USD","price":"0.1834","ts":1700000000}`)
			uris := make([][]byte, keys)
			date := time.Now().UTC().Format(http.TimeFormat) // as every stored entry has one
			for i := range keys {
				uris[i] = []byte("/api/prices/" + strconv.Itoa(i))
				e := tiers.NewEntry(2) // as a fill allocates it: the fields in the Entry's block
				e.Header = append(e.Header, tiers.Field{Name: "Content-Type", Value: "application/json"}, tiers.Field{Name: "Date", Value: date})
				e.Key, e.Status, e.Body, e.ETag = string(uris[i]), http.StatusOK, body, `"`+strconv.Itoa(i)+`"`
				e.Stored, e.Fresh = time.Now(), time.Hour
				err := h.Store.(*tiers.Store).Set(context.Background(), e)
				if err != nil {
					b.Fatal(err)
				}
			}
			app := proxy.NewApp(h, nil)
			app.Handler()
			serve := app.Server().Handler
			var ctx fasthttp.RequestCtx
			ctx.Init2(benchConn(b), nil, false)
			ctx.Request.Header.SetMethod(fasthttp.MethodGet)
			ctx.Request.Header.SetHost("prices.example")
			const stride = 7919        // a prime: every key once per round, far from the last
			for _, uri := range uris { // a first round: each key's first hit is tracked (steady state after)
				ctx.Request.SetRequestURIBytes(uri)
				serve(&ctx)
				ctx.Response.Reset()
			}
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i = (i + stride) % keys
				ctx.Request.SetRequestURIBytes(uris[i])
				serve(&ctx)
				ctx.Response.Reset()
			}
			ctx.Request.SetRequestURIBytes(uris[0])
			serve(&ctx)
			if got := string(ctx.Response.Header.Peek("X-Cache")); got != "HIT" {
				b.Fatalf("X-Cache = %q, want HIT", got)
			}
		})
	}
}
