package proxy_test

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/proxy"
)

// FuzzABodyNeverRunsAsARequest: whatever bytes a body carries (requests, partial requests,
// chunk-like lines, more than fasthttp pre-reads), a route that ignores its body leaves none of
// it on the wire: the marker route never runs, and the request after the body gets its own answer
// on the same connection or the connection ends.
func FuzzABodyNeverRunsAsARequest(f *testing.F) {
	var marked atomic.Int64
	app := proxy.NewAdminApp(slog.New(slog.DiscardHandler), func(r fiber.Router) {
		r.Post("/ignore", func(c *fiber.Ctx) error { return c.SendString("ignored") })
		r.All("/MARK", func(c *fiber.Ctx) error { marked.Add(1); return c.SendString("marked") })
		r.Get("/end", func(c *fiber.Ctx) error { return c.SendString("end") })
	})
	addr := serveApp(f, app)
	mark := "GET /MARK HTTP/1.1\r\nHost: x\r\n\r\n"
	f.Add([]byte(mark), false)
	f.Add([]byte(mark), true)
	f.Add([]byte(strings.Repeat("A", 8192)+mark), false)
	f.Add([]byte(strings.Repeat("A", 8192)+mark), true)
	f.Add([]byte(strings.Repeat("B", 8190)+"\r\n\r\n"+mark), false)
	f.Add([]byte(strings.Repeat("B", 8190)+"\r\n\r\n"+mark), true)
	f.Add([]byte("0\r\n\r\n"+mark), false)
	f.Add([]byte("0\r\n\r\n"+mark), true)
	f.Add([]byte("POST /MARK HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"), false)
	f.Add([]byte("POST /MARK HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"), true)
	f.Add([]byte(strings.Repeat("GET /MARK HTTP/1.1\r\nHost: x\r\n", 400)+"\r\n"), false)
	f.Add([]byte(strings.Repeat("GET /MARK HTTP/1.1\r\nHost: x\r\n", 400)+"\r\n"), true)
	f.Fuzz(func(t *testing.T, body []byte, chunked bool) {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		head := "POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
		framed := body
		if chunked { // the body as one chunk and the last chunk: the guard must settle it too
			head = "POST /ignore HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
			framed = []byte(strconv.FormatInt(int64(len(body)), 16) + "\r\n" + string(body) + "\r\n0\r\n\r\n")
			if len(body) == 0 {
				framed = []byte("0\r\n\r\n")
			}
		}
		go func() {
			io.WriteString(c, head)
			c.Write(framed)
			io.WriteString(c, "GET /end HTTP/1.1\r\nHost: x\r\n\r\n")
		}()
		br := bufio.NewReader(c)
		for i := 0; ; i++ {
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				break // the connection ended
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(b) == "end" {
				if i != 1 {
					t.Errorf("/end was answer %d, want the second", i+1)
				}
				break
			}
			if i > 0 {
				t.Errorf("answer %d: %d %q: part of the body ran as a request", i+1, res.StatusCode, b)
			}
		}
		if n := marked.Load(); n != 0 {
			t.Fatalf("the marker route ran %d times from a body", n)
		}
	})
}
