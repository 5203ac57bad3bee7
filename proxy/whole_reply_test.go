package proxy_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/internal/testenv"
	"github.com/swrproxy/swrproxy/proxy"
	"github.com/swrproxy/swrproxy/refresh"
)

// serveKeepAccepting runs app as wire.go does, through KeepAccepting (whose connections send a
// stored body of 8 to 64 KiB with its header in one writev), on loopback until the test ends.
func serveKeepAccepting(t *testing.T, app *fiber.App) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { app.Listener(proxy.KeepAccepting(ln, slog.New(slog.DiscardHandler))); close(done) }()
	t.Cleanup(func() { app.Shutdown(); <-done })
	return ln.Addr().String()
}

// TestEveryKindOfCachedReplyArrivesWholeAndInOrderPipelined: through the real app and
// KeepAccepting, cached replies sent with their header in one writev (20 KiB) and not (300 KiB)
// mixed in one pipelined write with HEAD, 304, 206, 416, a stored gzip coding, HTTP/1.0 and
// Connection: close: each arrives byte for byte, in order, and nothing follows the close.
func TestEveryKindOfCachedReplyArrivesWholeAndInOrderPipelined(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/big/"))
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("ETag", `"e`+strconv.Itoa(n)+`"`)
		w.Write(testenv.Patterned(n))
	}))
	t.Cleanup(origin.Close)
	h := newHandlerWith(t, origin.URL, 64<<20, nil, refresh.Compression{Codings: []string{httpcache.CodingGzip}, MinBytes: 100})
	addr := serveKeepAccepting(t, proxy.NewApp(h, nil))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	get := func(req string) *fasthttp.Response {
		t.Helper()
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		return testenv.ReadReply(t, br, false)
	}
	for _, n := range []int{20000, 300000} {
		if r := get("GET /big/" + strconv.Itoa(n) + " HTTP/1.1\r\nHost: x\r\n\r\n"); !bytes.Equal(r.Body(), testenv.Patterned(n)) {
			t.Fatalf("the fill of %d bytes: %d bytes", n, len(r.Body()))
		}
	}
	testenv.WaitFor(t, 10*time.Second, "the gzip coding stored", func() bool {
		r := get("GET /big/300000 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
		return string(r.Header.Peek("Content-Encoding")) == "gzip"
	})
	if _, err := io.WriteString(c, ""+
		"GET /big/20000 HTTP/1.1\r\nHost: x\r\n\r\n"+
		"HEAD /big/20000 HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GET /big/20000 HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"e20000\"\r\n\r\n"+
		"GET /big/300000 HTTP/1.1\r\nHost: x\r\nRange: bytes=100-20099\r\n\r\n"+
		"GET /big/300000 HTTP/1.1\r\nHost: x\r\nRange: bytes=999999-\r\n\r\n"+
		"GET /big/300000 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"+
		"GET /big/20000 HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"+
		"GET /big/20000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	check := func(name string, r *fasthttp.Response, status int, body []byte) {
		t.Helper()
		if r.StatusCode() != status || body != nil && !bytes.Equal(r.Body(), body) {
			t.Errorf("%s: %d with %d bytes, want %d with %d", name, r.StatusCode(), len(r.Body()), status, len(body))
		}
	}
	check("GET", testenv.ReadReply(t, br, false), 200, testenv.Patterned(20000))
	check("HEAD", testenv.ReadReply(t, br, true), 200, nil)
	check("If-None-Match", testenv.ReadReply(t, br, false), 304, []byte{})
	check("Range", testenv.ReadReply(t, br, false), 206, testenv.Patterned(300000)[100:20100])
	check("unsatisfiable Range", testenv.ReadReply(t, br, false), 416, nil)
	g := testenv.ReadReply(t, br, false)
	zr, err := gzip.NewReader(bytes.NewReader(g.Body()))
	if err != nil {
		t.Fatalf("the gzip reply: %v", err)
	}
	if b, _ := io.ReadAll(zr); !bytes.Equal(b, testenv.Patterned(300000)) {
		t.Errorf("the gzip reply decodes to %d bytes, not the body", len(b))
	}
	check("HTTP/1.0", testenv.ReadReply(t, br, false), 200, testenv.Patterned(20000))
	check("Connection: close", testenv.ReadReply(t, br, false), 200, testenv.Patterned(20000))
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("%d bytes after the close: %q", len(rest), rest[:min(80, len(rest))])
	}
}

// TestAnUploadReadWhileItsReplyStreamsDoesNotRace: the origin answers an upload before it has
// read it and streams its reply while reading on; the client connection is read (the upload,
// by the origin client's goroutine) and written (the reply) at once. Under -race this fails if
// the connection's writes and reads share state.
func TestAnUploadReadWhileItsReplyStreamsDoesNotRace(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Length", strconv.Itoa(200<<10))
		w.WriteHeader(http.StatusOK)
		buf := make([]byte, 1<<10)
		for range 200 {
			w.Write(bytes.Repeat([]byte("z"), 1<<10))
			w.(http.Flusher).Flush()
			r.Body.Read(buf)
			time.Sleep(time.Millisecond) // the two directions overlap for a while
		}
	}))
	t.Cleanup(origin.Close)
	addr := serveKeepAccepting(t, proxy.NewApp(newHandler(t, origin.URL), nil))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, "POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(200<<10)+"\r\n\r\n")
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for range 200 {
			if _, err := c.Write(bytes.Repeat([]byte("u"), 1<<10)); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	r := testenv.ReadReply(t, bufio.NewReader(c), false)
	<-sent
	if r.StatusCode() != http.StatusOK || len(r.Body()) != 200<<10 {
		t.Errorf("got %d with %d bytes, want 200 with %d", r.StatusCode(), len(r.Body()), 200<<10)
	}
}
