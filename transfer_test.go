package main

// Bodies the origin sent chunked (RFC 9112 §7.1), relayed to HTTP/1.1 and HTTP/1.0 clients on
// raw sockets: RFC 9112 §6.1 forbids Transfer-Encoding in a response to an HTTP/1.0 request, so
// a streamed body of unknown length reaches such a client delimited by the connection's close.

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/rawhttp"
)

func TestChunkedOriginBodiesReachHTTP10AndHTTP11ClientsRFC9112Section6_1(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", r.URL.Query().Get("cc"))
		w.Header().Set("Transfer-Encoding", "chunked")
		fmt.Fprint(w, "hello")
		w.(http.Flusher).Flush() // two chunks
		fmt.Fprint(w, " world")
	})
	p := startProxy(t, o.URL, nil)
	addr := strings.TrimPrefix(p.URL, "http://")
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		for _, cc := range []string{"max-age=60", "no-store"} {
			for _, proto := range []string{"HTTP/1.0", "HTTP/1.1"} {
				target := fmt.Sprintf("/chunked?cc=%s&proto=%s", cc, proto)
				raw := fmt.Sprintf("%s %s %s\r\nHost: x\r\nContent-Length: 0\r\n\r\n", method, target, proto)
				res, err := rawhttp.Exchange(addr, raw, 300*time.Millisecond)
				if err != nil {
					t.Fatal(err)
				}
				what := method + " " + cc + " " + proto
				if len(res.Responses) != 1 || res.Responses[0].StatusCode != 200 || res.Responses[0].Body != "hello world" {
					t.Errorf("%s: %v %q, want one 200 \"hello world\"", what, res.Responses, res.Bodies())
					continue
				}
				r := res.Responses[0]
				if proto == "HTTP/1.0" && (len(r.TransferEncoding) > 0 || r.Header.Get("Transfer-Encoding") != "" || !res.Closed) {
					t.Errorf("%s: Transfer-Encoding %q, closed %v; want none, and the close ending the body",
						what, r.TransferEncoding, res.Closed)
				}
				if _, err := http.ParseTime(r.Header.Get("Date")); err != nil {
					t.Errorf("%s: Date %q", what, r.Header.Get("Date"))
				}
			}
		}
	}
	// Pipelined behind a kept-alive HTTP/1.0 request: the reply before it is sent first, whole.
	raw := "GET /chunked?cc=max-age=60 HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n" +
		"GET /chunked?cc=no-store HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
	res, err := rawhttp.Exchange(addr, raw, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if b := res.Bodies(); len(b) != 2 || b[0] != "hello world" || b[1] != "hello world" || !res.Closed {
		t.Errorf("pipelined HTTP/1.0: bodies %q, closed %v; want two \"hello world\", then the close", b, res.Closed)
	}
}

// TestAGzipTransferCodedResponseIsServedAndStored: an origin that applies gzip as a transfer
// coding (RFC 9112 §6.1, chunked last) is served and cached like any other, decoded; before,
// Go's client refused it and every request got 502.
func TestAGzipTransferCodedResponseIsServedAndStored(t *testing.T) {
	t.Parallel()
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	io.WriteString(zw, "hello world")
	zw.Close()
	o := rawhttp.NewOrigin(t, func(int64) []byte {
		return fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: gzip, chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n",
			zipped.Len(), zipped.Bytes())
	})
	p := startProxy(t, "http://"+o.Addr, nil)
	expect(t, get(t, p.URL+"/tc"), 200, "MISS", "hello world")
	expect(t, get(t, p.URL+"/tc"), 200, "HIT", "hello world")
	if n := o.Hits.Load(); n != 2 {
		t.Errorf("origin requests = %d, want 2 (Go's client refuses the coding, then swrproxy's own read)", n)
	}
}
