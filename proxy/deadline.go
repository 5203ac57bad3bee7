package proxy

import (
	"net"
	"time"

	"github.com/puzpuzpuz/xsync/v4"
	"github.com/valyala/fasthttp"
)

// Client connection deadlines. fasthttp's ReadTimeout and IdleTimeout set a read deadline twice
// per request (before the wait for it, and again once it arrives): on a cache hit that moved
// the socket's runtime timer twice and cost about 6 % of the throughput. The listeners run
// without them, and deadlines keeps one coarse read deadline per connection instead:
//
//   - a new connection must deliver a complete request header within connTimeout;
//   - each request that reaches the handler pushes the deadline to connTimeout from then,
//     unless it was pushed less than connRefresh ago;
//
// so a connection is closed when no complete request arrives within connTimeout-connRefresh
// (90 s) to connTimeout (120 s) of the previous one, or of its opening: a slow or silent client
// (a header trickled byte by byte) cannot hold a connection and its goroutine longer, and an
// idle keep-alive connection from the shipped nginx (keepalive_timeout 60s) is always ended by
// nginx first. The deadline is set on the socket at most once per connRefresh per connection.
const (
	connTimeout = 120 * time.Second
	connRefresh = 30 * time.Second
)

// deadlines is the read deadline set on each open client connection of one server.
type deadlines struct {
	timeout, refresh time.Duration
	set              *xsync.Map[net.Conn, int64] // conn → the read deadline on it, Unix ns
}

func newDeadlines(timeout, refresh time.Duration) *deadlines {
	return &deadlines{timeout: timeout, refresh: refresh, set: xsync.NewMap[net.Conn, int64]()}
}

// connState is the server's ConnState hook: a new connection gets its first deadline; a closed
// or hijacked one (its new owner sets its own) is forgotten.
func (d *deadlines) connState(c net.Conn, s fasthttp.ConnState) {
	switch s {
	case fasthttp.StateNew:
		d.push(c, time.Now())
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		d.set.Delete(c)
	}
}

// request pushes c's deadline to timeout from now (the arrival of a request) unless it was
// pushed less than refresh ago.
func (d *deadlines) request(c net.Conn, now time.Time) {
	if c == nil {
		return // a context no server filled in (tests calling the handler)
	}
	if at, ok := d.set.Load(c); ok && at-now.UnixNano() > int64(d.timeout-d.refresh) {
		return
	}
	d.push(c, now)
}

func (d *deadlines) push(c net.Conn, now time.Time) {
	at := now.Add(d.timeout)
	if c.SetReadDeadline(at) == nil {
		d.set.Store(c, at.UnixNano())
	}
}

// shortened records that c's deadline was brought forward by someone else (the guard's drain of
// an unread body): the next push may not wait for refresh.
func (d *deadlines) shortened(c net.Conn) {
	d.set.Store(c, 0)
}

// serve makes srv keep its connections' read deadlines through d (and not through its own
// ReadTimeout and IdleTimeout).
func (d *deadlines) serve(srv *fasthttp.Server) {
	srv.ReadTimeout, srv.IdleTimeout = 0, 0
	srv.ConnState = d.connState
}
