package admin

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/internal/strictjson"
	"github.com/swrproxy/swrproxy/upstream"
)

// maxServerBody bounds the body of POST /_swr/servers: one URL in a JSON object.
const maxServerBody = 4 << 10

// poolTimeout bounds one membership change: with Redis, a removal is three round trips (each
// bounded by the pool itself at a second).
const poolTimeout = 5 * time.Second

// maxEcho bounds how much of a client's input an error message repeats.
const maxEcho = 200

// serverList is the reply of GET /_swr/servers: this instance's view of the pool.
type serverList struct {
	Instance string            `json:"instance"`
	Balance  string            `json:"balance"`
	Healthy  int               `json:"healthy"` // of Servers, the ones up
	Servers  []upstream.Server `json:"servers"`
}

// serverStats is the reply of GET /_swr/stats/detail: the counters of each backend.
type serverStats struct {
	Instance string            `json:"instance"`
	Servers  []upstream.Server `json:"servers"`
}

// servers is GET /_swr/servers.
func (a *Admin) servers(c *fiber.Ctx) error {
	ss := a.cfg.Pool.Servers()
	up := 0
	for _, s := range ss {
		if s.State == "up" {
			up++ // from the same list, so the count never disagrees with it
		}
	}
	return c.JSON(serverList{Instance: a.cfg.Pool.Instance(), Balance: a.cfg.Pool.Balance(), Healthy: up, Servers: ss})
}

// statsDetail is GET /_swr/stats/detail.
func (a *Admin) statsDetail(c *fiber.Ctx) error {
	return c.JSON(serverStats{Instance: a.cfg.Pool.Instance(), Servers: a.cfg.Pool.Servers()})
}

// addServer is POST /_swr/servers with {"url": "http://host:port"}: the backend joins the pool
// of the whole fleet. 201 with the new backend and its Location (where DELETE removes it).
func (a *Admin) addServer(c *fiber.Ctx) error {
	if ct := c.Request().Header.ContentType(); len(ct) > 0 && !acceptedType(string(ct)) {
		return c.Status(fiber.StatusUnsupportedMediaType).JSON(fiber.Map{
			"error": "Content-Type must be application/json (curl: --json, or -H 'Content-Type: application/json')"})
	}
	body, status, msg := readBody(c, maxServerBody)
	if status != 0 {
		return c.Status(status).JSON(fiber.Map{"error": msg})
	}
	raw, err := decodeServer(body)
	if err != nil {
		return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"error": clip(err.Error())})
	}
	ctx, cancel := context.WithTimeout(context.Background(), poolTimeout)
	defer cancel()
	s, err := a.cfg.Pool.Add(ctx, raw)
	if err != nil {
		return a.poolError(c, err)
	}
	a.cfg.Log.Info("backend added through the API", "backend", s.URL, "remote", c.Context().RemoteIP().String())
	c.Location("/_swr/servers?url=" + url.QueryEscape(s.URL))
	return c.Status(fiber.StatusCreated).JSON(s)
}

// removeServer is DELETE /_swr/servers/<host>/<port> (weldr's form) and DELETE
// /_swr/servers?url=<backend URL>: the backend leaves the pool of the whole fleet. 204.
func (a *Admin) removeServer(c *fiber.Ctx) error {
	target, err := removeTarget(c.Params("host"), c.Params("port"), c.Query("url"))
	if err != nil {
		return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"error": clip(err.Error())})
	}
	ctx, cancel := context.WithTimeout(context.Background(), poolTimeout)
	defer cancel()
	id, err := a.cfg.Pool.Remove(ctx, target)
	if err != nil {
		return a.poolError(c, err)
	}
	a.cfg.Log.Info("backend removed through the API", "backend", id, "remote", c.Context().RemoteIP().String())
	return c.SendStatus(fiber.StatusNoContent)
}

// poolError answers a membership change the pool refused. It is the one mapping of the pool's
// errors to statuses.
func (a *Admin) poolError(c *fiber.Ctx, err error) error {
	status := fiber.StatusInternalServerError
	switch {
	case errors.Is(err, upstream.ErrBadBackend):
		status = fiber.StatusBadRequest
	case errors.Is(err, upstream.ErrNotFound):
		status = fiber.StatusNotFound
	case errors.Is(err, upstream.ErrExists), errors.Is(err, upstream.ErrPoolFull),
		errors.Is(err, upstream.ErrLastBackend), errors.Is(err, upstream.ErrAmbiguous):
		status = fiber.StatusConflict
	case errors.Is(err, upstream.ErrPoolStore):
		// The reason names Redis's address: it stays in the log. Each change is one atomic
		// script, so it was not made unless only Redis's reply was lost; either way a retry is
		// safe (one that was made answers 409 or 404).
		a.cfg.Log.Warn("origin pool change failed", "err", err)
		c.Set(fiber.HeaderRetryAfter, "1")
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{
			"error": "the fleet's pool in Redis is unreachable: retry"})
	default:
		a.cfg.Log.Error("origin pool change failed", "err", err)
		return c.Status(status).JSON(fiber.Map{"error": "internal error"})
	}
	return c.Status(status).JSON(fiber.Map{"error": clip(err.Error())})
}

// acceptedType reports whether the Content-Type ct (any parameters) may label a JSON body.
func acceptedType(ct string) bool {
	t, _, err := mime.ParseMediaType(ct)
	// The body is JSON whatever the field says; curl -d labels it a form, and is let through so
	// that the README's curl habits (as for POST /_swr/invalidate) work here too.
	return err == nil && (t == "application/json" || t == "application/x-www-form-urlencoded")
}

// serverRequest is the body of POST /_swr/servers.
type serverRequest struct {
	URL string `json:"url"`
}

// decodeServer parses the body of POST /_swr/servers: one JSON object with a url and nothing
// else. The URL itself is the pool's to judge (upstream.ParseBackend). Every error says what is
// wrong, for the 400 reply.
func decodeServer(body []byte) (string, error) {
	var r serverRequest
	if err := strictjson.Decode(body, &r, `a JSON object such as {"url": "http://host:port"}`); err != nil {
		return "", err
	}
	if r.URL == "" {
		return "", errors.New(`missing url: send {"url": "http://host:port"}`)
	}
	return r.URL, nil
}

// removeTarget is what a DELETE names for upstream.Client.Remove: "host:port" from the path form
// (host bare, in brackets, or percent-encoded: an IPv6 address may be written [::1], ::1 or
// %5B%3A%3A1%5D), or the url of the query. Exactly one of the two forms must be given.
func removeTarget(host, port, query string) (string, error) {
	switch {
	case host == "" && query == "":
		return "", errors.New("name the backend: DELETE /_swr/servers/<host>/<port> or /_swr/servers?url=<url>")
	case host != "" && query != "":
		return "", errors.New("name the backend once: by its host and port or by ?url=, not both")
	case query != "":
		return strings.Clone(query), nil // c.Query's string aliases fasthttp's buffer
	}
	return hostPort(host, port)
}

// hostPort joins the host and port segments of DELETE /_swr/servers/<host>/<port> as the pool
// names a backend's address: host in lower case, port in decimal without leading zeros.
func hostPort(host, port string) (string, error) {
	h, err := url.PathUnescape(host)
	if err != nil {
		return "", fmt.Errorf("host %q: bad percent-encoding", host)
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if h == "" || strings.ContainsFunc(h, func(r rune) bool {
		// No URL host has these; '%' would be an IPv6 zone, which backends do not support.
		return r <= ' ' || r == 0x7f || strings.ContainsRune("/?#[]@%\\", r)
	}) {
		return "", fmt.Errorf("host %q: not a host name or IP address", h)
	}
	p, err := url.PathUnescape(port)
	if err != nil {
		return "", fmt.Errorf("port %q: bad percent-encoding", port)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 || strings.Trim(p, "0123456789") != "" {
		return "", fmt.Errorf("port %q: want a number from 1 to 65535", p)
	}
	return net.JoinHostPort(strings.ToLower(h), strconv.Itoa(n)), nil
}

// clip shortens msg to about maxEcho bytes (on a character boundary), so that an error never
// sends back a large part of what the client sent.
func clip(msg string) string {
	if len(msg) <= maxEcho {
		return msg
	}
	i := maxEcho
	for i > 0 && !utf8.RuneStart(msg[i]) {
		i--
	}
	return msg[:i] + "…"
}
