package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/upstream"
)

// passThrough sends the request to the origin as it is, streaming both bodies, and relays the
// answer. A successful unsafe request invalidates the cached GET of its URL (RFC 9111 §4.4).
func (h *Handler) passThrough(c *fiber.Ctx, why string) error {
	method := string(c.Request().Header.Method())
	uri := string(c.Request().Header.RequestURI())
	if !upstream.ValidTarget(uri) {
		return badTarget(c)
	}
	hdr, _ := h.forwardHeader(c, false, nil)
	r := &upstream.Request{
		Method:        method,
		URI:           uri,
		Header:        hdr,
		ContentLength: int64(c.Request().Header.ContentLength()),
	}
	if r.ContentLength < 0 {
		r.ContentLength = -1
	}
	upload := &guardedBody{}
	if method != fiber.MethodGet && method != fiber.MethodHead {
		if s := c.Context().RequestBodyStream(); s != nil {
			upload.r, upload.conn = s, c.Context().Conn()
			r.Body = upload
		} else if b := c.Body(); len(b) > 0 {
			r.Body = bytes.NewReader(bytes.Clone(b))
			r.ContentLength = int64(len(b))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	headerTimer := time.AfterFunc(h.Timeout, cancel) // until the headers arrive; then the idle timeout
	sent := time.Now()
	resp, err := h.Origin.Do(ctx, r)
	headerTimer.Stop()
	if h.ObserveOrigin != nil {
		h.ObserveOrigin("pass", time.Since(sent))
	}
	if err != nil {
		upload.close()
		cancel()
		h.Stats.Errors.Add(1)
		h.Log.Warn("origin failed", "method", method, "uri", uri, "err", err)
		return h.sendError(c, err)
	}
	if upload.unfinished() {
		// The origin answered before reading the whole upload: what is left of it stays on the
		// client connection, so that connection ends with this reply.
		c.Context().SetConnectionClose()
	}
	if unsafeMethod(method) && resp.StatusCode >= 200 && resp.StatusCode < 400 {
		h.invalidateAfterWrite(c, uri, resp.Header)
	}
	cs := "swrproxy; fwd=" + why
	if why == "pass" {
		cs = "swrproxy; fwd=miss; detail=uncacheable"
	}
	// The transport bounded the wait for the headers; the body gets an idle timeout, so a long
	// download that keeps moving is never cut.
	body := upstream.IdleTimeout(resp.Body, h.Timeout, func() { cancel(); upload.close() })
	return h.stream(c, &fill.Pass{Status: resp.StatusCode, Header: resp.Header, Body: body, Length: resp.ContentLength}, cs)
}

func unsafeMethod(m string) bool {
	switch m {
	case fiber.MethodPost, fiber.MethodPut, fiber.MethodPatch, fiber.MethodDelete:
		return true
	}
	return false
}

// invalidateAfterWrite clears the cached GET of the request URI, and of Location and
// Content-Location when they point at the same origin (RFC 9111 §4.4).
func (h *Handler) invalidateAfterWrite(c *fiber.Ctx, uri string, rh http.Header) {
	host := h.keyHost(c)
	keys := []string{httpcache.Key(host, uri)}
	for _, f := range []string{"Location", "Content-Location"} {
		// Only a path on this origin: "//other.example/x" and "/\other.example" are other hosts
		// to a browser, and an absolute URL may name any host.
		if v := rh.Get(f); strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "//") && !strings.HasPrefix(v, "/\\") &&
			upstream.ValidTarget(v) {
			keys = append(keys, httpcache.Key(host, v))
		}
	}
	// Counted, so that an origin (or a client) ordering many of them is visible in the metrics.
	h.Stats.WriteInvalidations.Add(int64(len(keys)))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, k := range keys {
		if h.Invalidator != nil {
			h.Invalidator.Invalidate(ctx, k)
			continue
		}
		if err := h.Store.Delete(ctx, k); err != nil {
			h.Log.Warn("invalidate after write failed", "key", k, "err", err)
		}
	}
}

// stream relays an origin response without holding its body in memory.
func (h *Handler) stream(c *fiber.Ctx, p *fill.Pass, cacheStatus string) error {
	h.Stats.Bypass.Add(1)
	resp := c.Response()
	resp.Header.SetNoDefaultContentType(true)
	resp.SetStatusCode(p.Status)
	for name, vs := range p.Header {
		if name == "Content-Length" || name == "Surrogate-Key" || name == "Surrogate-Control" || upstream.IsHopByHop(name) {
			continue
		}
		for _, v := range vs {
			resp.Header.Add(name, v)
		}
	}
	resp.Header.Set("X-Cache", "BYPASS")
	resp.Header.Set("Cache-Status", cacheStatus)
	if p.Shared != nil {
		resp.SetBodyRaw(p.Shared) // read-only: every request of the flight sends the same bytes
		return nil
	}
	if c.Request().Header.IsHead() || p.Status == fiber.StatusNotModified || p.Status == fiber.StatusNoContent || p.Status < 200 {
		p.Body.Close()
		if p.Length >= 0 && c.Request().Header.IsHead() {
			resp.Header.SetContentLength(int(p.Length))
			resp.SkipBody = true
		}
		return nil
	}
	length := int(p.Length)
	if p.Length < 0 {
		length = -1
	}
	resp.SetBodyStream(p.Body, length)
	return nil
}

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

// badTarget answers a request target that cannot be passed on as it is (a bad %-escape, a
// fragment, control characters).
func badTarget(c *fiber.Ctx) error {
	c.Response().Header.Set("X-Cache", "BYPASS")
	return c.Status(fiber.StatusBadRequest).SendString("Bad Request: invalid request target")
}
