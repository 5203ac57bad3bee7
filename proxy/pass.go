package proxy

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/upstream"
)

// passThrough sends the request to the origin as it is, streaming both bodies, and relays the
// answer. A successful unsafe request invalidates the cached GET of its URL (RFC 9111 §4.4). The
// policy's rule (rt) edits the request fields and the response fields.
func (h *Handler) passThrough(c *fiber.Ctx, rt route, why string) error {
	method := string(c.Request().Header.Method())
	uri := string(c.Request().Header.RequestURI())
	if !upstream.ValidTarget(uri) {
		return badTarget(c)
	}
	hdr, _ := h.forwardHeader(c, false, nil)
	rt.editRequest(hdr)
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
		h.stats.Errors.Add(1)
		h.Log.Warn("origin failed", "method", method, "uri", uri, "err", err)
		return h.sendError(c, err)
	}
	rt.rule.EditResponse(resp.Header)
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

// unsafeMethod reports whether a successful m invalidates the URL: every method not known to be
// safe (RFC 9111 §4.4: "including methods whose safety is unknown"). The safe ones are RFC 9110
// §9.2.1's and WebDAV's PROPFIND (RFC 4918 §9.1), REPORT (RFC 3253 §3.6) and SEARCH (RFC 5323 §2).
func unsafeMethod(m string) bool {
	switch m {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions, fiber.MethodTrace, "PROPFIND", "REPORT", "SEARCH":
		return false
	}
	return true
}

// invalidateAfterWrite clears the cached GET of the request URI, and of Location and
// Content-Location when they point at the same origin (RFC 9111 §4.4).
func (h *Handler) invalidateAfterWrite(c *fiber.Ctx, uri string, rh http.Header) {
	host := h.keyHost(c)
	keys := []string{h.writeKey(c, host, uri)}
	for _, f := range []string{"Location", "Content-Location"} {
		// Only a path on this origin: "//other.example/x" and "/\other.example" are other hosts
		// to a browser, and an absolute URL may name any host.
		if v := rh.Get(f); strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "//") && !strings.HasPrefix(v, "/\\") &&
			upstream.ValidTarget(v) {
			keys = append(keys, h.writeKey(c, host, v))
		}
	}
	// Counted, so that an origin (or a client) ordering many of them is visible in the metrics.
	h.stats.WriteInvalidations.Add(int64(len(keys)))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, k := range keys {
		h.Invalidator.Invalidate(ctx, k)
	}
}

// writeKey is the cache key a write to target invalidates: the key a GET of target has under the
// policy (policy.Policy.Target).
func (h *Handler) writeKey(c *fiber.Ctx, host, target string) string {
	if h.Policy == nil {
		return httpcache.Key(host, target)
	}
	return httpcache.Key(host, h.Policy.Current().Target(c.Request().Header.Host(), target))
}
