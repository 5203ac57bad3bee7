package admin

import (
	"context"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
)

// healthz is GET /_swr/healthz: the process is up.
func (a *Admin) healthz(c *fiber.Ctx) error { return c.SendString("ok\n") }

// readyz answers 200 while the listener serves (Redis or origin trouble degrades service, it does
// not stop it), with a JSON body saying whether Redis and the origin are reachable: "ok",
// "unreachable", "recovering" (Redis answers, the circuit is still open) or "disabled". The
// reason of a failure (a dial error names internal addresses) goes to the log, not the body.
func (a *Admin) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	redisState := "disabled"
	if a.cfg.Redis != nil {
		redisState = "ok"
		if err := a.cfg.Redis.Ping(ctx).Err(); err != nil {
			redisState = "unreachable"
			a.cfg.Log.Warn("readiness: redis unreachable", "err", err)
		} else if a.cfg.Store.L2Open() {
			redisState = "recovering"
		}
	}
	originState := "ok"
	u := a.cfg.Upstream
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	var d net.Dialer
	if conn, err := d.DialContext(ctx, "tcp", host); err != nil {
		originState = "unreachable"
		a.cfg.Log.Warn("readiness: origin unreachable", "err", err)
	} else {
		conn.Close()
	}
	return c.JSON(fiber.Map{"status": "ready", "redis": redisState, "origin": originState})
}
