// Package proxy owns the request path: request → cache key → tiers → serve, 304, stale, or fill;
// and the pass-through of everything that is not cacheable. It does no origin fetching for
// cacheable keys itself: that is the Filler's and the Refresher's job.
package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/etag"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// Filler fetches a cacheable key from the origin, collapsed with every other fetch of it.
type Filler interface {
	Fill(ctx context.Context, r *tiers.Request) (*tiers.Result, error)
}

// Refresher revalidates a stale key in the background. Enqueue never blocks; false means the
// refresh was not queued (already queued, or the queue is full) and the caller just carries on.
type Refresher interface {
	Enqueue(r *tiers.Request) bool
}

// Tracker learns which keys clients ask for (refresh-ahead of hot keys). Touch must be cheap:
// it runs on every cache hit.
type Tracker interface {
	Touch(key string, e *tiers.Entry)
}

// Origin sends requests that are not cacheable straight to the origin.
type Origin interface {
	Do(ctx context.Context, r *upstream.Request) (*http.Response, error)
}

// Invalidator clears the cached GET of a URL after a successful unsafe request (RFC 9111 §4.4),
// in every instance.
type Invalidator interface {
	Invalidate(ctx context.Context, key string)
}

// Handler serves every request outside /_swr/. Set the fields, then use Serve as a Fiber handler.
type Handler struct {
	Store       *tiers.Store
	Filler      Filler
	Refresher   Refresher
	Tracker     Tracker     // optional
	Invalidator Invalidator // optional; without it only this instance's tiers are cleared
	Origin      Origin
	// KeyHost includes the Host header in the cache key.
	KeyHost bool
	// AccessLog logs one line per request (at info level).
	AccessLog bool
	// Timeout bounds how long one client waits on the origin.
	Timeout time.Duration
	// PassTTL is how long a URL whose response was not cacheable goes straight to the origin (default 10s).
	PassTTL time.Duration
	Log     *slog.Logger
	Stats   Stats
	// ObserveOrigin, when set, is told how long each pass-through exchange took to its headers.
	ObserveOrigin func(kind string, d time.Duration)
}

// Stats counts what the handler served. Read fields with Load.
type Stats struct {
	HitL1, HitL2, Miss, Stale, Bypass, NotModified, Errors atomic.Int64
	StaleIfError                                           atomic.Int64
}

// reserved reports whether a (decoded, normalised) path is under /_swr/, in any letter case:
// those paths belong to swrproxy and are never forwarded to the origin.
func reserved(path []byte) bool {
	const prefix = "/_swr"
	return len(path) >= len(prefix) && strings.EqualFold(b2s(path[:len(prefix)]), prefix) &&
		(len(path) == len(prefix) || path[len(prefix)] == '/')
}

// Serve handles one request. It never returns an error to Fiber: failures are answered here,
// and a panic while serving one request answers 500 and is logged instead of taking the process
// (and every other client's request) down.
func (h *Handler) Serve(c *fiber.Ctx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			h.Log.Error("panic while serving a request", "uri", string(c.Request().Header.RequestURI()), "panic", p)
			c.Response().Reset()
			err = c.Status(fiber.StatusInternalServerError).SendString("Internal Server Error")
		}
	}()
	if reserved(c.Request().URI().Path()) {
		return c.Status(fiber.StatusNotFound).SendString("Not Found")
	}
	m := c.Request().Header.Method()
	if string(m) == "PURGE" {
		// PURGE is swrproxy's own (on the admin listener when SWR_ADMIN_LISTEN is set), never the origin's.
		return c.Status(fiber.StatusMethodNotAllowed).SendString("Method Not Allowed")
	}
	if string(m) != fiber.MethodGet && string(m) != fiber.MethodHead {
		return h.passThrough(c, "method")
	}
	if len(c.Request().Header.Peek(fiber.HeaderAuthorization)) > 0 {
		// RFC 9111 §3.5: a shared cache must not answer an authenticated request from a
		// response stored for someone else; fetch it for this client only (and store it if
		// the origin says it is public).
		return h.fill(c, h.newRequest(c, nil, 0), nil, true)
	}

	now := time.Now()
	uri := c.Request().Header.RequestURI()
	var kb [512]byte
	keyBytes := h.appendKey(kb[:0], c, uri)
	key := unsafe.String(unsafe.SliceData(keyBytes), len(keyBytes)) // lookup only; copied before it is kept

	var tier = tiers.L1
	o := h.Store.Peek(key)
	if o == nil {
		var err error
		o, tier, err = h.Store.Get(context.Background(), strings.Clone(key))
		if err != nil {
			h.Log.Debug("l2 lookup failed; treating as a miss", "err", err)
		}
	}
	if o != nil && o.Pass {
		return h.passThrough(c, "pass")
	}
	var e *tiers.Entry
	if o != nil {
		e = o.Variant(func(name string) string { return requestValue(c, name) })
	}
	if e == nil {
		return h.fill(c, h.newRequest(c, nil, genOf(o)), nil, false)
	}
	if h.Tracker != nil {
		h.Tracker.Touch(e.Key, e)
	}

	age := e.CurrentAge(now)
	invalidated := e.Gen < o.Gen
	switch {
	case !invalidated && age < e.Fresh:
		if tier == tiers.L1 {
			h.Stats.HitL1.Add(1)
			return h.write(c, e, age, "HIT", csHitL1)
		}
		h.Stats.HitL2.Add(1)
		return h.write(c, e, age, "HIT", csHitL2)
	case age < e.Fresh+e.StaleWhileRevalidate || invalidated && age < e.Fresh:
		// RFC 5861 §3: serve the stale copy now and revalidate in the background.
		h.Stats.Stale.Add(1)
		h.Refresher.Enqueue(h.newRequest(c, e, o.Gen))
		return h.write(c, e, age, "STALE", csStaleRevalidating)
	}
	return h.fill(c, h.newRequest(c, e, o.Gen), e, false)
}

func genOf(o *tiers.Object) uint64 {
	if o == nil {
		return 0
	}
	return o.Gen
}

// appendKey appends the cache key of the request to b (see httpcache.Key). With KeyHost the host
// is the validated, normalised Host (the request was refused before if it is not valid).
func (h *Handler) appendKey(b []byte, c *fiber.Ctx, uri []byte) []byte {
	if h.KeyHost {
		if kb, ok := httpcache.AppendHost(b, c.Request().Header.Host(), defaultPort(c)); ok && len(kb) > len(b) {
			b = append(kb, httpcache.KeySeparator)
		}
	}
	return append(b, uri...)
}

// keyHost is the host part of the request's cache key: "" unless KeyHost.
func (h *Handler) keyHost(c *fiber.Ctx) string {
	if !h.KeyHost {
		return ""
	}
	b, _ := httpcache.AppendHost(nil, c.Request().Header.Host(), defaultPort(c))
	return string(b)
}

// defaultPort is the port a Host field may leave out on this connection.
func defaultPort(c *fiber.Ctx) string {
	if c.Context().IsTLS() {
		return "443"
	}
	return "80"
}

// requestValue is the normalised value of a request header for Vary matching. The result may
// alias fasthttp's buffers: compare it, do not keep it.
func requestValue(c *fiber.Ctx, name string) string {
	v := c.Request().Header.Peek(name)
	if name == "Accept-Encoding" {
		return httpcache.NormalizeEncoding(unsafe.String(unsafe.SliceData(v), len(v)))
	}
	v = bytes.TrimSpace(v)
	return unsafe.String(unsafe.SliceData(v), len(v))
}

// fill fetches the key from the origin (collapsed) and answers with the result. stale, when set,
// is served if the origin fails within its stale-if-error window.
func (h *Handler) fill(c *fiber.Ctx, r *tiers.Request, stale *tiers.Entry, bypass bool) error {
	if !upstream.ValidTarget(r.URI) {
		return badTarget(c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	res, err := h.Filler.Fill(ctx, r)
	if err == nil && res.Pass != nil && stale != nil && httpcache.OriginFailing(res.Pass.Status) && h.staleIfError(stale) {
		// The origin is failing and we have a copy for that: serve it without asking again.
		if res.Pass.Body != nil && res.Pass.Claim(r) {
			res.Pass.Body.Close()
		}
		return h.serveStaleIfError(c, stale)
	}
	if err == nil && res.Pass != nil && res.Pass.Body != nil && !res.Pass.Claim(r) {
		// That response was fetched for another request of the flight and may be private to
		// it (cookies, credentials): fetch our own.
		r.Alone = true
		res, err = h.Filler.Fill(ctx, r)
		if err == nil && res.Pass != nil && res.Pass.Body != nil {
			res.Pass.Claim(r)
		}
	}
	failing := err != nil || res.Pass != nil && httpcache.OriginFailing(res.Pass.Status)
	if failing && stale != nil && h.staleIfError(stale) {
		if err == nil && res.Pass.Body != nil {
			res.Pass.Body.Close()
		}
		h.Log.Warn("origin failed; serving stale", "key", r.Key, "err", err)
		return h.serveStaleIfError(c, stale)
	}
	if err != nil {
		h.Stats.Errors.Add(1)
		h.Log.Warn("origin failed", "key", r.Key, "err", err)
		return h.sendError(c, err)
	}
	if res.Pass == nil {
		return h.serveFilled(c, res)
	}
	// Hit-for-pass: the URL's responses are not cacheable, so for a while its requests go
	// straight to the origin instead of queueing behind one another's fetch. Not for a response
	// private to one client's credentials (the URL may be cacheable for everyone else), nor for
	// an error (the origin may be down for a moment).
	if !bypass && res.Pass.Reason != "" && res.Pass.Reason != "authorization" && res.Pass.Status < 400 {
		h.Store.MarkPass(r.Key, h.passTTL())
	}
	return h.stream(c, res.Pass, bypassStatus(bypass, res.Pass))
}

func bypassStatus(auth bool, p *tiers.Pass) string {
	if auth {
		return "swrproxy; fwd=request; detail=authorization"
	}
	if p.Reason == "" {
		return "swrproxy; fwd=miss"
	}
	return "swrproxy; fwd=miss; detail=" + p.Reason
}

func (h *Handler) passTTL() time.Duration {
	if h.PassTTL > 0 {
		return h.PassTTL
	}
	return 10 * time.Second
}

func (h *Handler) serveFilled(c *fiber.Ctx, res *tiers.Result) error {
	e := res.Entry
	if h.Tracker != nil && res.NotStored == "" {
		h.Tracker.Touch(e.Key, e)
	}
	age := e.CurrentAge(time.Now())
	switch {
	case res.Revalidated:
		h.Stats.Miss.Add(1)
		return h.write(c, e, age, "MISS", csRevalidated)
	case res.Shared:
		h.Stats.Miss.Add(1)
		return h.write(c, e, age, "MISS", csCollapsed)
	case res.NotStored != "":
		h.Stats.Miss.Add(1)
		return h.write(c, e, age, "MISS", "swrproxy; fwd=miss; detail="+res.NotStored)
	}
	h.Stats.Miss.Add(1)
	return h.write(c, e, age, "MISS", csStored)
}

func (h *Handler) staleIfError(e *tiers.Entry) bool {
	return e.CurrentAge(time.Now()) < e.Fresh+e.StaleIfError
}

func (h *Handler) serveStaleIfError(c *fiber.Ctx, e *tiers.Entry) error {
	h.Stats.Stale.Add(1)
	h.Stats.StaleIfError.Add(1)
	return h.write(c, e, e.CurrentAge(time.Now()), "STALE", csStaleIfError)
}

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

// write answers from a stored entry: 200 (or the stored status), or 304 when the client's
// validators match (RFC 9110 §13.2.2; weak comparison). It does not allocate.
func (h *Handler) write(c *fiber.Ctx, e *tiers.Entry, age time.Duration, xcache, cacheStatus string) error {
	resp := c.Response()
	rh := &resp.Header
	rh.SetNoDefaultContentType(true)
	req := &c.Request().Header
	notModified := e.Status >= 200 && e.Status < 300 && etag.NotModified(
		b2s(req.Peek(fiber.HeaderIfNoneMatch)), b2s(req.Peek(fiber.HeaderIfModifiedSince)), e.ETag, e.LastModified)
	if notModified {
		h.Stats.NotModified.Add(1)
		resp.SetStatusCode(fiber.StatusNotModified)
		for _, f := range e.Header {
			if isNotModifiedHeader(f.Name) {
				rh.Add(f.Name, f.Value)
			}
		}
	} else {
		resp.SetStatusCode(e.Status)
		for _, f := range e.Header {
			rh.Add(f.Name, f.Value)
		}
		resp.SetBodyRaw(e.Body)
	}
	rh.Set(fiber.HeaderETag, e.ETag)
	var buf [20]byte
	rh.SetBytesV(fiber.HeaderAge, strconv.AppendInt(buf[:0], int64(age/time.Second), 10))
	rh.Set("X-Cache", xcache)
	rh.Set("Cache-Status", cacheStatus)
	return nil
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

// newRequest copies what a fill needs out of the client's request: nothing it returns aliases
// fasthttp's buffers, so it may outlive the handler.
func (h *Handler) newRequest(c *fiber.Ctx, stale *tiers.Entry, gen uint64) *tiers.Request {
	uri := string(c.Request().Header.RequestURI())
	host := h.keyHost(c)
	hdr, raw := h.forwardHeader(c, true)
	r := &tiers.Request{
		Key:           httpcache.Key(host, uri),
		URI:           uri,
		Header:        hdr,
		Stale:         stale,
		Gen:           gen,
		Authorization: hdr.Get("Authorization") != "",
		Cookie:        len(c.Request().Header.Peek(fiber.HeaderCookie)) > 0,
	}
	// The same normalisation as requestValue, on a copy of the client's own fields, so that the
	// variant a fill stores is the one the lookup of the same request selects.
	r.Value = func(name string) string {
		if name == "Accept-Encoding" {
			return httpcache.NormalizeEncoding(raw.Get(name))
		}
		return strings.TrimSpace(raw.Get(name))
	}
	return r
}

// unkeyedOverrides are request fields some frameworks let override the URL, method, host, port or
// path prefix. On a cacheable fill they would change the answer without changing the key: stripped.
var unkeyedOverrides = []string{"X-Original-Url", "X-Rewrite-Url", "X-Http-Method-Override", "X-Http-Method",
	"X-Method-Override", "Forwarded", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server", "X-Host"}

// forwardHeader copies the client's end-to-end request fields for the origin and sets the
// X-Forwarded-* fields; raw is a copy of the client's fields as they came. For cacheable GETs
// (fill), conditional and Range fields are dropped (the cache wants the whole representation),
// Accept-Encoding is normalised (the response stored under a variant must suit every client of
// that variant), and fields that would change the answer without being in the cache key are not
// sent: URL/method overrides, and X-Forwarded-Host unless SWR_KEY_HOST puts the host in the key
// (a client could otherwise get links to its own host cached for everyone).
func (h *Handler) forwardHeader(c *fiber.Ctx, fill bool) (hdr, raw http.Header) {
	hdr, raw = make(http.Header, 16), make(http.Header, 16)
	rh := &c.Request().Header
	var connection []byte
	rh.VisitAll(func(k, v []byte) {
		name := http.CanonicalHeaderKey(string(k))
		value := string(v)
		raw.Add(name, value)
		switch {
		case name == "Connection":
			connection = append(connection, v...)
			connection = append(connection, ',')
			return
		case name == "Host", name == "Content-Length", upstream.IsHopByHop(name):
			return
		case fill && (name == "If-None-Match" || name == "If-Modified-Since" || name == "If-Match" ||
			name == "If-Unmodified-Since" || name == "If-Range" || name == "Range"):
			return
		}
		hdr.Add(name, value)
	})
	for _, n := range strings.Split(string(connection), ",") {
		if n = strings.TrimSpace(n); n != "" {
			hdr.Del(n)
			raw.Del(n) // the origin does not see it, so no variant may be keyed on it
		}
	}
	if fill {
		hdr.Del("Accept-Encoding")
		if enc := httpcache.NormalizeEncoding(raw.Get("Accept-Encoding")); enc != "" {
			hdr.Set("Accept-Encoding", enc)
		}
		for _, n := range unkeyedOverrides {
			hdr.Del(n)
		}
	}
	ip := c.Context().RemoteIP().String()
	if prior := hdr.Get("X-Forwarded-For"); prior != "" {
		ip = prior + ", " + ip
	}
	hdr.Set("X-Forwarded-For", ip)
	if p := strings.ToLower(hdr.Get("X-Forwarded-Proto")); p != "http" && p != "https" {
		proto := "http"
		if c.Context().IsTLS() {
			proto = "https"
		}
		hdr.Set("X-Forwarded-Proto", proto)
	}
	switch {
	case fill && !h.KeyHost:
		hdr.Del("X-Forwarded-Host")
	case fill:
		hdr.Set("X-Forwarded-Host", strings.ToLower(string(rh.Host())))
	case hdr.Get("X-Forwarded-Host") == "":
		hdr.Set("X-Forwarded-Host", string(rh.Host()))
	}
	return hdr, raw
}

// passThrough sends the request to the origin as it is, streaming both bodies, and relays the
// answer. A successful unsafe request invalidates the cached GET of its URL (RFC 9111 §4.4).
func (h *Handler) passThrough(c *fiber.Ctx, why string) error {
	method := string(c.Request().Header.Method())
	uri := string(c.Request().Header.RequestURI())
	if !upstream.ValidTarget(uri) {
		return badTarget(c)
	}
	hdr, _ := h.forwardHeader(c, false)
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
	return h.stream(c, &tiers.Pass{Status: resp.StatusCode, Header: resp.Header, Body: body, Length: resp.ContentLength}, cs)
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
		if v := rh.Get(f); strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "//") {
			keys = append(keys, httpcache.Key(host, v))
		}
	}
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
func (h *Handler) stream(c *fiber.Ctx, p *tiers.Pass, cacheStatus string) error {
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

// sendError answers a failed origin exchange: 504 for a timeout, 502 otherwise. Details stay in the log.
func (h *Handler) sendError(c *fiber.Ctx, err error) error {
	code := status(err)
	c.Response().Header.Set("X-Cache", "MISS")
	c.Response().Header.Set("Cache-Status", "swrproxy; fwd=miss; detail=origin-error")
	return c.Status(code).SendString(http.StatusText(code))
}

// status is the only error → status code mapping of the request path.
func status(err error) int {
	var ue *upstream.Error
	switch {
	case err == nil:
		return fiber.StatusOK
	case errors.As(err, &ue) && ue.Timeout():
		return fiber.StatusGatewayTimeout
	}
	return fiber.StatusBadGateway
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
