package proxy

import (
	"io"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/valyala/fasthttp"

	"github.com/swrproxy/swrproxy/httpcache"
)

// With StreamRequestBody, fasthttp reads at most the first 8 KiB of a body before the handler
// runs, and whatever the handler leaves unread is parsed as the next request on the connection
// (request smuggling: behind nginx's kept-alive upstream connections, another user's). The guard
// is the one place that prevents it. It wraps the fasthttp server's handler itself, outside
// Fiber, so it sees every request of every listener, including the ones Fiber answers on its own
// (an unknown method, a routing error):
//
//   - first, for a request with a body, it records that the connection's read deadline is now
//     the body's (set by the server's HeaderReceived hook, deadline.go);
//   - then it refuses (400 or 501, and the connection closes) every request
//     whose framing two parsers could read two ways: several Content-Length or Host lines,
//     Content-Length with Transfer-Encoding, a transfer coding other than chunked, obsolete line
//     folding, a bare CR, a field name that is not a token or a value with control characters, a
//     missing (HTTP/1.1) or invalid Host; and GET or HEAD with a body, which the cache path never
//     reads nor forwards;
//   - after the handler, and after a panic, what is left of a Content-Length body is read and
//     discarded (at most drainMax bytes within drainWait), or, when that does not reach its end,
//     the reply carries Connection: close so that nothing of it can be read as a request. A
//     chunked body always ends the connection: fasthttp's chunked reader keeps no end-of-body
//     state, so reading it again would parse whatever follows as chunks;
//   - every reply leaves with a Date: its own (stored or the origin's), else the current time
//     (date.go).
const (
	drainMax  = 64 << 10
	drainWait = time.Second
)

// guard returns next wrapped as described above. A panic anywhere in next becomes a logged 500
// that closes the connection.
func guard(d *deadlines, next fasthttp.RequestHandler, log *slog.Logger) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		d.arrived(ctx)
		if code, why := refuse(&ctx.Request.Header); code != 0 {
			ctx.SetConnectionClose()
			ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
			ctx.SetStatusCode(code)
			ctx.SetBodyString(utils.StatusMessage(code) + ": " + why + "\n")
			ensureDate(&ctx.Response.Header)
			return
		}
		defer func() {
			if p := recover(); p != nil {
				log.Error("panic while serving a request", "uri", string(ctx.Request.Header.RequestURI()), "panic", p)
				ctx.Response.Reset()
				ctx.SetConnectionClose() // the request's state is unknown: start afresh
				ctx.SetStatusCode(fiber.StatusInternalServerError)
				ctx.SetBodyString("Internal Server Error")
			}
			settleBody(ctx, d)
			ensureDate(&ctx.Response.Header)
		}()
		next(ctx)
	}
}

// refuse returns the status and reason for a request the guard does not let through, or 0.
func refuse(h *fasthttp.RequestHeader) (int, string) {
	f := scanFraming(h.RawHeaders())
	switch {
	case !httpcache.IsToken(b2s(h.Method())):
		return fiber.StatusBadRequest, "the method is not a token" // RFC 9110 §9.1
	case f.fold:
		return fiber.StatusBadRequest, "obsolete line folding in a header field"
	case f.bareCR:
		return fiber.StatusBadRequest, "bare CR in the header"
	case f.badName:
		return fiber.StatusBadRequest, "a header field name that is not a token" // RFC 9110 §5.1
	case f.badValue:
		return fiber.StatusBadRequest, "a control character in a header field value" // RFC 9110 §5.5
	case f.hosts > 1:
		return fiber.StatusBadRequest, "more than one Host field"
	}
	if host := h.Host(); len(host) > 0 {
		if !httpcache.ValidHost(host) {
			return fiber.StatusBadRequest, "invalid Host (a host name or IP address, and an optional port)"
		}
	} else if h.IsHTTP11() {
		return fiber.StatusBadRequest, "Host is required" // RFC 9112 §3.2
	}
	if f.encodings > 0 {
		switch {
		case f.lengths > 0:
			return fiber.StatusBadRequest, "both Content-Length and Transfer-Encoding" // RFC 9112 §6.1
		case !h.IsHTTP11():
			return fiber.StatusBadRequest, "Transfer-Encoding in an HTTP/1.0 request" // RFC 9112 §6.1
		case !f.chunkedLast:
			return fiber.StatusBadRequest, "the last transfer coding is not chunked" // RFC 9112 §6.3
		case !f.chunkedOnly:
			return fiber.StatusNotImplemented, "only the chunked transfer coding is supported"
		}
	}
	if f.lengths > 1 {
		return fiber.StatusBadRequest, "more than one Content-Length field"
	}
	if hasBody(h) && (h.IsGet() || h.IsHead()) {
		// RFC 9110 §9.3.1: content in a GET has no meaning; a cache never forwards it.
		return fiber.StatusBadRequest, "GET and HEAD requests must not have a body"
	}
	return 0, ""
}

// settleBody makes sure no part of the request body is left on the connection for the next
// request: it is already read, or read now and discarded (bounded), or the connection closes.
func settleBody(ctx *fasthttp.RequestCtx, d *deadlines) {
	if ctx.Response.Header.ConnectionClose() {
		return // nothing more is read from this connection
	}
	s := ctx.RequestBodyStream()
	if s == nil {
		return // no body, or read whole through Body()
	}
	if ctx.Request.Header.ContentLength() == -1 {
		ctx.SetConnectionClose() // chunked: see the comment at the top
		return
	}
	conn := ctx.Conn()
	conn.SetReadDeadline(time.Now().Add(drainWait))
	d.shortened(conn)
	n, err := io.CopyN(io.Discard, s, drainMax+1)
	if err != io.EOF || n > drainMax {
		ctx.SetConnectionClose()
	}
	// The deadline is pushed again once the reply is written (shortened lets it).
}
