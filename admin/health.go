package admin

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"
)

// healthz is GET /_swr/healthz: the process is up.
func (a *Admin) healthz(c *fiber.Ctx) error { return c.SendString("ok\n") }

// readyz answers 200 while the listener serves (Redis or origin trouble degrades service, it does
// not stop it), with a JSON body saying whether Redis and the origin are reachable: "ok",
// "unreachable", "recovering" (Redis answers, the circuit is still open) or "disabled"; the
// origin is reachable while one backend of the pool is up. The reason of a Redis failure (it
// names internal addresses) goes to the log, not the body.
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
	if a.cfg.Pool.Healthy() == 0 {
		originState = "unreachable" // every backend failed its health checks (see /_swr/servers)
	}
	return c.JSON(fiber.Map{"status": "ready", "redis": redisState, "origin": originState})
}
