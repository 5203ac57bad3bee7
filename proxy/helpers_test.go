package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/proxy"
)

// countingOrigin is a real httptest origin that counts the requests it serves.
type countingOrigin struct {
	*httptest.Server
	hits atomic.Int64
}

func newCountingOrigin(t *testing.T, h http.HandlerFunc) *countingOrigin {
	t.Helper()
	o := &countingOrigin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

// testApp is the real Fiber app, wired by newHandler as main wires it (L1 only), in front of an
// origin; requests go through app.Test, without a listener.
type testApp struct{ app *fiber.App }

func newTestApp(t *testing.T, origin string) testApp {
	t.Helper()
	return testApp{proxy.NewApp(newHandler(t, origin), nil)}
}

// reply is a response with its body read.
type reply struct {
	*http.Response
	Body string
}

// do sends method target with header pairs ("Name", "value", …) and optional body, and reads the
// whole reply.
func (a testApp) do(t *testing.T, method, target string, body io.Reader, hdr ...string) reply {
	t.Helper()
	req := httptest.NewRequest(method, target, body)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := a.app.Test(req, -1)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read the body: %v", method, target, err)
	}
	return reply{res, string(b)}
}

func (a testApp) get(t *testing.T, target string, hdr ...string) reply {
	t.Helper()
	return a.do(t, http.MethodGet, target, nil, hdr...)
}

// expect checks status, X-Cache and (when not empty) body of a reply.
func expect(t *testing.T, r reply, status int, xcache, body string) {
	t.Helper()
	if r.StatusCode != status || r.Header.Get("X-Cache") != xcache || (body != "" && r.Body != body) {
		t.Fatalf("got %d X-Cache=%q Cache-Status=%q body %q; want %d %s %q",
			r.StatusCode, r.Header.Get("X-Cache"), r.Header.Get("Cache-Status"), trim(r.Body), status, xcache, body)
	}
}

func trim(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// newRawOrigin is an origin that answers every request, on kept-alive connections, with the
// bytes raw as they are (framing no net/http server would write: interim responses, unusual
// transfer codings).
func newRawOrigin(t *testing.T, raw string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close() // the proxy's origin client keeps idle connections open
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if _, err := c.Write([]byte(raw)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}
