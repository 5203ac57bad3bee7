package proxy

import (
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/valyala/fasthttp"

	"github.com/swrproxy/swrproxy/httpcache"
)

// methods are the request methods Fiber routes: its defaults, PURGE, and WebDAV's. Any other
// method (a token, RFC 9110 §9.1) is passed through by NewApp's app before Fiber sees it.
var methods = append(append([]string(nil), fiber.DefaultMethods...),
	"PURGE", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "REPORT", "SEARCH")

// fiberConfig is the Fiber configuration of both listeners.
func fiberConfig(log *slog.Logger) fiber.Config {
	return fiber.Config{
		DisableStartupMessage: true,
		// /_swr/healthz is one route; /_SWR/healthz or /_swr/healthz/ are not aliases of it.
		CaseSensitive: true,
		StrictRouting: true,
		// Date is swrproxy's to set (date.go): a cached reply keeps its stored Date.
		DisableDefaultDate: true,
		// Fiber answers 400 to methods it does not know: NewApp passes the others through itself.
		RequestMethods: methods,
		// Uploads are streamed to the origin, not held whole in memory. What a handler leaves
		// unread is the guard's business (guard.go).
		StreamRequestBody: true,
		BodyLimit:         1 << 30,
		// Room for the header block nginx lets through (large_client_header_buffers 2 8k) plus
		// the fields nginx adds; a larger one gets 431.
		ReadBufferSize: 24 << 10,
		// A slow client cannot hold a connection (and its goroutine) forever, on either listener:
		// not through fasthttp's ReadTimeout and IdleTimeout (two deadlines per request) but
		// one coarse deadline per connection (deadline.go), installed by guardServer.

		// Keep the request target exactly as the client sent it: it is the cache key.
		UnescapePath:                 false,
		DisablePreParseMultipartForm: true,
		ErrorHandler: func(c *fiber.Ctx, err error) error {
			code := fiber.StatusInternalServerError
			if fe, ok := err.(*fiber.Error); ok {
				code = fe.Code
			}
			log.Warn("request failed", "path", c.Path(), "err", err)
			return c.Status(code).SendString(utils.StatusMessage(code))
		},
	}
}

// NewApp returns the Fiber app that serves h: the routes that mount adds (the /_swr/ endpoints)
// first, then h.Serve for every other method and path (a GET or HEAD outside /_swr/ goes to
// h.Serve directly: takesRoutes); the guard (guard.go) in front of it all, around the fasthttp
// server's handler. Serve the app with Listener or through Server().Handler;
// App.Handler() would leave the guard out.
func NewApp(h *Handler, mount func(fiber.Router)) *fiber.App {
	app := fiber.New(fiberConfig(h.Log))
	srv := app.Server()
	routed := srv.Handler
	guardServer(srv, func(ctx *fasthttp.RequestCtx) {
		if knownMethod(ctx.Request.Header.Method()) && takesRoutes(ctx) {
			routed(ctx)
			return
		}
		// Fiber answers 400 to a method outside RequestMethods, and has no catch-all for one:
		// any other token is a method too (RFC 9110 §9.1): Serve passes it through (not under
		// /_swr/) without Fiber's routing. A GET or HEAD outside /_swr/ (the cache's hits) goes
		// the same way (takesRoutes).
		c := app.AcquireCtx(ctx)
		defer app.ReleaseCtx(c)
		var start time.Time
		if h.AccessLog {
			start = time.Now()
		}
		_ = h.Serve(c) // never an error: Serve answers failures itself
		if h.AccessLog {
			h.logAccess(c, start)
		}
	}, h.Log)
	if h.AccessLog {
		app.Use(h.accessLog)
	}
	if mount != nil {
		mount(app)
	}
	app.Use(h.Serve)
	return app
}

// NewAdminApp returns the app of SWR_ADMIN_LISTEN: the routes mount adds, and 404 for everything
// else, behind the guard.
func NewAdminApp(log *slog.Logger, mount func(fiber.Router)) *fiber.App {
	app := fiber.New(fiberConfig(log))
	srv := app.Server()
	guardServer(srv, srv.Handler, log)
	mount(app)
	app.Use(func(c *fiber.Ctx) error { return c.Status(fiber.StatusNotFound).SendString("Not Found") })
	return app
}

// accessLog writes one line per request: method, path, status, X-Cache, body bytes (its length;
// -1 while streaming one of unknown length) and duration.
func (h *Handler) accessLog(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	h.logAccess(c, start)
	return err
}

// logAccess writes the access line of a request that started at start.
func (h *Handler) logAccess(c *fiber.Ctx, start time.Time) {
	resp := c.Response()
	size := -1 // streaming
	switch {
	case !resp.IsBodyStream():
		size = len(resp.Body())
	case resp.Header.ContentLength() >= 0:
		size = resp.Header.ContentLength() // a stored body sent whole (conn.go), or a known length
	}
	h.Log.Info("access",
		"method", string(c.Request().Header.Method()),
		"path", string(c.Request().Header.RequestURI()),
		"status", resp.StatusCode(),
		"cache", string(resp.Header.Peek("X-Cache")),
		"bytes", size,
		"duration", time.Since(start).Round(time.Microsecond).String(),
		"remote", c.Context().RemoteIP().String(),
	)
}

// guardServer makes srv serve next behind the guard, with the connection deadlines (deadline.go).
func guardServer(srv *fasthttp.Server, next fasthttp.RequestHandler, log *slog.Logger) {
	d := newDeadlines(headerTimeout, idleTimeout, connRefresh)
	d.install(srv)
	srv.Handler = guard(d, next, log)
}

// takesRoutes reports whether ctx's request (of a method Fiber routes) goes through Fiber's
// routes, or straight to Serve: a GET or HEAD does only when its target is, or may be routed as,
// one under /_swr/. Every route mount adds is under /_swr/, and the middleware it adds for every
// path acts only on PURGE and /_swr/ targets (admin.Mount, MountPublic): for any other GET or
// HEAD, walking them would only reach Serve, at a cost a cache hit notices (~5 %).
func takesRoutes(ctx *fasthttp.RequestCtx) bool {
	m := ctx.Request.Header.Method()
	if string(m) != fasthttp.MethodGet && string(m) != fasthttp.MethodHead {
		return true
	}
	return reservedTarget(ctx)
}

// reservedTarget reports whether ctx's request target is, or may be routed as, one under /_swr/:
// its path as normalised (dot segments removed, percent-decoded) is reserved, or its path as
// sent, which Fiber routes on, starts with the prefix in any case (conservatively: "/_swrx" too).
func reservedTarget(ctx *fasthttp.RequestCtx) bool {
	u := ctx.URI()
	return httpcache.Reserved(u.Path()) || httpcache.HasReservedPrefix(u.PathOriginal())
}

// knownMethod reports whether m is one of methods, which Fiber routes.
func knownMethod(m []byte) bool {
	for _, k := range methods {
		if string(m) == k {
			return true
		}
	}
	return false
}
