package proxy_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/internal/rawhttp"
	"github.com/swrproxy/swrproxy/proxy"
)

// mountProbe registers routes as the admin package does, all under /_swr/: a fixed GET path and
// one with parameters (which Fiber matches on the target as sent, dot segments included).
func mountProbe(r fiber.Router) {
	r.Get("/_swr/probe", func(c *fiber.Ctx) error { return c.SendString("admin probe") })
	r.Get("/_swr/servers/:host/:port", func(c *fiber.Ctx) error { return c.SendString("admin servers") })
}

// TestAGETOutsideTheReservedPrefixSkipsTheRoutesAndOneUnderItNeverReachesTheOrigin: a GET or
// HEAD outside /_swr/ is served without walking Fiber's routes (the cache's hit path); every
// target Fiber could route to a mounted route (as sent, whatever its dot segments normalise to)
// or that normalises under /_swr/ still takes the routes, and none reaches the origin.
func TestAGETOutsideTheReservedPrefixSkipsTheRoutesAndOneUnderItNeverReachesTheOrigin(t *testing.T) {
	o := newPathCounter(t)
	app := proxy.NewApp(newHandler(t, o.URL), mountProbe)
	addr := serveApp(t, app)
	cases := []struct {
		method, target, want string
		status               int
	}{
		{"GET", "/_swr/probe", "admin probe", 200},
		{"HEAD", "/_swr/probe", "", 200},
		// Fiber matches :host and :port to ".." and ".."; normalised, the path is "/".
		{"GET", "/_swr/servers/../..", "admin servers", 200},
		{"GET", "/_SWR/probe", "Not Found", 404},
		{"GET", "/%5Fswr/probe", "Not Found", 404},
		{"GET", "/x/../_swr/probe", "Not Found", 404},
		{"GET", "/_swr", "Not Found", 404},
		{"GET", "/_swrx", "answer for /_swrx", 200},
		{"GET", "/prices", "answer for /prices", 200},
		{"HEAD", "/prices", "", 200},
	}
	for _, tc := range cases {
		// Over a raw socket: the target exactly as written (HEAD only through the client, which
		// knows its reply has no body).
		if tc.method == "GET" {
			rawGet(t, addr, tc.target, tc.status, tc.want)
		}
		// Through an HTTP client, which sends the target as the URL gives it.
		req, _ := http.NewRequest(tc.method, "http://"+addr+tc.target, nil)
		req.URL.Opaque = tc.target // no client-side cleaning of the path
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.target, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || string(b) != tc.want && !(tc.method == "HEAD" && len(b) == 0) {
			t.Errorf("client %s %s: %d %q, want %d %q", tc.method, tc.target, resp.StatusCode, b, tc.status, tc.want)
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
