package proxy

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// KeepAccepting returns ln with an Accept that waits out the failures a loaded machine recovers
// from, as net/http's Server does: out of file descriptors (EMFILE, ENFILE: a client can open
// enough connections to get there), out of buffers or memory, a connection aborted before it was
// taken. fasthttp ends its Serve on any such error, which would end the process; here Accept
// logs a warning, sleeps (5 ms, doubling to 1 s while the failures go on) and tries again. Other
// errors, such as the listener being closed, are returned. Close ends a pending wait at once.
// Each connection it returns is a clientConn (conn.go), which sends a stored body of more than 8
// and up to 64 KiB with its header in one writev.
func KeepAccepting(ln net.Listener, log *slog.Logger) net.Listener {
	return &keepAccepting{Listener: ln, log: log, closed: make(chan struct{})}
}

type keepAccepting struct {
	net.Listener
	log       *slog.Logger
	closed    chan struct{}
	closeOnce sync.Once
}

const (
	acceptMinWait = 5 * time.Millisecond
	acceptMaxWait = time.Second
)

func (l *keepAccepting) Accept() (net.Conn, error) {
	var wait time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			return newClientConn(c), nil
		}
		if !recoverable(err) {
			return c, err
		}
		wait = min(max(2*wait, acceptMinWait), acceptMaxWait)
		l.log.Warn("accept failed; retrying", "err", err, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-l.closed:
			t.Stop()
			return nil, net.ErrClosed
		}
	}
}

func (l *keepAccepting) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// recoverable reports whether an Accept error is one that passes once the machine has room again.
func recoverable(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}
