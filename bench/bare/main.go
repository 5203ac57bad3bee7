// Command bare is the baseline of the load benchmarks: a bare fasthttp server that answers every
// request with the same bytes from memory. It doubles as the origin behind swrproxy (and behind
// nginx's proxy_cache in bench/e2e.sh), so every target serves identical bodies.
//
//	/api/book/1k, /api/book/16k, /api/book/128k   JSON order books of exactly 1, 16 and 128 KiB
//	/k/0 … /k/<keys-1>                            with -keys, a distinct -size body per key, from a map
//	any other path                                the -size body (bench/wrk.sh)
//
// With -gzip, a request that accepts gzip gets the same body gzipped once at start (best
// compression, Vary: Accept-Encoding): the ceiling of what any server can do for such a client.
// Without it (the origin), every answer is identity, whatever the request accepts.
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"log"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// representation is one body as sent: its bytes and the header fields that go with them.
type representation struct {
	body     []byte
	etag     string
	encoding string // "" for identity
}

func main() {
	addr := flag.String("listen", "127.0.0.1:9001", "listen address (loopback)")
	size := flag.Int("size", 512, "body size in bytes of any path other than /api/book/*")
	gz := flag.Bool("gzip", false, "answer clients that accept gzip with the body gzipped once at start")
	keys := flag.Int("keys", 0, "serve /k/0 … /k/<keys-1>, each its own body (bench/wrk.sh's many keys)")
	flag.Parse()

	other := representation{
		body: []byte(`{"pair":"ALGO-USD","data":"` + strings.Repeat("x", max(*size-30, 0)) + `"}`),
		etag: `"bench-v1"`,
	}
	plain := map[string]representation{}
	gzipped := map[string]representation{}
	for _, b := range bookSizes {
		body := orderBook(b.size)
		tag := `"book-` + strconv.Itoa(b.size) + `-v1`
		plain[b.path] = representation{body: body, etag: tag + `"`}
		gzipped[b.path] = representation{body: gzipBytes(body), etag: tag + `-gzip"`, encoding: "gzip"}
	}

	for i := range *keys {
		// Each key its own bytes (its number in the body), as each is its own object in a cache.
		n := strconv.Itoa(i)
		body := []byte(`{"pair":"K-` + n + `","data":"` + strings.Repeat("x", max(*size-30-len(n), 0)) + `"}`)
		plain["/k/"+n] = representation{body: body, etag: `"k-` + n + `"`}
	}

	handler := func(ctx *fasthttp.RequestCtx) {
		h := &ctx.Response.Header
		r, ok := plain[string(ctx.Path())]
		if !ok {
			r = other
		} else if g, book := gzipped[string(ctx.Path())]; *gz && book {
			h.Set("Vary", "Accept-Encoding")
			if acceptsGzip(ctx.Request.Header.Peek("Accept-Encoding")) {
				r = g
			}
		}
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "max-age=3600")
		h.Set("ETag", r.etag)
		if r.encoding != "" {
			h.Set("Content-Encoding", r.encoding)
		}
		ctx.Response.SetBodyRaw(r.body) // no copy per request, as swrproxy serves an L1 hit (read-only bytes)
	}
	log.Fatal(fasthttp.ListenAndServe(*addr, handler))
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // a valid level: no error
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// acceptsGzip reports whether an Accept-Encoding value lists gzip (or x-gzip) without q=0. Good
// enough for a benchmark: it does not weigh "*" or compare q values. It does not allocate, so the
// ceiling stays a ceiling.
func acceptsGzip(v []byte) bool {
	for item := range bytes.SplitSeq(v, []byte(",")) {
		coding, params, _ := bytes.Cut(item, []byte(";"))
		coding = bytes.TrimSpace(coding)
		if !bytes.EqualFold(coding, []byte("gzip")) && !bytes.EqualFold(coding, []byte("x-gzip")) {
			continue
		}
		_, q, found := bytes.Cut(params, []byte("="))
		if !found {
			return true
		}
		if f, err := strconv.ParseFloat(string(bytes.TrimSpace(q)), 64); err == nil && f > 0 {
			return true
		}
	}
	return false
}
