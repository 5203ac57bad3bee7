package proxy_test

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/internal/rawhttp"
	"github.com/swrproxy/swrproxy/proxy"
)

// probe mounts routes as the admin package does, all under /_swr/: a fixed GET path, one with
// parameters (which Fiber matches on the target as sent, dot segments included), and a
// middleware for every path that counts the requests it sees.
type probe struct{ seen atomic.Int64 }

func (p *probe) mount(r fiber.Router) {
	r.Get("/_swr/probe", func(c *fiber.Ctx) error { return c.SendString("admin probe") })
	r.Get("/_swr/servers/:host/:port", func(c *fiber.Ctx) error { return c.SendString("admin servers") })
	r.Use(func(c *fiber.Ctx) error { p.seen.Add(1); return c.Next() })
}

// TestAGETOrHEADOutsideTheReservedPrefixSkipsTheRoutes: such a request goes to the cache's
// handler without Fiber's routes and middleware (the hit path); every target Fiber could route to
// a mounted route (as sent, whatever its dot segments normalise to) or that normalises under
// /_swr/ still takes the routes, and none reaches the origin.
func TestAGETOrHEADOutsideTheReservedPrefixSkipsTheRoutes(t *testing.T) {
	o := newPathCounter(t)
	p := &probe{}
	app := proxy.NewApp(newHandler(t, o.URL), p.mount)
	addr := serveApp(t, app)
	tests := []struct {
		method, target, want string
		status               int
		middleware           bool // the routes' middleware sees it (Fiber's routes, no route answered first)
	}{
		{"GET", "/_swr/probe", "admin probe", 200, false},
		{"HEAD", "/_swr/probe", "", 200, false},
		// Fiber matches :host and :port to ".." and ".."; normalised, the path is "/".
		{"GET", "/_swr/servers/../..", "admin servers", 200, false},
		{"GET", "/_SWR/probe", "Not Found", 404, true},
		{"GET", "/%5Fswr/probe", "Not Found", 404, true},
		{"GET", "/x/../_swr/probe", "Not Found", 404, true},
		{"GET", "/_swr", "Not Found", 404, true},
		{"GET", "/_swrx", "answer for /_swrx", 200, true}, // the prefix as sent: routed, conservatively
		{"GET", "/prices", "answer for /prices", 200, false},
		{"HEAD", "/prices", "", 200, false},
	}
	for _, tt := range tests {
		before := p.seen.Load()
		// Over a raw socket: the target exactly as written (HEAD only through the client, which
		// knows its reply has no body).
		if tt.method == "GET" {
			rawGet(t, addr, tt.target, tt.status, tt.want)
		}
		// Through an HTTP client, which sends the target as the URL gives it.
		req, _ := http.NewRequest(tt.method, "http://"+addr+tt.target, nil)
		req.URL.Opaque = tt.target // no client-side cleaning of the path
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.target, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || string(b) != tt.want {
			t.Errorf("client %s %s: %d %q, want %d %q", tt.method, tt.target, resp.StatusCode, b, tt.status, tt.want)
		}
		runs := int64(1) // the client's request
		if tt.method == "GET" {
			runs = 2 // and the raw one
		}
		if seen := p.seen.Load() - before; tt.middleware && seen != runs || !tt.middleware && seen != 0 {
			t.Errorf("%s %s: the routes' middleware saw %d of %d requests, want middleware=%v", tt.method, tt.target, seen, runs, tt.middleware)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for path, n := range o.seen {
		if strings.HasPrefix(strings.ToLower(path), "/_swr") && path != "/_swrx" || path == "/" {
			t.Errorf("the origin was asked for %s (%d times)", path, n)
		}
	}
	if n := o.seen["/prices"]; n != 1 {
		t.Errorf("the origin was asked for /prices %d times, want 1 (then hits)", n)
	}
}

// rawGet sends GET target over a raw socket and checks the one reply.
func rawGet(t *testing.T, addr, target string, status int, body string) {
	t.Helper()
	raw := "GET " + target + " HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n"
	res, err := rawhttp.Exchange(addr, raw, time.Second)
	if err != nil || len(res.Responses) != 1 {
		t.Fatalf("raw GET %s: %v, %d responses", target, err, len(res.Responses))
	}
	if r := res.Responses[0]; r.StatusCode != status || r.Body != body {
		t.Errorf("raw GET %s: %d %q, want %d %q", target, r.StatusCode, r.Body, status, body)
	}
}
