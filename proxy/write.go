package proxy

// Writing an answer: from a stored entry (200 or 304, without allocating), or streamed from
// the origin.

import (
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/swrproxy/swrproxy/etag"
	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// Cache-Status values (RFC 9211) that do not depend on the entry.
const (
	csHitL1             = "swrproxy; hit; detail=l1"
	csHitL2             = "swrproxy; hit; detail=l2"
	csStaleRevalidating = "swrproxy; fwd=stale; detail=revalidating"
	csStaleIfError      = "swrproxy; fwd=stale; detail=stale-if-error"
	csStored            = "swrproxy; fwd=miss; stored"
	csCollapsed         = "swrproxy; fwd=miss; stored; collapsed"
	csRevalidated       = "swrproxy; fwd=stale; fwd-status=304; stored"
)

// write answers from a stored entry: 200 (or the stored status), 304 when the client's
// validators match (RFC 9110 §13.2.2; weak comparison), or, for a Range request on a stored
// 200, 206 or 416 (ranges.go). An entry with stored codings sends the one the client accepts
// best (encoding.go), with its own ETag; ranges are cut from the identity form. Without Range
// it does not allocate.
func (h *Handler) write(c *fiber.Ctx, e *tiers.Entry, age time.Duration, xcache, cacheStatus string) error {
	resp := c.Response()
	rh := &resp.Header
	rh.SetNoDefaultContentType(true)
	req := &c.Request().Header
	ims := b2s(req.Peek(fiber.HeaderIfModifiedSince))
	if ims != "" && !httpcache.IsHTTPDate(ims) {
		ims = "" // RFC 9110 §13.1.3: an If-Modified-Since that is not an HTTP-date is ignored
	}
	rng := req.Peek(fiber.HeaderRange)
	ranged := len(rng) > 0 && req.IsGet() && e.Status == fiber.StatusOK
	enc := selectEncoding(req, e, ranged)
	tag, body := e.ETag, e.Body
	if enc != nil {
		tag, body = enc.ETag, enc.Body
		if enc.Coding == httpcache.CodingGzip {
			h.stats.RepliesGzip.Add(1)
		} else {
			h.stats.RepliesBr.Add(1)
		}
	}
	lm := ""
	if ims != "" {
		lm = e.LastModified() // only an If-Modified-Since asks for it
	}
	notModified := e.Status >= 200 && e.Status < 300 && etag.NotModified(
		b2s(req.Peek(fiber.HeaderIfNoneMatch)), ims, tag, lm)
	var sent []byte // the stored bytes set as the reply's body (SetBodyRaw), if any
	if notModified {
		h.stats.NotModified.Add(1)
		resp.SetStatusCode(fiber.StatusNotModified)
		for _, f := range e.Header {
			if isNotModifiedHeader(f.Name) {
				addField(rh, f)
			}
		}
	} else if e.Status != fiber.StatusOK {
		resp.SetStatusCode(int(e.Status))
		for _, f := range e.Header {
			addField(rh, f)
		}
		resp.SetBodyRaw(body)
		sent = body
	} else if !ranged {
		writeOK(resp, e, body, enc != nil)
		sent = body
	} else {
		sent = writeRange(resp, e, b2s(rng), b2s(req.Peek(fiber.HeaderIfRange)))
	}
	if enc != nil && !notModified {
		rh.SetCanonical(keyContentEncoding, s2b(enc.Coding))
	}
	rh.SetCanonical(keyETag, s2b(tag))
	var buf [20]byte
	rh.SetCanonical(keyAge, strconv.AppendInt(buf[:0], int64(age/time.Second), 10))
	rh.SetCanonical(keyXCache, s2b(xcache))
	rh.SetCanonical(keyCacheStatus, s2b(cacheStatus))
	sendWhole(c.Context(), sent)
	return nil
}

// writeOK sets the stored 200's status and fields, with body (the stored body, a coding of it
// when coded, or a range of it). A cached 200 says it can be ranged (RFC 9110 §14.3): the cache
// cuts ranges from it, whatever the origin said. A coded one says it cannot: ranges are cut from
// the identity form only, and a client resuming a coded download without If-Range would join
// identity bytes to coded ones.
func writeOK(resp *fasthttp.Response, e *tiers.Entry, body []byte, coded bool) {
	resp.SetStatusCode(fiber.StatusOK)
	for _, f := range e.Header {
		addField(&resp.Header, f)
	}
	if coded {
		resp.Header.SetCanonical(keyAcceptRanges, rangesNone)
	} else {
		resp.Header.SetCanonical(keyAcceptRanges, rangesBytes)
	}
	resp.SetBodyRaw(body)
}

// writeRange answers a GET with Range (value rng, If-Range ifRange) from a stored 200: 206 with
// the one range and its Content-Range (RFC 9110 §14.4, §15.3.7), 416 with Content-Range
// "bytes */size" when it is unsatisfiable (§15.5.17), else the whole 200. It returns the stored
// bytes it set as the body (none for a 416).
func writeRange(resp *fasthttp.Response, e *tiers.Entry, rng, ifRange string) []byte {
	size := int64(len(e.Body))
	first, last, answer := parseRange(rng, size)
	if answer != rangeWhole && !ifRangeHolds(ifRange, e) {
		answer = rangeWhole // §13.1.5: the client's copy is another one: send it whole
	}
	switch answer {
	case rangeWhole:
		writeOK(resp, e, e.Body, false)
		return e.Body
	case rangePartial:
		writeOK(resp, e, e.Body[first:last+1], false)
		resp.SetStatusCode(fiber.StatusPartialContent)
		resp.Header.SetContentRange(int(first), int(last), int(size))
		return e.Body[first : last+1]
	case rangeUnsatisfiable:
		resp.SetStatusCode(fiber.StatusRequestedRangeNotSatisfiable)
		var buf [32]byte
		resp.Header.SetBytesV(fiber.HeaderContentRange, strconv.AppendInt(append(buf[:0], "bytes */"...), size, 10))
		resp.Header.Set(fiber.HeaderAcceptRanges, "bytes")
		for _, f := range e.Header {
			if f.Name == fasthttp.HeaderDate {
				addField(&resp.Header, f)
			}
		}
	}
	return nil
}

// addField adds a stored field to the reply; Date goes through setDate, which fasthttp's Add
// would drop. Surrogate-Control is stored for the cache's own use and is never sent on (it is
// meant for surrogates, W3C Edge Architecture 1.0).
func addField(rh *fasthttp.ResponseHeader, f tiers.Field) {
	switch f.Name {
	case fasthttp.HeaderDate:
		setDate(rh, s2b(f.Value))
	case httpcache.SurrogateControl:
	default:
		rh.Add(f.Name, f.Value)
	}
}

func isNotModifiedHeader(name string) bool {
	for _, n := range etag.NotModifiedHeaders {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// s2b is s's bytes, read only: for fasthttp setters, which copy them.
func s2b(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// The fields write sets on every reply from the cache, in fasthttp's normalised spelling, so
// that SetCanonical stores them without normalising a copy of the name each time.
var (
	keyETag            = []byte("Etag")
	keyAge             = []byte("Age")
	keyXCache          = []byte("X-Cache")
	keyCacheStatus     = []byte("Cache-Status")
	keyAcceptRanges    = []byte("Accept-Ranges")
	keyContentEncoding = []byte("Content-Encoding")
	rangesNone         = []byte("none")
	rangesBytes        = []byte("bytes")
)

// stream relays an origin response without holding its body in memory.
func (h *Handler) stream(c *fiber.Ctx, p *fill.Pass, cacheStatus string) error {
	h.stats.Bypass.Add(1)
	resp := c.Response()
	resp.Header.SetNoDefaultContentType(true)
	resp.SetStatusCode(p.Status)
	for name, vs := range p.Header {
		if name == "Content-Length" || name == "Surrogate-Key" || name == "Surrogate-Control" || upstream.IsHopByHop(name) {
			continue
		}
		if name == fasthttp.HeaderDate && len(vs) > 0 {
			setDate(&resp.Header, []byte(vs[0])) // the origin's (RFC 9110 §6.6.1)
			continue
		}
		for _, v := range vs {
			resp.Header.Add(name, v)
		}
	}
	if mayBeEncoded(p.Header) {
		resp.Header.Add(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
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
	if p.Length < 0 && !c.Request().Header.IsHTTP11() {
		streamUntilClose(c.Context(), p.Body)
		return nil
	}
	length := int(p.Length)
	if p.Length < 0 {
		length = -1
	}
	resp.SetBodyStream(p.Body, length)
	return nil
}

// mayBeEncoded reports whether a streamed response of header h, an identity body of a
// compressible type whose Vary does not list Accept-Encoding, needs it listed: the proxy in front
// (the shipped nginx, whose gzip_vary is off so that swrproxy's cached replies do not name it
// twice) may gzip it for one client and not for another.
func mayBeEncoded(h http.Header) bool {
	if !httpcache.IdentityCompressible(h) {
		return false
	}
	names, star := httpcache.VaryNames(h.Values("Vary"))
	return !star && !slices.Contains(names, "Accept-Encoding")
}

// streamWriteTimeout bounds each write of a body streamUntilClose relays, as the connection's
// read deadline (deadline.go) bounds a client's reads.
const streamWriteTimeout = 60 * time.Second

// streamUntilClose relays a body of unknown length to an HTTP/1.0 client: RFC 9112 §6.1 forbids
// Transfer-Encoding in a response to one (it could not read chunks), and fasthttp writes every
// body of unknown length chunked. So the response is written here, on the hijacked connection
// (after fasthttp has flushed any reply before it), without Content-Length or
// Transfer-Encoding, and its end is the connection's close (RFC 9112 §6.3, rule 8).
func streamUntilClose(ctx *fasthttp.RequestCtx, body io.ReadCloser) {
	ctx.SetConnectionClose()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(conn net.Conn) {
		defer body.Close()
		w := &deadlineWriter{conn}
		if _, err := w.Write(ctx.Response.Header.Header()); err != nil {
			return
		}
		io.Copy(w, body) // a failure ends the body early, which the client sees as the close
	})
}

// deadlineWriter gives each write to a connection streamWriteTimeout.
type deadlineWriter struct{ conn net.Conn }

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	return w.conn.Write(p)
}
