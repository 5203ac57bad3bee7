package proxy

import (
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// A large stored body and its header leave in one writev. fasthttp writes a response's header
// into its 4 KiB connection buffer; a body set with SetBodyRaw follows through that buffer (its
// first bytes copied in, the buffer written, then the rest written: two writes and a copy). For
// a body of more than wholeMin bytes (up to wholeMax), sendWhole sets it as a body stream
// instead, which fasthttp sends after flushing the buffer (the header) through the connection's
// ReadFrom; a clientConn (KeepAccepting's connections) holds that flushed header back, and its
// ReadFrom writes the two with one writev from the stored slice (one, when fasthttp flushed the
// header in one write: the usual case; else what was written before the hold goes first). nginx
// sends a cached file's header and body with writev and sendfile in the same way.
//
// Nothing is held if the body is dropped (a panic resets the reply: the stream's Close ends the
// hold), and whatever is held is written before the connection's next write.

// sendWhole sends a body of more than wholeMin bytes with its header: fasthttp flushes its
// buffer before a body stream only above 8 KiB (its maxSmallFileSize), and below that the copy
// is cheap. wholeMax is the largest it sends so: measured under wrk (64 connections, loopback),
// one writev cut the CPU per reply at 16, 32 and 64 KiB (12.5 vs 14.8 µs at 16 KiB, 13.4 vs
// 15.9 at 32 KiB) but doubled it at 128 KiB (53 vs 21 µs: a write larger than the socket's
// buffer goes out in parts either way, and fasthttp's path is then the cheaper one).
const (
	wholeMin = 8 << 10
	wholeMax = 64 << 10
)

// sentWhole counts the replies whose header and body left in one writev (read by tests).
var sentWhole atomic.Int64

// clientConn is an accepted client connection (see above). Its state is the serving goroutine's:
// bytes are held only between a reply's header and its body, within one write of a reply. Read
// (which another goroutine may call: the origin client reading an upload it forwards) and Close
// (a server shutting down) are the embedded connection's and touch none of it.
type clientConn struct {
	net.Conn
	tcp      *net.TCPConn // Conn, when it is one (writev)
	deadline int64        // the read deadline set on Conn (deadline.go's mono)
	hold     bool         // the next Write is the header of a storedBody: keep it for ReadFrom
	held     *[]byte      // that header, in a pooled buffer while held
	bufs     [2][]byte    // the writev's header and body
	iovec    net.Buffers  // over bufs (a field, so that writing it does not allocate)
}

func newClientConn(c net.Conn) *clientConn {
	tcp, _ := c.(*net.TCPConn)
	return &clientConn{Conn: c, tcp: tcp}
}

// storedBody is a stored body (read only) set as a reply's body stream by sendWhole.
type storedBody struct {
	b   []byte
	off int
	cc  *clientConn // the connection holding the header back for it
}

var storedBodies = sync.Pool{New: func() any { return new(storedBody) }}

// Read serves the body to anything but a clientConn's ReadFrom (fasthttp reading it whole).
func (s *storedBody) Read(p []byte) (int, error) {
	if s.off >= len(s.b) {
		return 0, io.EOF
	}
	n := copy(p, s.b[s.off:])
	s.off += n
	return n, nil
}

// Close is called by fasthttp once the reply is written, or when it is dropped (a panic's
// reset): then no header is to be held for it. s goes back to the pool.
func (s *storedBody) Close() error {
	s.cc.hold = false
	*s = storedBody{}
	storedBodies.Put(s)
	return nil
}

// heldPool holds the buffers of held headers: one per connection while its reply is written,
// none while it waits for a request.
var heldPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// heldMax bounds the buffer a held header returns to the pool with.
const heldMax = 64 << 10

// sendWhole makes the reply's body, stored bytes that write set with SetBodyRaw (never a buffer
// of fasthttp's, which SetBodyStream would hand back to its pool while the stream still sent
// it), leave with its header in one writev, when it is wholeMin to wholeMax bytes, the
// connection is a clientConn and the body is sent (not HEAD).
func sendWhole(ctx *fasthttp.RequestCtx, body []byte) {
	if len(body) <= wholeMin || len(body) > wholeMax || ctx.Request.Header.IsHead() || ctx.Response.IsBodyStream() {
		return
	}
	cc, ok := ctx.Conn().(*clientConn)
	if !ok || cc.tcp == nil {
		return
	}
	s := storedBodies.Get().(*storedBody)
	s.b, s.cc = body, cc
	ctx.Response.SetBodyStream(s, len(body))
	cc.hold = true
}

// Write holds p when it is the header of a storedBody (cc.hold), else writes what is held, then p.
func (cc *clientConn) Write(p []byte) (int, error) {
	if cc.hold {
		cc.hold = false
		cc.held = heldPool.Get().(*[]byte)
		*cc.held = append((*cc.held)[:0], p...)
		return len(p), nil
	}
	if err := cc.flushHeld(); err != nil {
		return 0, err
	}
	return cc.Conn.Write(p)
}

// ReadFrom is how fasthttp sends a body stream (bufio.Writer.ReadFrom with its buffer empty): a
// storedBody goes out with the held header in one writev. It returns the body bytes written.
func (cc *clientConn) ReadFrom(r io.Reader) (int64, error) {
	s, ok := r.(*storedBody)
	if !ok || cc.tcp == nil || cc.held == nil {
		if err := cc.flushHeld(); err != nil {
			return 0, err
		}
		if ok { // the header went out before the hold: the body from the stored slice
			n, err := cc.Conn.Write(s.b[s.off:])
			s.off += n
			return int64(n), err
		}
		return io.Copy(cc.Conn, r)
	}
	head := int64(len(*cc.held))
	sentWhole.Add(1) // before the write: a test reading the reply then reads the count too
	cc.bufs = [2][]byte{*cc.held, s.b[s.off:]}
	cc.iovec = cc.bufs[:]
	n, err := cc.iovec.WriteTo(cc.tcp)
	cc.bufs, cc.iovec = [2][]byte{}, nil
	cc.releaseHeld()
	if n < head {
		// Not even the header went out whole: the connection is broken; fasthttp closes it.
		return 0, err
	}
	s.off += int(n - head)
	return n - head, err
}

// flushHeld writes the held header, if any: its body did not follow.
func (cc *clientConn) flushHeld() error {
	cc.hold = false
	if cc.held == nil {
		return nil
	}
	_, err := cc.Conn.Write(*cc.held)
	cc.releaseHeld()
	return err
}

func (cc *clientConn) releaseHeld() {
	if cap(*cc.held) <= heldMax {
		heldPool.Put(cc.held)
	}
	cc.held = nil
}
