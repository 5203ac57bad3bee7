package proxy

import (
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/utils"
)

// Methods are the request methods the app accepts: Fiber's defaults, PURGE, and WebDAV's.
var Methods = append(append([]string(nil), fiber.DefaultMethods...),
	"PURGE", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "REPORT", "SEARCH")

// NewApp returns the Fiber app that serves h: the routes that mount adds (the /_swr/ endpoints)
// first, then h.Serve for every other method and path.
func NewApp(h *Handler, mount func(fiber.Router)) *fiber.App {
	app := fiber.New(fiber.Config{
		DisableStartupMessage: true,
		// /_swr/healthz is one route; /_SWR/healthz or /_swr/healthz/ are not aliases of it.
		CaseSensitive: true,
		StrictRouting: true,
		// Fiber answers 400 to methods it does not know; these are passed through (PURGE is ours).
		RequestMethods: Methods,
		// Uploads are streamed to the origin, not held whole in memory.
		StreamRequestBody: true,
		BodyLimit:         1 << 30,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		// Keep the request target exactly as the client sent it: it is the cache key.
		UnescapePath:                 false,
		DisablePreParseMultipartForm: true,
		ErrorHandler: func(c *fiber.Ctx, err error) error {
			code := fiber.StatusInternalServerError
			if fe, ok := err.(*fiber.Error); ok {
				code = fe.Code
			}
			h.Log.Warn("request failed", "path", c.Path(), "err", err)
			return c.Status(code).SendString(utils.StatusMessage(code))
		},
	})
	// A panic while serving an admin request answers 500; the proxy handler recovers its own.
	app.Use("/_swr", recover.New())
	if h.AccessLog {
		app.Use(h.accessLog)
	}
	if mount != nil {
		mount(app)
	}
	app.Use(h.Serve)
	return app
}

// accessLog writes one line per request: method, path, status, X-Cache, body bytes (-1 while
// streaming) and duration.
func (h *Handler) accessLog(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	resp := c.Response()
	size := len(resp.Body())
	if resp.IsBodyStream() {
		size = -1
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
	return err
}
