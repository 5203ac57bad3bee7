package admin

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"
)

// WarmLimit bounds one warm-up, at start and on demand: it reads L2 only, so it is quick when
// Redis is, and never holds up an instance for long when Redis is slow.
const WarmLimit = 10 * time.Second

// populate is POST /_swr/populate: warm this instance's L1 from the fleet's hot set in L2 (as a
// starting instance does), without asking the origin. 200 with what was loaded; 404 when warm
// start is off (no Redis, or SWR_WARM_BYTES=0); 503 when Redis fails.
func (a *Admin) populate(c *fiber.Ctx) error {
	if a.cfg.Warmer == nil || a.cfg.WarmBytes <= 0 {
		return c.Status(fiber.StatusNotFound).JSON(fiber.Map{"error": "warm start is off (it needs Redis and SWR_WARM_BYTES > 0)"})
	}
	if !a.warming.TryLock() {
		return c.Status(fiber.StatusConflict).JSON(fiber.Map{"error": "a warm-up is running on this instance"})
	}
	defer a.warming.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), WarmLimit)
	defer cancel()
	start := time.Now()
	keys, bytes, err := a.cfg.Warmer.Warm(ctx, a.cfg.WarmBytes)
	took := time.Since(start)
	if err != nil {
		a.cfg.Log.Warn("populate failed", "keys", keys, "bytes", bytes, "err", err)
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"error": "the hot set could not be read (Redis down?)", "keys": keys, "bytes": bytes})
	}
	return c.JSON(fiber.Map{"keys": keys, "bytes": bytes, "duration_ms": took.Milliseconds()})
}
