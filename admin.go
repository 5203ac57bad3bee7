package main

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/invalidate"
	"github.com/swrproxy/swrproxy/proxy"
	"github.com/swrproxy/swrproxy/refresh"
	"github.com/swrproxy/swrproxy/tiers"
)

// adminRoutes are the /_swr/ endpoints that need no auth: health and readiness.
type adminRoutes struct {
	store    *tiers.Store
	rdb      redis.UniversalClient
	upstream *url.URL
	log      *slog.Logger
}

func (a *adminRoutes) mount(r fiber.Router) {
	a.mountHealth(r)
	r.Get("/_swr/readyz", a.readyz)
}

// mountHealth adds GET /_swr/healthz, the one endpoint on every listener.
func (a *adminRoutes) mountHealth(r fiber.Router) {
	r.Get("/_swr/healthz", func(c *fiber.Ctx) error { return c.SendString("ok\n") })
}

// readyz answers 200 while the listener serves (Redis or origin trouble degrades service, it does
// not stop it), with a JSON body saying whether Redis and the origin are reachable: "ok",
// "unreachable", "recovering" (Redis answers, the circuit is still open) or "disabled". The
// reason of a failure (a dial error names internal addresses) goes to the log, not the body.
func (a *adminRoutes) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	redisState := "disabled"
	if a.rdb != nil {
		redisState = "ok"
		if err := a.rdb.Ping(ctx).Err(); err != nil {
			redisState = "unreachable"
			a.log.Warn("readiness: redis unreachable", "err", err)
		} else if a.store.L2Open() {
			redisState = "recovering"
		}
	}
	originState := "ok"
	host := a.upstream.Host
	if a.upstream.Port() == "" {
		port := "80"
		if a.upstream.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(a.upstream.Hostname(), port)
	}
	var d net.Dialer
	if conn, err := d.DialContext(ctx, "tcp", host); err != nil {
		originState = "unreachable"
		a.log.Warn("readiness: origin unreachable", "err", err)
	} else {
		conn.Close()
	}
	return c.JSON(fiber.Map{"status": "ready", "redis": redisState, "origin": originState})
}

// statsOf gathers the counters of GET /_swr/stats.
func statsOf(h *proxy.Handler, f *refresh.Filler, p *refresh.Pool, t *refresh.Tracker, s *tiers.Store, bus *invalidate.Bus) map[string]any {
	objects, bytes := s.L1Stats()
	tracked, trackedBytes := t.Size()
	out := map[string]any{
		"hits_l1":               h.Stats.HitL1.Load(),
		"hits_l2":               h.Stats.HitL2.Load(),
		"misses":                h.Stats.Miss.Load(),
		"stale_served":          h.Stats.Stale.Load(),
		"stale_if_error":        h.Stats.StaleIfError.Load(),
		"bypass":                h.Stats.Bypass.Load(),
		"not_modified":          h.Stats.NotModified.Load(),
		"errors":                h.Stats.Errors.Load(),
		"write_invalidations":   h.Stats.WriteInvalidations.Load(),
		"origin_requests":       f.Stats.OriginRequests.Load(),
		"origin_errors":         f.Stats.OriginErrors.Load(),
		"fills_stored":          f.Stats.Stored.Load(),
		"revalidated_304":       f.Stats.Revalidated.Load(),
		"collapsed_local":       f.Stats.SharedLocal.Load(),
		"collapsed_remote":      f.Stats.SharedRemote.Load(),
		"refreshes_done":        p.Done.Load(),
		"refreshes_failed":      p.Failed.Load(),
		"refreshes_skipped":     p.Skipped.Load(),
		"refresh_overflow":      p.Overflow.Load(),
		"refresh_queue":         p.Len(),
		"refresh_queue_bytes":   p.Bytes(),
		"refresh_tracked_keys":  tracked,
		"refresh_tracked_bytes": trackedBytes,
		"refresh_untracked":     t.Untracked.Load(),
		"l1_objects":            objects,
		"l1_bytes":              bytes,
		"l2_errors":             s.L2Errors(),
		"l2_circuit_open":       s.L2Open(),
	}
	if bus != nil {
		out["instances_live"] = bus.Live(context.Background())
	}
	return out
}
