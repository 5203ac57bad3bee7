package proxy

import (
	"net"
	"time"

	"github.com/puzpuzpuz/xsync/v4"
	"github.com/valyala/fasthttp"
)

// Client connection deadlines. fasthttp's ReadTimeout and IdleTimeout set a read deadline twice
// per request (before the wait for it, and again once it arrives): on a cache hit that moved
// the socket's runtime timer twice and cost 5–7 % of the throughput (bench/wrk.sh, 1 key). The
// listeners run without them, and deadlines keeps one coarse read deadline per connection
// instead:
//
//   - a new connection must deliver its first request header within headerTimeout (60 s);
//   - once a reply is written (fasthttp's StateIdle), the next request header must arrive
//     within idleTimeout (120 s); the deadline is pushed at most once per connRefresh (30 s), so
//     the wait is 90–120 s counted from the end of a reply, however long it took to write (nginx
//     ends its kept-alive upstream connections after 60 s: always first);
//   - a request with a body must deliver it within headerTimeout of its header's arrival
//     (fasthttp's HeaderReceived hook, before the body is read: uploads only, never a hit).
//
// So a silent client, or one trickling a header or a body byte by byte, holds a connection and
// its goroutine no longer than a kept-alive connection could be held with fasthttp's
// ReadTimeout 60 s and IdleTimeout 120 s (120 s for the wait and header, then 60 s for a body).
// One difference: a new connection's first request has 60 s for its header and then 60 s for
// its body, where ReadTimeout gave the two 60 s together (HeaderReceived does not say which
// request of a connection it is). On a busy connection the socket's deadline moves once per
// connRefresh, not twice per request; the guard's drain of an unread body (drainWait) and an
// abandoned upload (upload.go, which ends the read at once, and the connection) also move it.
const (
	headerTimeout = 60 * time.Second
	idleTimeout   = 120 * time.Second
	connRefresh   = 30 * time.Second
)

// deadlines is the read deadline set on each open client connection of one server: on the
// connection itself for a clientConn (KeepAccepting's, as every listener of the process has), in
// a map for any other.
type deadlines struct {
	header, idle, refresh time.Duration
	at                    *xsync.Map[net.Conn, int64] // conn → the read deadline set on it (mono)
}

func newDeadlines(header, idle, refresh time.Duration) *deadlines {
	return &deadlines{header: header, idle: idle, refresh: refresh, at: xsync.NewMap[net.Conn, int64]()}
}

// connState is the server's ConnState hook: a new connection gets its first deadline, one whose
// reply is written the wait for its next request; a closed or hijacked one (its new owner sets
// its own) is forgotten.
func (d *deadlines) connState(c net.Conn, s fasthttp.ConnState) {
	switch s {
	case fasthttp.StateNew:
		d.push(c, time.Now().Add(d.header))
	case fasthttp.StateIdle:
		d.replied(c, time.Now())
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		if _, ok := c.(*clientConn); !ok {
			d.at.Delete(c)
		}
	}
}

// replied gives c idle from now to deliver its next request header, unless its deadline was
// pushed less than refresh ago.
func (d *deadlines) replied(c net.Conn, now time.Time) {
	if d.deadline(c)-mono(now) > int64(d.idle-d.refresh) {
		return
	}
	d.push(c, now.Add(d.idle))
}

// epoch is the origin of mono.
var epoch = time.Now()

// mono is t on the monotonic clock, ns since epoch, as socket deadlines count (a step of the
// wall clock moves neither).
func mono(t time.Time) int64 { return int64(t.Sub(epoch)) }

// headerReceived is the server's HeaderReceived hook, which fasthttp calls once a request's
// header is read, before any of its body: a request with a body must deliver it within header
// from now (fasthttp sets that deadline itself; arrived records that it did). One without a body
// keeps the deadline of the wait it came in.
func (d *deadlines) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if hasBody(h) {
		return fasthttp.RequestConfig{ReadTimeout: d.header}
	}
	return fasthttp.RequestConfig{}
}

// arrived is called as ctx's request reaches the guard: for a request with a body, the deadline
// recorded for its connection is no longer the one on the socket (headerReceived's is), so the
// push once the reply is written must not be skipped. (The guard's drain after the handler
// records the same when it runs; this holds whatever the handler and fasthttp did with the body.)
func (d *deadlines) arrived(ctx *fasthttp.RequestCtx) {
	if c := ctx.Conn(); c != nil && hasBody(&ctx.Request.Header) {
		d.record(c, 0)
	}
}

// hasBody reports whether h announces a body (a Content-Length above 0, or chunked: -1; fasthttp
// reads a request without either as having none, -2).
func hasBody(h *fasthttp.RequestHeader) bool {
	n := h.ContentLength()
	return n > 0 || n == -1
}

// deadline returns the read deadline set on c (mono; 0 if none is recorded).
func (d *deadlines) deadline(c net.Conn) int64 {
	if cc, ok := c.(*clientConn); ok {
		return cc.deadline
	}
	at, _ := d.at.Load(c)
	return at
}

func (d *deadlines) push(c net.Conn, at time.Time) {
	if c.SetReadDeadline(at) == nil {
		d.record(c, mono(at))
	}
}

func (d *deadlines) record(c net.Conn, at int64) {
	if cc, ok := c.(*clientConn); ok {
		cc.deadline = at
		return
	}
	d.at.Store(c, at)
}

// shortened records that c's deadline was brought forward (the guard's drain of an unread
// body): the push once the reply is written may not wait for refresh.
func (d *deadlines) shortened(c net.Conn) { d.record(c, 0) }

// install makes srv keep its connections' read deadlines through d (and not through its own
// ReadTimeout and IdleTimeout).
func (d *deadlines) install(srv *fasthttp.Server) {
	srv.ReadTimeout, srv.IdleTimeout = 0, 0
	srv.ConnState = d.connState
	srv.HeaderReceived = d.headerReceived
}
