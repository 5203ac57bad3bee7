package proxy

// Failures: the one mapping of errors to status codes, and the answers to failed requests.

import (
	"errors"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/upstream"
)

// sendError answers a failed origin exchange: 503 with Retry-After when the origin could not be
// asked (every backend down, no budget slot), 504 for a timeout, 502 otherwise. Details stay in
// the log.
func (h *Handler) sendError(c *fiber.Ctx, err error) error {
	code := status(err)
	c.Response().Header.Set("X-Cache", "MISS")
	detail := "origin-error"
	if code == fiber.StatusServiceUnavailable {
		detail = "origin-unavailable"
		// Down backends come back after a few health checks; a full budget frees up sooner.
		retry := "1"
		if errors.Is(err, upstream.ErrAllDown) {
			retry = "5"
		}
		c.Response().Header.Set("Retry-After", retry)
	}
	c.Response().Header.Set("Cache-Status", "swrproxy; fwd=miss; detail="+detail)
	return c.Status(code).SendString(http.StatusText(code))
}

// status is the only error → status code mapping of the request path: 503 when the origin could
// not be asked (upstream.ErrUnavailable), 504 for a timeout (an origin exchange, or a fill's wait
// for another instance's fetch, that ran out of time), 502 for any other failure (the origin's,
// or a fill's own: a panic).
func status(err error) int {
	var t interface{ Timeout() bool } // *upstream.Error, and the fill errors that can time out
	switch {
	case err == nil:
		return fiber.StatusOK
	case errors.Is(err, upstream.ErrUnavailable):
		return fiber.StatusServiceUnavailable
	case errors.As(err, &t) && t.Timeout():
		return fiber.StatusGatewayTimeout
	}
	return fiber.StatusBadGateway
}

// badTarget answers a request target that cannot be passed on as it is (a bad %-escape, a
// fragment, control characters).
func badTarget(c *fiber.Ctx) error {
	c.Response().Header.Set("X-Cache", "BYPASS")
	return c.Status(fiber.StatusBadRequest).SendString("Bad Request: invalid request target")
}
