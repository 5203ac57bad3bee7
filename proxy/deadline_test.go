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

	"github.com/valyala/fasthttp"
)

// countingConn counts the read deadlines set on a connection.
type countingConn struct {
	net.Conn
	deadlines *atomic.Int64
}

func (c countingConn) SetReadDeadline(t time.Time) error {
	c.deadlines.Add(1)
	return c.Conn.SetReadDeadline(t)
}

type countingListener struct {
	net.Listener
	deadlines atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, &l.deadlines}, nil
}

// serveWithDeadlines runs a fasthttp server behind the guard with deadlines of timeout and
// refresh, on loopback, until the test ends. handled counts the requests that reached the handler.
func serveWithDeadlines(t *testing.T, timeout, refresh time.Duration) (addr string, ln *countingListener, handled *atomic.Int64) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln = &countingListener{Listener: inner}
	handled = new(atomic.Int64)
	d := newDeadlines(timeout, refresh)
	srv := &fasthttp.Server{StreamRequestBody: true, Handler: guard(d, func(ctx *fasthttp.RequestCtx) {
		handled.Add(1)
		ctx.SetBodyString("ok")
	}, slog.New(slog.DiscardHandler))}
	d.serve(srv)
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() { srv.Shutdown(); <-done })
	return ln.Addr().String(), ln, handled
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

func TestASilentConnectionIsClosedAfterTheTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	addr, _, _ := serveWithDeadlines(t, timeout, timeout/4)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if !closedWithin(c, 10*time.Second) {
		t.Fatal("a connection that sent nothing was still open after 10 s")
	}
	if took := time.Since(start); took < timeout*9/10 {
		t.Errorf("closed after %v, before the %v timeout", took, timeout)
	}
}

// TestAHeaderTrickledByteByByteIsCutOff: a slow client (slowloris) keeps sending, but no
// complete request arrives within the timeout: the connection closes and nothing is handled.
func TestAHeaderTrickledByteByByteIsCutOff(t *testing.T) {
	const timeout = 300 * time.Millisecond
	addr, _, handled := serveWithDeadlines(t, timeout, timeout/4)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
}

// TestAConnectionInUseOutlivesTheTimeoutAndSetsFewDeadlines: requests that keep coming push
// the deadline, so a busy connection is never cut; and the deadline is set on the socket at most
// once per refresh, not per request (fasthttp's own timeouts set it twice per request).
func TestAConnectionInUseOutlivesTheTimeoutAndSetsFewDeadlines(t *testing.T) {
	const timeout, refresh = 400 * time.Millisecond, 100 * time.Millisecond
	addr, ln, handled := serveWithDeadlines(t, timeout, refresh)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
}

// TestAfterADrainedBodyTheNextRequestGetsAWholeDeadline: the guard shortens the deadline to
// drain what a handler left of a body (drainWait); the connection then waits for the next
// request with a whole timeout again, not the drain's.
func TestAfterADrainedBodyTheNextRequestGetsAWholeDeadline(t *testing.T) {
	const timeout = 4 * drainWait
	addr, _, handled := serveWithDeadlines(t, timeout, timeout/4)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	body := strings.Repeat("b", 16<<10) // beyond what fasthttp reads before the handler
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
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
}
