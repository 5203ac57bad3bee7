package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// errUploadGone is what the origin client reads from an upload once its request has been answered.
var errUploadGone = errors.New("proxy: request body no longer available (the origin answered first)")

// guardedBody hands fasthttp's request body stream to the origin client. The client may go on
// reading it after the origin answered (an origin that replies before reading the whole upload),
// while fasthttp recycles the stream once the reply is written: close, called when the reply's
// body is closed (fasthttp does that after writing it), cuts the stream off first. Reads and
// close are serialised, so no read can be under way on a recycled stream.
type guardedBody struct {
	mu   sync.Mutex
	r    io.Reader
	conn net.Conn // the client connection, to unblock a read that waits on it
	done bool
	eof  atomic.Bool
}

func (g *guardedBody) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done || g.r == nil {
		return 0, errUploadGone
	}
	n, err := g.r.Read(p)
	if err == io.EOF {
		g.eof.Store(true)
	}
	return n, err
}

// unfinished reports whether the upload was not read to its end: the rest of it is still on the
// client connection, which must then be closed after the reply (or it would be read as requests).
func (g *guardedBody) unfinished() bool { return g.r != nil && !g.eof.Load() }

func (g *guardedBody) close() {
	if g.unfinished() && g.conn != nil {
		g.conn.SetReadDeadline(time.Now()) // a read blocked on the client returns now
	}
	g.mu.Lock()
	g.done = true
	g.mu.Unlock()
}
