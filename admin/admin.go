// Package admin owns every /_swr/ route: health, readiness, metrics, stats, the keys listing and
// one key's detail, invalidation (POST /_swr/invalidate and PURGE <path>), the origin pool
// (/_swr/servers), the policy, warm-up (POST /_swr/populate), the admin page (/_swr/ui/, its
// login and dashboard data), and the 404 of every other path under the reserved prefix. Auth is
// applied where the routes are registered, through protected (Bearer token, or the page's
// session with its CSRF token), so no private route can forget it. The work behind the routes
// is the other packages'.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/invalidate"
	"github.com/swrproxy/swrproxy/metrics"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// Invalidator carries out invalidations (*invalidate.Service).
type Invalidator interface {
	Apply(ctx context.Context, req invalidate.Request) (invalidate.Result, error)
}

// Store is what the routes read of the tiers (*tiers.Store).
type Store interface {
	// L2Open reports whether the Redis circuit is open.
	L2Open() bool
	KeysWithPrefix(ctx context.Context, prefix, after string, limit int) ([]string, bool, error)
	Describe(ctx context.Context, key string, now time.Time) (tiers.KeyInfo, bool)
	// Peek and GetL2 read one key's object, for its detail (GET /_swr/key).
	Peek(key string) *tiers.Object
	GetL2(ctx context.Context, key string) (*tiers.Object, error)
}

// Hits counts the requests this instance served from cache per key (*refresh.Tracker).
type Hits interface {
	Hits(key string) int64
}

// Pool is the origin's pool of backends, as this instance sees it and as the whole fleet shares
// it (*upstream.Client).
type Pool interface {
	Servers() []upstream.Server
	Healthy() int
	Instance() string
	Balance() string
	Add(ctx context.Context, raw string) (upstream.Server, error)
	Remove(ctx context.Context, target string) (string, error)
}

// Config is what New needs.
type Config struct {
	// Secret is SWR_INVALIDATE_SECRET: the Bearer token of the private routes. Empty: they answer 404.
	Secret string
	// KeyHost (SWR_KEY_HOST) puts the Host in the keys PURGE and POST /_swr/invalidate name.
	KeyHost     bool
	Invalidator Invalidator
	Store       Store
	Hits        Hits
	// Redis is the L2 client readiness pings; nil without Redis.
	Redis redis.UniversalClient
	// Pool is the origin's pool of backends (*upstream.Client).
	Pool Pool
	// Policy is the policy in force (*policy.Holder): GET /_swr/policy, POST /_swr/policy/reload,
	// and the keys PURGE names.
	Policy  Policy
	Metrics *metrics.Metrics
	Log     *slog.Logger
	// Password is SWR_ADMIN_PASSWORD, the admin page's login; empty: the page takes Secret.
	Password string
	// Warmer fills this instance's L1 from the fleet's hot set in L2 (*tiers.Store), for at most
	// WarmBytes: POST /_swr/populate. nil or WarmBytes 0: populate answers 404.
	Warmer    Warmer
	WarmBytes int64
}

// Warmer warms L1 from the fleet's hot set in L2 (*tiers.Store).
type Warmer interface {
	Warm(ctx context.Context, maxBytes int64) (keys int, bytes int64, err error)
}

// Admin serves the /_swr/ routes. Safe for concurrent use.
type Admin struct {
	cfg  Config
	want [sha256.Size]byte // digest of the Authorization field that admits a request
	sess *sessions         // the admin page's; nil without a secret
	dash *dashboard        // what the page's dashboard shows (dashboard.go)

	warming sync.Mutex // one POST /_swr/populate at a time
}

// New returns the routes over cfg; Mount or MountPublic adds them to an app.
func New(cfg Config) *Admin {
	a := &Admin{cfg: cfg, want: sha256.Sum256([]byte("Bearer " + cfg.Secret)), dash: newDashboard(cfg)}
	if cfg.Secret != "" {
		password := cfg.Password
		if password == "" {
			password = cfg.Secret
		}
		a.sess = newSessions(cfg.Secret, password)
	}
	return a
}

// Mount adds every /_swr/ route to r, and PURGE on any path. Register it before the proxy's
// handler: a /_swr/ path without a route gets 404 here and never reaches the origin.
func (a *Admin) Mount(r fiber.Router) {
	// Public on purpose: liveness, readiness (which names no address) and the scrape target.
	r.Get("/_swr/healthz", a.healthz)
	r.Get("/_swr/readyz", a.readyz)
	r.Get("/_swr/metrics", adaptor.HTTPHandler(a.cfg.Metrics.Handler()))

	r.Post("/_swr/invalidate", a.protected(a.invalidate))
	r.Get("/_swr/keys", a.protected(a.keys))
	r.Get("/_swr/key", a.protected(a.keyDetail))
	r.Get("/_swr/stats", a.protected(a.stats))
	r.Get("/_swr/stats/detail", a.protected(a.statsDetail))
	r.Get("/_swr/servers", a.protected(a.servers))
	r.Post("/_swr/servers", a.protected(a.addServer))
	r.Delete("/_swr/servers", a.protected(a.removeServer))
	r.Delete("/_swr/servers/:host/:port", a.protected(a.removeServer))
	r.Post("/_swr/populate", a.protected(a.populate))
	a.mountUI(r)
	if a.cfg.Policy != nil {
		r.Get("/_swr/policy", a.protected(a.policyInfo))
		r.Post("/_swr/policy/reload", a.protected(a.policyReload))
	}
	// PURGE is not a method Fiber routes; catch it, on any path, before the proxy sees it. A GET
	// or HEAD outside /_swr/ skips Fiber's routes and this middleware (proxy.NewApp's
	// takesRoutes): it must act only on PURGE and /_swr/ targets.
	purge := a.protected(a.purge)
	r.Use(func(c *fiber.Ctx) error {
		switch {
		case string(c.Request().Header.Method()) == "PURGE":
			return purge(c)
		case httpcache.Reserved(c.Request().URI().Path()):
			return notFound(c)
		}
		return c.Next()
	})
}

// MountPublic adds what the proxy listener keeps when the other routes are on their own listener
// (SWR_ADMIN_LISTEN): GET /_swr/healthz; 404 for every other /_swr/ path and 405 for PURGE.
func (a *Admin) MountPublic(r fiber.Router) {
	r.Get("/_swr/healthz", a.healthz)
	// As in Mount: a GET or HEAD outside /_swr/ never reaches this middleware.
	r.Use(func(c *fiber.Ctx) error {
		switch {
		case httpcache.Reserved(c.Request().URI().Path()):
			return notFound(c)
		case string(c.Request().Header.Method()) == "PURGE":
			return c.Status(fiber.StatusMethodNotAllowed).SendString("Method Not Allowed")
		}
		return c.Next()
	})
}

// protected wraps h so that it answers 404 (no secret set) or 401 (no token or a wrong one)
// before h runs; every private route is registered through it, so none can forget the check.
// It admits the Bearer token, or the admin page's session cookie, with the session's CSRF token
// in X-CSRF-Token on every method but GET and HEAD (else 403). It compares SHA-256 digests in
// constant time, so neither the secret's content nor its length leaks through timing.
func (a *Admin) protected(h fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if a.cfg.Secret == "" {
			return notFound(c)
		}
		// Private answers are for their requester alone: no cache on the way keeps them.
		c.Set(fiber.HeaderCacheControl, "no-store")
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		got := sha256.Sum256(c.Request().Header.Peek(fiber.HeaderAuthorization))
		if subtle.ConstantTimeCompare(got[:], a.want[:]) == 1 {
			return h(c)
		}
		if id, ok := a.session(c); ok {
			if m := c.Method(); m != fiber.MethodGet && m != fiber.MethodHead && !equal(c.Get("X-CSRF-Token"), a.sess.csrf(id)) {
				return c.Status(fiber.StatusForbidden).JSON(fiber.Map{"error": "missing or wrong CSRF token (X-CSRF-Token)"})
			}
			return h(c)
		}
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="swrproxy"`)
		return c.Status(fiber.StatusUnauthorized).JSON(fiber.Map{"error": "missing or wrong Bearer token"})
	}
}

// session returns the id of the request's valid admin-page session.
func (a *Admin) session(c *fiber.Ctx) (string, bool) {
	if a.sess == nil {
		return "", false
	}
	v := c.Cookies(sessionCookie)
	if v == "" {
		return "", false
	}
	return a.sess.valid(v, time.Now())
}

func notFound(c *fiber.Ctx) error {
	return c.Status(fiber.StatusNotFound).SendString("Not Found")
}

// stats is GET /_swr/stats: every counter, under its JSON name (metrics' table).
func (a *Admin) stats(c *fiber.Ctx) error {
	return c.JSON(a.cfg.Metrics.Snapshot())
}
