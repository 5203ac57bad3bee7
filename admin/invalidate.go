package admin

import (
	"context"
	"io"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/invalidate"
)

// invalidate is POST /_swr/invalidate: a JSON selection and mode (invalidate.ParseRequest).
func (a *Admin) invalidate(c *fiber.Ctx) error {
	body, status, msg := readBody(c, invalidate.MaxBody)
	if status != 0 {
		return c.Status(status).JSON(fiber.Map{"error": msg})
	}
	req, err := invalidate.ParseRequest(body, a.cfg.KeyHost)
	if err != nil {
		return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"error": err.Error()})
	}
	res, err := a.cfg.Invalidator.Apply(context.Background(), req)
	return a.reply(c, res, err)
}

// purge is PURGE <path>: clear that one key.
func (a *Admin) purge(c *fiber.Ctx) error {
	host := ""
	if a.cfg.KeyHost {
		host = string(httpcache.AppendKeyHost(nil, c.Request().Header.Host(), c.Context().IsTLS()))
	}
	// The key a GET of the target has under the policy (query parameters a rule ignores left out,
	// and every variant a rule keys on request fields cleared with it).
	key := httpcache.Key(host, a.policy().Target(c.Request().Header.Host(), string(c.Request().Header.RequestURI())))
	res, err := a.cfg.Invalidator.Apply(context.Background(), invalidate.Request{Keys: []string{key}, Mode: invalidate.Clear})
	return a.reply(c, res, err)
}

// reply answers 200 with the result, or 503 with the result when part of the invalidation could
// not be carried out (Redis trouble, logged with its reason): the caller should retry.
func (a *Admin) reply(c *fiber.Ctx, res invalidate.Result, err error) error {
	if err != nil {
		a.cfg.Log.Warn("invalidation incomplete", "err", err)
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{
			// The reason names Redis's address; it stays in the log.
			"error": "invalidation incomplete (retry): Redis could not be reached for part of it", "result": res,
		})
	}
	return c.JSON(res)
}

// readBody reads at most max bytes of the request body; a larger one is a 413 (status and
// message returned, 0 when the body was read). It reads the body stream itself (never fasthttp's
// Body(), which would read a chunked body of any size into memory); what it leaves unread is
// discarded by proxy's guard, or the connection closes.
func readBody(c *fiber.Ctx, max int) ([]byte, int, string) {
	tooLarge := "body over " + size(max)
	s := c.Context().RequestBodyStream()
	if n := c.Request().Header.ContentLength(); n > max {
		// Read (a bounded part of) what the client is sending before answering, so that it gets
		// the 413 rather than a connection reset while it still writes; the connection closes.
		if s != nil {
			io.CopyN(io.Discard, s, 4*int64(max))
		}
		c.Context().SetConnectionClose()
		return nil, fiber.StatusRequestEntityTooLarge, tooLarge
	}
	if s == nil {
		return nil, 0, "" // no body
	}
	b, err := io.ReadAll(io.LimitReader(s, int64(max)+1))
	if err != nil {
		return nil, fiber.StatusBadRequest, "reading body: " + err.Error()
	}
	if len(b) > max {
		return nil, fiber.StatusRequestEntityTooLarge, tooLarge
	}
	return b, 0, ""
}

// size writes n bytes for a person: "1 MiB", "4 KiB", "100 bytes".
func size(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + " KiB"
	}
	return strconv.Itoa(n) + " bytes"
}
