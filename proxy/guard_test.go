package proxy_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/internal/rawhttp"
	"github.com/swrproxy/swrproxy/proxy"
)

// pathCounter is a real origin that counts the requests it gets by path.
type pathCounter struct {
	*httptest.Server
	mu   sync.Mutex
	seen map[string]int
}

func newPathCounter(t *testing.T) *pathCounter {
	o := &pathCounter{seen: map[string]int{}}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.seen[r.URL.Path]++
		o.mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "answer for %s", r.URL.Path)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *pathCounter) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seen[path]
}

// serveApp runs app on a loopback listener until the test ends and returns its address.
func serveApp(t testing.TB, app *fiber.App) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { app.Listener(ln); close(done) }()
	t.Cleanup(func() { app.Shutdown(); <-done })
	return ln.Addr().String()
}

const smuggled = "GET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n"

func chunked(s string) string {
	return strconv.FormatInt(int64(len(s)), 16) + "\r\n" + s + "\r\n0\r\n\r\n"
}

// ambiguous are requests whose framing two parsers could read two ways, or that a cache must not
// take: each must get exactly one answer, the connection must close, and nothing hidden in it may
// reach the origin.
var ambiguous = []struct {
	name   string
	raw    string
	status int
}{
	{"GET with a body beyond the prefetched 8 KiB",
		"GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(8192+len(smuggled)) + "\r\n\r\n" + strings.Repeat("A", 8192) + smuggled, 400},
	{"GET with a small body",
		"GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled, 400},
	{"GET with a chunked body", "GET /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(smuggled), 400},
	{"HEAD with a body", "HEAD /x HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled, 400},
	{"Content-Length twice", "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: " +
		strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled, 400},
	{"Content-Length and Transfer-Encoding", "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
	{"a transfer coding other than chunked", "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n" + chunked(smuggled), 400},
	{"chunked not last", "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n" + chunked(smuggled), 400},
	{"Transfer-Encoding: identity", "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Length: " +
		strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled, 400},
	{"gzip then chunked", "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + chunked(smuggled), 501},
	{"chunked in HTTP/1.0", "POST /x HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(smuggled), 400},
	{"two Host fields", "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
	{"no Host in HTTP/1.1", "GET /x HTTP/1.1\r\n\r\n", 400},
	{"a Host with a path", "GET /x HTTP/1.1\r\nHost: victim.com/evil\r\n\r\n", 400},
	{"a Host with a space", "GET /x HTTP/1.1\r\nHost: victim.com evil\r\n\r\n", 400},
	{"obsolete line folding", "GET /x HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n" + chunked(smuggled), 400},
	{"a bare CR", "GET /x HTTP/1.1\r\nHost: x\r\nX-A: 1\rTransfer-Encoding: chunked\r\n\r\n" + chunked(smuggled), 400},
}

func TestAmbiguousRequestsGetOneAnswerAndCloseTheConnection(t *testing.T) {
	o := newPathCounter(t)
	addr := serveApp(t, proxy.NewApp(newHandler(t, o.URL), nil))
	for _, tt := range ambiguous {
		t.Run(tt.name, func(t *testing.T) {
			res, err := rawhttp.Exchange(addr, tt.raw, 500*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Responses) != 1 || res.Responses[0].StatusCode != tt.status || !res.Closed {
				t.Fatalf("got %d responses %q (closed %v), want one %d and the connection closed",
					len(res.Responses), res.Bodies(), res.Closed, tt.status)
			}
			if n := o.count("/SMUGGLED"); n != 0 {
				t.Fatalf("the origin got %d smuggled requests", n)
			}
		})
	}
	// The same requests from net/http's client, where it can send them, get the same answers.
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/x", strings.NewReader("body"))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !res.Close {
		t.Errorf("GET with a body from net/http: %d close=%v, want 400 and Connection: close", res.StatusCode, res.Close)
	}
}

// mountIdle adds routes that never read the request body, and one that panics: the guard, not the
// handler, must keep what they leave unread off the connection.
func mountIdle(r fiber.Router) {
	r.Post("/_swr/ignores-body", func(c *fiber.Ctx) error { return c.SendString("ignored") })
	r.Post("/_swr/panics", func(c *fiber.Ctx) error { panic("handler broke") })
}

func TestABodyAHandlerLeavesUnreadIsDiscardedOrEndsTheConnection(t *testing.T) {
	o := newPathCounter(t)
	addr := serveApp(t, proxy.NewApp(newHandler(t, o.URL), mountIdle))
	post := func(path string, n int) string {
		return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(n+len(smuggled)) + "\r\n\r\n" +
			strings.Repeat("A", n) + smuggled
	}
	next := "GET /next HTTP/1.1\r\nHost: x\r\n\r\n"

	// Small and middle-sized bodies are read to their end and discarded: the connection stays
	// usable, and the next request on it gets its own answer.
	for _, n := range []int{10, 8192, 40 << 10} {
		res, err := rawhttp.Exchange(addr, post("/_swr/ignores-body", n)+next, 500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if b := res.Bodies(); len(b) != 2 || b[0] != "ignored" || b[1] != "answer for /next" {
			t.Fatalf("body of %d bytes: responses %q, want the route's and then /next's", n, b)
		}
	}
	// A request refused before its body was read (a target that cannot be passed on), the same.
	raw := "POST /a#frag HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(3*8192+len(smuggled)) + "\r\n\r\n" +
		strings.Repeat("A", 3*8192) + smuggled
	res, err := rawhttp.Exchange(addr, raw+next, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Responses) != 2 || res.Responses[0].StatusCode != 400 || res.Responses[1].Body != "answer for /next" {
		t.Fatalf("a rejected target: responses %q, want 400 and then /next's", res.Bodies())
	}
	// A body over the drain budget ends the connection after the answer.
	res, err = rawhttp.Exchange(addr, post("/_swr/ignores-body", 200<<10)+next, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if b := res.Bodies(); len(b) != 1 || b[0] != "ignored" || !res.Closed {
		t.Fatalf("a 200 KiB body: responses %q (closed %v), want one and the connection closed", b, res.Closed)
	}
	// A body whose rest does not arrive within the drain wait ends the connection too (fasthttp
	// reads the first 8 KiB before the handler runs).
	c, err := rawhttp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err = c.Send("POST /_swr/ignores-body HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n"+strings.Repeat("A", 8192+100), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if b := res.Bodies(); len(b) != 1 || !res.Closed {
		t.Fatalf("a body that never comes: responses %q (closed %v), want one and the connection closed", b, res.Closed)
	}
	// A panic answers 500 and ends the connection, whatever was left of the body.
	res, err = rawhttp.Exchange(addr, post("/_swr/panics", 10)+next, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Responses) != 1 || res.Responses[0].StatusCode != 500 || !res.Closed {
		t.Fatalf("panic: responses %q (closed %v), want one 500 and the connection closed", res.Bodies(), res.Closed)
	}
	if n := o.count("/SMUGGLED"); n != 0 {
		t.Fatalf("the origin got %d smuggled requests", n)
	}
}

func TestAnUploadTheOriginNeverReadsDoesNotDesyncTheConnection(t *testing.T) {
	// The origin is down: connection refused. The proxy answers 502 without reading the upload.
	down := httptest.NewServer(http.NotFoundHandler())
	url := down.URL
	down.Close()
	addr := serveApp(t, proxy.NewApp(newHandler(t, url), nil))
	raw := "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(3*8192+len(smuggled)) + "\r\n\r\n" +
		strings.Repeat("A", 3*8192) + smuggled
	res, err := rawhttp.Exchange(addr, raw, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Responses) != 1 || res.Responses[0].StatusCode != http.StatusBadGateway {
		t.Fatalf("responses %d %q, want one 502: the rest of the upload was read as a request", len(res.Responses), res.Bodies())
	}
}

func TestAHeaderBlockOverTheBufferGets431AndClosesTheConnection(t *testing.T) {
	o := newPathCounter(t)
	addr := serveApp(t, proxy.NewApp(newHandler(t, o.URL), nil))
	raw := "GET /x HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 25<<10) + "\r\n\r\n" + smuggled
	res, err := rawhttp.Exchange(addr, raw, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Responses) != 1 || res.Responses[0].StatusCode != http.StatusRequestHeaderFieldsTooLarge || !res.Closed {
		t.Fatalf("a 25 KiB header block: %d responses %q (closed %v), want one 431 and the connection closed",
			len(res.Responses), res.Bodies(), res.Closed)
	}
	// 20 KiB of fields (nginx lets 2 lines of 8 KiB through, plus its own) are served.
	ok, err := rawhttp.Exchange(addr, "GET /x HTTP/1.1\r\nHost: x\r\nX-A: "+strings.Repeat("a", 8000)+"\r\nX-B: "+
		strings.Repeat("b", 8000)+"\r\nCookie: "+strings.Repeat("c", 4000)+"\r\n\r\n", 300*time.Millisecond)
	if err != nil || len(ok.Responses) != 1 || ok.Responses[0].StatusCode != 200 {
		t.Fatalf("20 KiB of header fields: %v %v, want 200", ok.Bodies(), err)
	}
	if n := o.count("/SMUGGLED"); n != 0 {
		t.Fatalf("the origin got %d smuggled requests", n)
	}
}
