package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// One exchange with a backend, and what its outcome says: whether it may be retried elsewhere,
// and whether it counts against the backend's health (only when the backend was unreachable).

// exchange is one exchange with b, counted in its in-flight requests (until the body is closed,
// by Do's releaser), its counters and latencies, and its passive health.
func (c *Client) exchange(ctx context.Context, b *backend, r *Request) (*http.Response, error) {
	var upload *watchedBody
	switch r.Body.(type) {
	case nil, *bytes.Reader, *strings.Reader, *bytes.Buffer:
		// In memory: reading cannot fail, and net/http can replay it on a stale connection.
	default:
		upload = &watchedBody{r: r.Body}
		sent := *r
		sent.Body = upload
		r = &sent
	}
	b.inflight.Add(1)
	start := time.Now()
	resp, err := c.send(ctx, b.url, r)
	now := time.Now()
	if err != nil {
		b.inflight.Add(-1)
		if upload != nil && upload.failed.Load() {
			// The client's upload broke (an aborted or short body): its failure, not the
			// backend's. Counted against b, it would let anyone take backends down at will.
			return nil, err
		}
		b.failed.Add(1)
		c.failed.Add(1)
		if ctx.Err() == nil && unreachable(err) {
			c.failure(b, now, true)
		}
		return nil, err
	}
	b.lat.observe(now, now.Sub(start))
	c.answered(b) // any answer, 5xx too, ends its run of failures on traffic (not its checks')
	if resp.StatusCode >= 500 {
		b.failed.Add(1)
		c.failed.Add(1)
	} else {
		b.success.Add(1)
		c.success.Add(1)
	}
	return resp, nil
}

// retryable reports whether a failed exchange of r may be sent again to another backend: r has
// no body, time is left, and either nothing reached the backend (the dial failed) or sending it
// twice changes nothing there.
func retryable(ctx context.Context, r *Request, err error) bool {
	if ctx.Err() != nil || (r.Body != nil && r.ContentLength != 0) {
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// releaser runs done once, when the body is closed.
type releaser struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (r *releaser) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(r.done)
	return err
}

// watchedBody is a request body that records whether reading it failed (the client's upload
// broke), as opposed to the backend failing the exchange.
type watchedBody struct {
	r      io.Reader
	failed atomic.Bool // read by the exchange after the transport's goroutine is done with it
}

func (w *watchedBody) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err != nil && err != io.EOF {
		w.failed.Store(true)
	}
	return n, err
}

// unreachable reports whether err shows the backend itself unreachable: the connection could
// not be made (refused, no route, a dial timeout) or its TLS handshake failed. Those are the
// passive failures. A failure after the request was written (a reset, an EOF, a timeout waiting
// for the answer) is not: a request can cause it (a handler that panics, a firewall resetting on
// a signature, a slow report), and counting it would let any client take backends down at will
// (security review). A backend that accepts and then hangs is the active checks' to find.
func unreachable(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var rh tls.RecordHeaderError
	var cv *tls.CertificateVerificationError
	var alert tls.AlertError
	if errors.As(err, &rh) || errors.As(err, &cv) || errors.As(err, &alert) {
		return true
	}
	return strings.Contains(err.Error(), "TLS handshake timeout")
}
