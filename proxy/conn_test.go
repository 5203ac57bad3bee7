package proxy

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/swrproxy/swrproxy/internal/testenv"
)

// serveWhole runs, on loopback through KeepAccepting (so its connections are clientConns), a
// server whose handler answers /N with testenv.Patterned(N), set as write sets a stored body,
// then sendWhole; /reset/N does the same, then replaces the reply by a small one (as the guard
// does after a panic), so the held header never gets its body.
func serveWhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[int][]byte{}
	for _, n := range []int{1 << 10, wholeMin, wholeMin + 1, 16 << 10, wholeMax, wholeMax + 1, 1 << 20} {
		bodies[n] = testenv.Patterned(n)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		path, reset := strings.CutPrefix(string(ctx.Path()), "/reset")
		n, _ := strconv.Atoi(strings.TrimPrefix(path, "/"))
		ctx.Response.Header.Set("ETag", `"`+strconv.Itoa(n)+`"`)
		ctx.Response.SetBodyRaw(bodies[n])
		sendWhole(ctx, bodies[n])
		if reset {
			ctx.Response.Reset()
			ctx.SetStatusCode(fasthttp.StatusInternalServerError)
			ctx.SetBodyString("Internal Server Error")
		}
	}}
	done := make(chan struct{})
	go func() { srv.Serve(KeepAccepting(ln, slog.New(slog.DiscardHandler))); close(done) }()
	t.Cleanup(func() { srv.Shutdown(); <-done })
	return ln.Addr().String()
}

// TestALargeStoredBodyLeavesWithItsHeaderInOneWrite: from wholeMin to wholeMax a body and its
// header are one writev; every byte arrives, in order, at every size, pipelined or not, and HEAD
// sends none.
func TestALargeStoredBodyLeavesWithItsHeaderInOneWrite(t *testing.T) {
	addr := serveWhole(t)
	c := dial(t, addr)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	for _, n := range []int{1 << 10, wholeMin, wholeMin + 1, 16 << 10, wholeMax, wholeMax + 1, 1 << 20} {
		before := sentWhole.Load()
		io.WriteString(c, "GET /"+strconv.Itoa(n)+" HTTP/1.1\r\nHost: x\r\n\r\n")
		res := testenv.ReadReply(t, br, false)
		if !bytes.Equal(res.Body(), testenv.Patterned(n)) || res.Header.ContentLength() != n {
			t.Fatalf("GET /%d: %d bytes (Content-Length %d), not the body", n, len(res.Body()), res.Header.ContentLength())
		}
		if string(res.Header.Peek("ETag")) != `"`+strconv.Itoa(n)+`"` {
			t.Errorf("GET /%d: ETag %q", n, res.Header.Peek("ETag"))
		}
		if got, want := sentWhole.Load()-before, int64(0); n > wholeMin && n <= wholeMax {
			if want = 1; got != want {
				t.Errorf("GET /%d: %d replies sent whole, want %d", n, got, want)
			}
		} else if got != want {
			t.Errorf("GET /%d: %d replies sent whole, want %d", n, got, want)
		}
	}
	// HEAD: the length, no body; the connection goes on.
	before := sentWhole.Load()
	io.WriteString(c, "HEAD /1048576 HTTP/1.1\r\nHost: x\r\n\r\n")
	if res := testenv.ReadReply(t, br, true); res.Header.ContentLength() != 1<<20 {
		t.Errorf("HEAD: Content-Length %d", res.Header.ContentLength())
	}
	if sentWhole.Load() != before {
		t.Error("a HEAD reply was sent as a whole body")
	}
	// Pipelined: requests in one write, answered in order; small replies buffered ahead of one
	// sent whole leave in its writev, before its header.
	io.WriteString(c, "GET /16384 HTTP/1.1\r\nHost: x\r\n\r\nGET /1024 HTTP/1.1\r\nHost: x\r\n\r\nGET /1048576 HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GET /1024 HTTP/1.1\r\nHost: x\r\n\r\nGET /1024 HTTP/1.1\r\nHost: x\r\n\r\nGET /16384 HTTP/1.1\r\nHost: x\r\n\r\nGET /8193 HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, n := range []int{16 << 10, 1 << 10, 1 << 20, 1 << 10, 1 << 10, 16 << 10, wholeMin + 1} {
		if res := testenv.ReadReply(t, br, false); !bytes.Equal(res.Body(), testenv.Patterned(n)) {
			t.Fatalf("pipelined GET /%d: %d bytes, not the body", n, len(res.Body()))
		}
	}
}

// TestAReplyReplacingAStoredBodyIsWrittenInItsPlace: a reply prepared to be sent whole, then
// replaced (a panic's 500), is written as the replacement, and the connection goes on.
func TestAReplyReplacingAStoredBodyIsWrittenInItsPlace(t *testing.T) {
	addr := serveWhole(t)
	c := dial(t, addr)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	for range 3 {
		io.WriteString(c, "GET /reset/16384 HTTP/1.1\r\nHost: x\r\n\r\n")
		res := testenv.ReadReply(t, br, false)
		if res.StatusCode() != fasthttp.StatusInternalServerError || string(res.Body()) != "Internal Server Error" {
			t.Fatalf("got %d %q", res.StatusCode(), res.Body())
		}
		io.WriteString(c, "GET /16384 HTTP/1.1\r\nHost: x\r\n\r\n")
		if res := testenv.ReadReply(t, br, false); !bytes.Equal(res.Body(), testenv.Patterned(16<<10)) {
			t.Fatalf("the request after: %d bytes, not the body", len(res.Body()))
		}
	}
}
