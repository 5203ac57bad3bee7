// Command bare is the baseline of the load benchmark (bench/wrk.sh): a bare fasthttp server that
// answers every request with the same bytes from memory. It doubles as the origin behind swrproxy
// in that benchmark, so both serve identical bodies.
package main

import (
	"flag"
	"log"
	"strings"

	"github.com/valyala/fasthttp"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:9001", "listen address (loopback)")
	size := flag.Int("size", 512, "body size in bytes")
	flag.Parse()
	body := []byte(`{"pair":"ALGO-USD","data":"` + strings.Repeat("x", max(*size-30, 0)) + `"}`)
	handler := func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Content-Type", "application/json")
		ctx.Response.Header.Set("Cache-Control", "max-age=3600")
		ctx.Response.Header.Set("ETag", `"bench-v1"`)
		ctx.SetBody(body)
	}
	log.Fatal(fasthttp.ListenAndServe(*addr, handler))
}
