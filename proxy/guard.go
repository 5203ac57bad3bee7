package proxy

import (
	"io"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/httpcache"
)

// With StreamRequestBody, fasthttp reads at most the first 8 KiB of a body before the handler
// runs, and whatever the handler leaves unread is parsed as the next request on the connection
// (request smuggling: behind nginx's kept-alive upstream connections, another user's). Guard is
// the one place that prevents it, for every route of every listener:
//
//   - before any handler, it refuses (400 or 501, and the connection closes) every request whose
//     framing two parsers could read two ways: several Content-Length or Host lines, Content-Length
//     with Transfer-Encoding, a transfer coding other than chunked, obsolete line folding, a bare
//     CR, a missing (HTTP/1.1) or invalid Host; and GET or HEAD with a body, which the cache path
//     never reads nor forwards;
//   - after the handler, and after a panic, what is left of the body is read and discarded
//     (at most drainMax bytes within drainWait), or, when that does not reach its end, the
//     reply carries Connection: close so that nothing of it can be read as a request.
const (
	drainMax  = 64 << 10
	drainWait = time.Second
)

// Guard returns the handler that must run first in every app (NewApp and NewAdminApp install it).
// It also turns a panic anywhere below it into a logged 500 that closes the connection.
func Guard(log *slog.Logger) fiber.Handler {
	return func(c *fiber.Ctx) (err error) {
		if code, why := refuse(c); code != 0 {
			c.Context().SetConnectionClose()
			c.Response().Header.SetNoDefaultContentType(true)
			c.Set(fiber.HeaderContentType, "text/plain; charset=utf-8")
			return c.Status(code).SendString(statusText(code) + ": " + why + "\n")
		}
		defer func() {
			if p := recover(); p != nil {
				log.Error("panic while serving a request", "uri", string(c.Request().Header.RequestURI()), "panic", p)
				c.Response().Reset()
				c.Context().SetConnectionClose() // the request's state is unknown: start afresh
				err = c.Status(fiber.StatusInternalServerError).SendString("Internal Server Error")
			}
			settleBody(c)
		}()
		return c.Next()
	}
}

func statusText(code int) string {
	if code == fiber.StatusNotImplemented {
		return "Not Implemented"
	}
	return "Bad Request"
}

// refuse returns the status and reason for a request Guard does not let through, or 0.
func refuse(c *fiber.Ctx) (int, string) {
	h := &c.Request().Header
	f := scanFraming(h.RawHeaders())
	switch {
	case f.fold:
		return fiber.StatusBadRequest, "obsolete line folding in a header field"
	case f.bareCR:
		return fiber.StatusBadRequest, "bare CR in the header"
	case f.hosts > 1:
		return fiber.StatusBadRequest, "more than one Host field"
	}
	if host := h.Host(); len(host) > 0 {
		var buf [300]byte
		if _, ok := httpcache.AppendHost(buf[:0], host, ""); !ok {
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
	if n := h.ContentLength(); (n > 0 || n == -1) && (h.IsGet() || h.IsHead()) {
		// RFC 9110 §9.3.1: content in a GET has no meaning; a cache never forwards it.
		return fiber.StatusBadRequest, "GET and HEAD requests must not have a body"
	}
	return 0, ""
}

// settleBody makes sure no part of the request body is left on the connection for the next
// request: it is already read, or read now and discarded (bounded), or the connection closes.
func settleBody(c *fiber.Ctx) {
	ctx := c.Context()
	if ctx.Response.Header.ConnectionClose() {
		return // nothing more is read from this connection
	}
	s := ctx.RequestBodyStream()
	if s == nil {
		return // no body, or read whole
	}
	conn := ctx.Conn()
	conn.SetReadDeadline(time.Now().Add(drainWait))
	n, err := io.CopyN(io.Discard, s, drainMax+1)
	conn.SetReadDeadline(time.Time{}) // the server sets its own before the next request
	if err != io.EOF || n > drainMax {
		ctx.SetConnectionClose()
	}
}
