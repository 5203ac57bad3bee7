// Package proxy owns the request path: request → cache key → tiers → serve, 304, stale, or fill;
// and the pass-through of everything that is not cacheable. It does no origin fetching for
// cacheable keys itself: that is the Filler's and the Refresher's job.
package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// Store is what the request path uses of the tiers (*tiers.Store): lookups and hit-for-pass marks.
type Store interface {
	// Peek returns the object L1 holds for key, or nil; it does not allocate.
	Peek(key string) *tiers.Object
	// Get looks key up in L1, then L2; a miss is (nil, tiers.Miss, nil).
	Get(ctx context.Context, key string) (*tiers.Object, tiers.Tier, error)
	// MarkPass sends key's requests straight to the origin for ttl (hit-for-pass).
	MarkPass(key string, ttl time.Duration)
}

// Filler fetches a cacheable key from the origin, collapsed with every other fetch of it. A Pass
// in the result was fetched for r: the caller streams it or closes its Body.
type Filler interface {
	Fill(ctx context.Context, r *fill.Request) (*fill.Result, error)
}

// Refresher revalidates a stale key in the background. Enqueue never blocks; false means the
// refresh was not queued (already queued, or the queue is full) and the caller just carries on.
type Refresher interface {
	Enqueue(r *fill.Request) bool
}

// Tracker learns which keys clients ask for (refresh-ahead of hot keys). TouchAt records a
// request that arrived at now served e from cache (demand): an L1 hit passes o, the object e is
// a variant of, so that the tracker can keep its record in o's memo slot; a collapsed request
// passes nil. It runs on every L1 hit, so it must be cheap. PromotedAt records one served from
// L2 (a copy another instance filled, or one this instance's L1 no longer held): demand only for
// a key asked for again. Filled records the request whose fill stored the entry (not demand: it
// asked before the copy existed).
type Tracker interface {
	TouchAt(key string, o *tiers.Object, e *tiers.Entry, now time.Time)
	PromotedAt(key string, e *tiers.Entry, now time.Time)
	Filled(key string, e *tiers.Entry)
}

// Origin sends requests that are not cacheable straight to the origin.
type Origin interface {
	Do(ctx context.Context, r *upstream.Request) (*http.Response, error)
}

// Invalidator clears the cached GET of a URL after a successful unsafe request (RFC 9111 §4.4),
// in every instance.
type Invalidator interface {
	Invalidate(ctx context.Context, key string)
}

// Handler serves every request outside /_swr/. Set the fields (all the interfaces are needed;
// ObserveOrigin is optional), then use Serve as a Fiber handler.
type Handler struct {
	Store       Store
	Filler      Filler
	Refresher   Refresher
	Tracker     Tracker
	Invalidator Invalidator
	Origin      Origin
	// KeyHost includes the Host header in the cache key.
	KeyHost bool
	// TrustedProxies are the peers (nginx) whose forwarding fields are believed (SWR_TRUSTED_PROXIES).
	TrustedProxies []netip.Prefix
	// Policy, when set, is the policy in force (SWR_POLICY_FILE, the Wasm hooks).
	Policy Policy
	// AccessLog logs one line per request (at info level).
	AccessLog bool
	// Timeout bounds how long one client waits on the origin.
	Timeout time.Duration
	Log     *slog.Logger
	stats   counters
	// ObserveOrigin, when set, is told how long each pass-through exchange took to its headers.
	ObserveOrigin func(kind string, d time.Duration)
}

// counters count what the handler served; Stats reads them.
type counters struct {
	HitL1, HitL2, Miss, Stale, Bypass, NotModified, Errors atomic.Int64
	StaleIfError                                           atomic.Int64
	// WriteInvalidations counts the keys cleared after successful unsafe requests (RFC 9111 §4.4).
	WriteInvalidations atomic.Int64
	// RepliesGzip and RepliesBr count the replies from cache sent with a stored coding.
	RepliesGzip, RepliesBr atomic.Int64
	// ClientSuccess and ClientFailed count the answers to clients (weldr's "client" counts):
	// below 500, or 500 and above.
	ClientSuccess, ClientFailed atomic.Int64
}

// Serve handles one request. It never returns an error to Fiber: failures are answered here.
// (The guard, in front of it, turns a panic into a 500 and settles the request body.)
func (h *Handler) Serve(c *fiber.Ctx) error {
	defer h.countAnswer(c)
	// The admin routes, mounted before Serve, answer /_swr/ and PURGE; these two checks make sure
	// that whatever they leave (or an app mounted without them) never reaches the origin.
	if httpcache.Reserved(c.Request().URI().Path()) {
		return c.Status(fiber.StatusNotFound).SendString("Not Found")
	}
	m := c.Request().Header.Method()
	if string(m) == "PURGE" {
		// PURGE is swrproxy's own (on the admin listener when SWR_ADMIN_LISTEN is set), never the origin's.
		return c.Status(fiber.StatusMethodNotAllowed).SendString("Method Not Allowed")
	}
	if string(m) != fiber.MethodGet && string(m) != fiber.MethodHead {
		return h.passThrough(c, h.route(c, m), "method")
	}
	rt := h.route(c, m)
	if rt.ambiguous {
		return h.passThrough(c, rt, "request; detail=policy-path")
	}
	if rt.bypass() {
		return h.passThrough(c, rt, "request; detail=policy")
	}
	if len(c.Request().Header.Peek(fiber.HeaderAuthorization)) > 0 {
		// RFC 9111 §3.5: a shared cache must not answer an authenticated request from a
		// response stored for someone else; fetch it for this client only (and store it if
		// the origin says it is public).
		return h.fill(c, h.newRequest(c, rt, nil, nil, 0))
	}

	// The request's arrival: an age counts from it, not from the end of an L2 read (at most the
	// Redis timeout later), as a response's age counts from its request (RFC 9111 §4.2.3).
	now := requestTime(c.Context())
	o, tier := h.lookup(c, rt)
	if o != nil && o.Pass {
		return h.passThrough(c, rt, "pass")
	}
	var e *tiers.Entry
	if o != nil {
		e = o.Variant(func(name string) string { return h.requestValue(c, name) })
	}
	if e == nil {
		return h.fill(c, h.newRequest(c, rt, o, nil, genOf(o)))
	}
	if e.Guessed && rt.rule.UnkeyedCookies(c.Request().Header.PeekAll(fiber.HeaderCookie)) {
		// Requests with Cookie get no heuristic freshness (the origin did not say the copy is for
		// everyone): the Filler asks the origin for this client alone, conditionally. The cookies
		// counted are those the fill would send (a rule may strip them, or key on them).
		return h.fill(c, h.newRequest(c, rt, o, e, o.Gen))
	}
	if rt.rule.RefreshesAhead() {
		if tier == tiers.L2 {
			h.Tracker.PromotedAt(e.Key, e, now)
		} else {
			h.Tracker.TouchAt(e.Key, o, e, now)
		}
	}

	age := e.CurrentAge(now)
	invalidated := e.Gen < o.Gen
	switch {
	case !invalidated && age < e.Fresh:
		if tier == tiers.L1 {
			h.stats.HitL1.Add(1)
			return h.write(c, e, age, "HIT", csHitL1)
		}
		h.stats.HitL2.Add(1)
		return h.write(c, e, age, "HIT", csHitL2)
	case age < e.Fresh+e.StaleWhileRevalidate || invalidated && age < e.Fresh:
		// RFC 5861 §3: serve the stale copy now and revalidate in the background.
		h.stats.Stale.Add(1)
		h.Refresher.Enqueue(h.newRequest(c, rt, o, e, o.Gen))
		return h.write(c, e, age, "STALE", csStaleRevalidating)
	}
	return h.fill(c, h.newRequest(c, rt, o, e, o.Gen))
}

// keyBufs holds the buffers in which lookup builds cache keys: the key goes to Store, an
// interface, so a buffer on the stack would escape; a pooled one keeps the hit path free of
// allocations.
var keyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// lookup returns what the tiers hold for the request's cache key, and the tier it came from
// (tiers.Miss for none). An L2 failure is logged and counts as a miss.
func (h *Handler) lookup(c *fiber.Ctx, rt route) (*tiers.Object, tiers.Tier) {
	buf := keyBufs.Get().(*[]byte)
	defer keyBufs.Put(buf)
	*buf = h.appendKey((*buf)[:0], c, rt, c.Request().Header.RequestURI())
	key := unsafe.String(unsafe.SliceData(*buf), len(*buf)) // for the lookup only: the buffer is reused
	if o := h.Store.Peek(key); o != nil {
		return o, tiers.L1
	}
	o, tier, err := h.Store.Get(context.Background(), strings.Clone(key))
	if err != nil {
		h.Log.Debug("l2 lookup failed; treating as a miss", "err", err)
	}
	return o, tier
}

func genOf(o *tiers.Object) uint64 {
	if o == nil {
		return 0
	}
	return o.Gen
}

// countAnswer counts the answer c got in the client counts.
func (h *Handler) countAnswer(c *fiber.Ctx) {
	if c.Response().StatusCode() >= 500 {
		h.stats.ClientFailed.Add(1)
	} else {
		h.stats.ClientSuccess.Add(1)
	}
}
