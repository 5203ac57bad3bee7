package main

import (
	"context"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/tiers"
)

// adminRoutes are the /_swr/ endpoints that need no auth: health and readiness.
type adminRoutes struct {
	store    *tiers.Store
	rdb      redis.UniversalClient
	upstream string // host:port of the origin
}

func (a *adminRoutes) mount(r fiber.Router) {
	r.Get("/_swr/healthz", func(c *fiber.Ctx) error { return c.SendString("ok\n") })
	r.Get("/_swr/readyz", a.readyz)
}

// readyz answers 200 while the listener serves (Redis or origin trouble degrades service, it does
// not stop it), with a JSON body saying whether Redis and the origin are reachable.
func (a *adminRoutes) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	redisState := "disabled"
	if a.rdb != nil {
		redisState = "ok"
		if err := a.rdb.Ping(ctx).Err(); err != nil {
			redisState = "unreachable: " + err.Error()
		} else if a.store.L2Open() {
			redisState = "recovering (circuit open)"
		}
	}
	originState := "ok"
	host := a.upstream
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, "80")
	}
	var d net.Dialer
	if conn, err := d.DialContext(ctx, "tcp", host); err != nil {
		originState = "unreachable: " + err.Error()
	} else {
		conn.Close()
	}
	return c.JSON(fiber.Map{"status": "ready", "redis": redisState, "origin": originState})
}

func adminApp(a *adminRoutes) *fiber.App {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	a.mount(app)
	return app
}
