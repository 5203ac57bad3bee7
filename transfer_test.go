package main

// Bodies the origin sent chunked (RFC 9112 §7.1), relayed to HTTP/1.1 and HTTP/1.0 clients on
// raw sockets: RFC 9112 §6.1 forbids Transfer-Encoding in a response to an HTTP/1.0 request, so
// a streamed body of unknown length reaches such a client delimited by the connection's close.

import (
	"fmt"
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
