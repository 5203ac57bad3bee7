package proxy

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/swrproxy/swrproxy/internal/testenv"
)

// countingConn counts the read deadlines set on a connection and keeps the latest.
type countingConn struct {
	net.Conn
	l *countingListener
}

func (c countingConn) SetReadDeadline(t time.Time) error {
	c.l.deadlines.Add(1)
	c.l.latest.Store(t.UnixNano())
	return c.Conn.SetReadDeadline(t)
}

type countingListener struct {
	net.Listener
	wrap      bool // return clientConns, as KeepAccepting does (their deadline kept on them)
	deadlines atomic.Int64
	latest    atomic.Int64 // Unix ns
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.wrap {
		return newClientConn(countingConn{c, l}), nil
	}
	return countingConn{c, l}, nil
}

// dial connects to addr on loopback; the connection is closed when the test ends.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// eachConn runs f for connections of both kinds the deadlines keep: clientConns and others.
func eachConn(t *testing.T, f func(t *testing.T, wrap bool)) {
	for _, wrap := range []bool{true, false} {
		t.Run(map[bool]string{true: "clientConn", false: "net.Conn"}[wrap], func(t *testing.T) { f(t, wrap) })
	}
}

// serveWithDeadlines runs a fasthttp server behind the guard with deadlines of timeout (for a
// new connection's header and for a body), idle (the wait after a reply) and refresh, on
// loopback, until the test ends.
// handled counts the requests that reached the handler. /slow takes nine tenths of timeout to
// answer; /stream answers "ok" slowly, over one and a half timeouts, after the handler returned;
// /upload reads the request body as a stream, /whole through fasthttp's PostBody.
func serveWithDeadlines(t *testing.T, wrap bool, timeout, idle, refresh time.Duration) (addr string, ln *countingListener, handled *atomic.Int64) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln = &countingListener{Listener: inner, wrap: wrap}
	handled = new(atomic.Int64)
	d := newDeadlines(timeout, idle, refresh)
	srv := &fasthttp.Server{StreamRequestBody: true, Handler: guard(d, func(ctx *fasthttp.RequestCtx) {
		handled.Add(1)
		switch string(ctx.Path()) {
		case "/slow":
			time.Sleep(timeout * 9 / 10)
		case "/stream":
			ctx.SetBodyStream(&slowReader{body: "ok", gap: timeout * 3 / 4}, 2)
			return
		case "/upload":
			if _, err := io.Copy(io.Discard, ctx.RequestBodyStream()); err != nil {
				ctx.SetConnectionClose()
			}
		case "/whole":
			ctx.PostBody() // read whole by fasthttp: nothing is left for the guard to drain
		}
		ctx.SetBodyString("ok")
	}, slog.New(slog.DiscardHandler))}
	d.install(srv)
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() { srv.Shutdown(); <-done })
	return ln.Addr().String(), ln, handled
}

// slowReader yields body a byte at a time, gap apart.
type slowReader struct {
	body string
	gap  time.Duration
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.body == "" {
		return 0, io.EOF
	}
	time.Sleep(r.gap)
	n := copy(p[:1], r.body)
	r.body = r.body[n:]
	return n, nil
}

// closedWithin reports whether the server closes c (a read returns EOF or a reset) within wait.
func closedWithin(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

func TestASilentNewConnectionIsClosedAfterTheHeaderTimeout(t *testing.T) {
	eachConn(t, func(t *testing.T, wrap bool) {
		const timeout = 300 * time.Millisecond
		addr, _, _ := serveWithDeadlines(t, wrap, timeout, 20*timeout, timeout/4)
		start := time.Now() // before the server can have set its deadline
		c := dial(t, addr)
		if !closedWithin(c, 10*time.Second) {
			t.Fatal("a connection that sent nothing was still open after 10 s")
		}
		if took := time.Since(start); took < timeout {
			t.Errorf("closed after %v, before the %v timeout", took, timeout)
		}
	})
}

// TestAFirstHeaderTrickledByteByByteIsCutOffAtTheHeaderTimeout: a slow client (slowloris)
// keeps sending, but no complete request arrives within the header timeout (far shorter than
// the idle one here): the connection closes and nothing is handled.
func TestAFirstHeaderTrickledByteByByteIsCutOffAtTheHeaderTimeout(t *testing.T) {
	eachConn(t, func(t *testing.T, wrap bool) {
		const timeout = 300 * time.Millisecond
		addr, _, handled := serveWithDeadlines(t, wrap, timeout, 20*timeout, timeout/4)
		c := dial(t, addr)
		header := "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Slow: 1\r\n", 100) + "\r\n"
		closed := false
		for i := 0; i < len(header) && !closed; i++ {
			if _, err := c.Write([]byte{header[i]}); err != nil {
				closed = true
				break
			}
			closed = closedWithin(c, timeout/10)
		}
		if !closed {
			t.Fatalf("the connection stayed open while the header trickled in for %d bytes", len(header))
		}
		if n := handled.Load(); n != 0 {
			t.Errorf("%d requests handled, want 0", n)
		}
	})
}

// TestAConnectionInUseOutlivesTheTimeoutAndSetsFewDeadlines: requests that keep coming push
// the deadline, so a busy connection is never cut; and the deadline is set on the socket at most
// once per refresh, not per request (fasthttp's own timeouts set it twice per request).
func TestAConnectionInUseOutlivesTheTimeoutAndSetsFewDeadlines(t *testing.T) {
	eachConn(t, func(t *testing.T, wrap bool) {
		const timeout, refresh = time.Second, 250 * time.Millisecond
		addr, ln, handled := serveWithDeadlines(t, wrap, timeout, timeout, refresh)
		c := dial(t, addr)
		br := bufio.NewReader(c)
		get := func() {
			t.Helper()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			var res fasthttp.Response
			if err := res.Read(br); err != nil || string(res.Body()) != "ok" {
				t.Fatalf("request %d: %v %q", handled.Load()+1, err, res.Body())
			}
		}
		const burst = 200
		for range burst {
			get()
		}
		if n := ln.deadlines.Load(); n > 3 {
			t.Errorf("%d requests set the read deadline %d times, want at most 3", burst, n)
		}
		// Spaced requests for three timeouts: each comes well within the deadline the previous pushed.
		for end := time.Now().Add(3 * timeout); time.Now().Before(end); {
			time.Sleep(timeout / 4)
			get()
		}
	})
}

// TestAfterADrainedBodyTheNextRequestGetsAWholeDeadline: the guard shortens the deadline to
// drain what a handler left of a body (drainWait); the connection then waits for the next
// request with a whole timeout again, not the drain's.
func TestAfterADrainedBodyTheNextRequestGetsAWholeDeadline(t *testing.T) {
	eachConn(t, func(t *testing.T, wrap bool) {
		const timeout = 4 * drainWait
		addr, _, handled := serveWithDeadlines(t, wrap, timeout, timeout, timeout/4)
		c := dial(t, addr)
		br := bufio.NewReader(c)
		body := strings.Repeat("b", 16<<10) // beyond what fasthttp reads before the handler
		c.SetDeadline(time.Now().Add(10 * time.Second))
		// To /, whose handler leaves the body unread: the guard drains it.
		if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body); err != nil {
			t.Fatal(err)
		}
		var res fasthttp.Response
		if err := res.Read(br); err != nil || res.Header.ConnectionClose() {
			t.Fatalf("the POST: %v, connection close %v", err, res.Header.ConnectionClose())
		}
		time.Sleep(drainWait * 3 / 2) // longer than the drain's deadline
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res.Reset()
		if err := res.Read(br); err != nil || string(res.Body()) != "ok" {
			t.Fatalf("the request after the drain: %v %q", err, res.Body())
		}
		if n := handled.Load(); n != 2 {
			t.Errorf("%d requests handled, want 2", n)
		}
	})
}

// TestBothListenersGiveANewConnectionItsDeadline: NewApp's and NewAdminApp's servers run with
// the deadlines, not without any: a connection that has sent nothing already has a read deadline
// headerTimeout away.
func TestBothListenersGiveANewConnectionItsDeadline(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	apps := map[string]*fiber.App{
		"NewApp":      NewApp(&Handler{Log: log}, nil),
		"NewAdminApp": NewAdminApp(log, func(fiber.Router) {}),
	}
	for name, app := range apps {
		inner, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln := &countingListener{Listener: inner}
		done := make(chan struct{})
		go func() { app.Listener(ln); close(done) }()
		start := time.Now()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 5*time.Second, name+" sets a deadline on a new connection", func() bool { return ln.deadlines.Load() > 0 })
		if at := time.Unix(0, ln.latest.Load()); at.Before(start.Add(headerTimeout)) || at.After(time.Now().Add(headerTimeout)) {
			t.Errorf("%s: a new connection's read deadline is %v from now, want %v", name, time.Until(at).Round(time.Second), headerTimeout)
		}
		c.Close()
		app.Shutdown()
		<-done
	}
}

// TestTheWaitAfterASlowReplyCountsFromItsEnd: a reply that took most of the timeout to prepare,
// or longer than it to write, does not eat into the wait for the next request (nginx reuses a
// kept-alive connection for its keepalive_timeout after the reply, however long it took).
func TestTheWaitAfterASlowReplyCountsFromItsEnd(t *testing.T) {
	eachConn(t, func(t *testing.T, wrap bool) {
		const timeout = time.Second
		addr, _, _ := serveWithDeadlines(t, wrap, timeout, timeout, timeout/4)
		c := dial(t, addr)
		br := bufio.NewReader(c)
		for _, path := range []string{"/slow", "/after", "/stream", "/after"} {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			var res fasthttp.Response
			if err := res.Read(br); err != nil || string(res.Body()) != "ok" {
				t.Fatalf("GET %s: %v %q", path, err, res.Body())
			}
			if path == "/slow" {
				time.Sleep(timeout / 2) // idle, within the timeout of the reply's end, not of its start
			}
		}
	})
}

// TestABodyTrickledAfterItsHeaderIsCutOff: a request whose header arrives in time, but whose body
// trickles in, must deliver the body within the timeout of its arrival, as the header must.
func TestABodyTrickledAfterItsHeaderIsCutOff(t *testing.T) {
	eachConn(t, func(t *testing.T, wrap bool) {
		const timeout = 300 * time.Millisecond
		addr, _, _ := serveWithDeadlines(t, wrap, timeout, 20*timeout, timeout/4)
		c := dial(t, addr)
		// A first request: the wait for the next one is 20 timeouts, the body still has one.
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		var res fasthttp.Response
		if err := res.Read(bufio.NewReader(c)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("b", 100)); err != nil {
			t.Fatal(err)
		}
		closed := false
		for i := 0; i < 60 && !closed; i++ { // at most 60 bytes, timeout/10 apart: 6 timeouts
			if _, err := c.Write([]byte{'b'}); err != nil {
				closed = true
				break
			}
			closed = closedWithin(c, timeout/10)
		}
		if !closed {
			t.Fatalf("the connection stayed open for %v while the body trickled in", time.Since(start))
		}
		// The handler's read fails at the timeout, and the reply closes the connection.
		if limit := timeout + time.Second; time.Since(start) > limit {
			t.Errorf("closed after %v, want at most %v (the body's timeout, with slack)", time.Since(start), limit)
		}
	})
}

// TestAfterAnUploadTheNextRequestGetsTheIdleWait: an upload's body deadline (the shorter
// header timeout) does not carry over to the wait for the next request, however the handler
// read the body.
func TestAfterAnUploadTheNextRequestGetsTheIdleWait(t *testing.T) {
	for _, upload := range []string{"/upload", "/whole"} {
		t.Run(upload, func(t *testing.T) {
			eachConn(t, func(t *testing.T, wrap bool) {
				const timeout = 300 * time.Millisecond
				addr, _, handled := serveWithDeadlines(t, wrap, timeout, 20*timeout, timeout/4)
				c := dial(t, addr)
				br := bufio.NewReader(c)
				c.SetDeadline(time.Now().Add(10 * time.Second))
				for _, req := range []string{
					"GET / HTTP/1.1\r\nHost: x\r\n\r\n", // the idle wait is pushed after this one
					"POST " + upload + " HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
					"GET / HTTP/1.1\r\nHost: x\r\n\r\n", // after longer than the body's and the drain's deadlines
				} {
					if strings.HasPrefix(req, "GET") && handled.Load() > 0 {
						time.Sleep(max(3*timeout, drainWait*3/2))
					}
					if _, err := io.WriteString(c, req); err != nil {
						t.Fatal(err)
					}
					var res fasthttp.Response
					if err := res.Read(br); err != nil || string(res.Body()) != "ok" {
						t.Fatalf("after %d requests: %v %q", handled.Load(), err, res.Body())
					}
				}
			})
		})
	}
}
