package proxy_test

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkL1HitCoded measures a fresh L1 hit of an entry stored with its codings
// (SWR_COMPRESS), through the whole app: a browser's Accept-Encoding (br chosen), gzip only, and
// none (identity); selecting the coding must not allocate.
func BenchmarkL1HitCoded(b *testing.B) {
	for _, tt := range []struct{ name, accept, coding string }{
		{"accept=gzip,deflate,br", "gzip, deflate, br", "br"},
		{"accept=gzip", "gzip", "gzip"},
		{"accept=none", "", ""},
	} {
		b.Run(tt.name, func(b *testing.B) {
			app := newCompressingApp(b, jsonOrigin(b, priceList(16<<10)).URL, nil)
			app.app.Handler()
			serve := app.app.Server().Handler
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod(fasthttp.MethodGet)
			ctx.Request.SetRequestURI("/api/prices")
			ctx.Request.Header.SetHost("prices.example")
			if tt.accept != "" {
				ctx.Request.Header.Set("Accept-Encoding", tt.accept)
			}
			serve(&ctx) // the miss that fills the entry
			ctx.Response.Reset()
			b.ReportAllocs()
			for b.Loop() {
				serve(&ctx)
				ctx.Response.Reset()
			}
			serve(&ctx)
			if got := string(ctx.Response.Header.Peek("Content-Encoding")); got != tt.coding || string(ctx.Response.Header.Peek("X-Cache")) != "HIT" {
				b.Fatalf("Content-Encoding = %q, X-Cache %q; want %q, HIT", got, ctx.Response.Header.Peek("X-Cache"), tt.coding)
			}
		})
	}
}
