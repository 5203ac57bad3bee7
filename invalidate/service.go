package invalidate

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
)

// Refresher does the refresh work the endpoint orders.
type Refresher interface {
	// Refresh queues a background fetch of the variant e of its key, under object generation gen.
	// It reports false when the queue refused it.
	Refresh(e *tiers.Entry, gen uint64) bool
	// Forget makes the next fetch of key start afresh instead of joining one in flight.
	Forget(key string)
	// Hot reports whether this instance served key within the refresh window.
	Hot(key string) bool
	// Hits returns how many requests for key this instance served from cache.
	Hits(key string) int64
}

// Handler serves the private endpoints. Set the fields, then Mount it.
type Handler struct {
	Secret    string // SWR_INVALIDATE_SECRET; empty disables the endpoints (404)
	Store     *tiers.Store
	Refresher Refresher
	Bus       *Bus // nil without Redis: only this instance is invalidated
	KeyHost   bool
	// AckWait bounds how long a reply waits for the other instances' acknowledgements (default 2s).
	AckWait time.Duration
	// Stats returns the counters of GET /_swr/stats.
	Stats func() map[string]any
	Log   *slog.Logger

	// Counts by mode, read with Load.
	Cleared, Refreshed, Requests atomic.Int64
}

// Mount adds the private routes to r: POST /_swr/invalidate, GET /_swr/keys, GET /_swr/stats and
// PURGE on any path.
func (h *Handler) Mount(r fiber.Router) {
	r.Post("/_swr/invalidate", h.auth, h.invalidate)
	r.Get("/_swr/keys", h.auth, h.keys)
	r.Get("/_swr/stats", h.auth, h.stats)
	// PURGE is not a method Fiber routes; catch it before the proxy sees it.
	r.Use(func(c *fiber.Ctx) error {
		if string(c.Request().Header.Method()) != "PURGE" {
			return c.Next()
		}
		return h.auth(c)
	}, func(c *fiber.Ctx) error {
		if string(c.Request().Header.Method()) != "PURGE" {
			return c.Next()
		}
		return h.purge(c)
	})
}

// auth admits requests that carry the secret as a Bearer token. It compares SHA-256 digests in
// constant time, so neither the secret's content nor its length leaks through timing.
func (h *Handler) auth(c *fiber.Ctx) error {
	if h.Secret == "" {
		return c.Status(fiber.StatusNotFound).SendString("Not Found")
	}
	got := sha256.Sum256(c.Request().Header.Peek(fiber.HeaderAuthorization))
	want := sha256.Sum256([]byte("Bearer " + h.Secret))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="swrproxy"`)
		return c.Status(fiber.StatusUnauthorized).JSON(fiber.Map{"error": "missing or wrong Bearer token"})
	}
	return c.Next()
}

// Result is the reply of an invalidation.
type Result struct {
	Mode         Mode `json:"mode"`
	Matched      int  `json:"matched"`      // selected keys that were cached
	Cleared      int  `json:"cleared"`      // keys removed
	Refreshing   int  `json:"refreshing"`   // variants queued for a background fetch
	Instances    int  `json:"instances"`    // live instances (this one included)
	Acknowledged int  `json:"acknowledged"` // instances that dropped their L1 copies
	Complete     bool `json:"complete"`     // every live instance acknowledged
}

func (h *Handler) invalidate(c *fiber.Ctx) error {
	body, status, msg := readBody(c)
	if status != 0 {
		return c.Status(status).JSON(fiber.Map{"error": msg})
	}
	req, err := decodeRequest(body)
	if err != nil {
		return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"error": err.Error()})
	}
	if h.KeyHost {
		req.Keys, req.Prefixes = hostKeys(req.Keys), hostKeys(req.Prefixes)
	}
	res, err := h.Apply(context.Background(), req)
	return h.reply(c, res, err)
}

// reply answers 200 with the result, or 503 with the result and the problem when part of the
// invalidation could not be carried out (Redis trouble): the caller should retry.
func (h *Handler) reply(c *fiber.Ctx, res Result, err error) error {
	if err != nil {
		h.Log.Warn("invalidation incomplete", "err", err)
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{
			"error": "invalidation incomplete (retry): " + err.Error(), "result": res,
		})
	}
	return c.JSON(res)
}

// readBody reads at most MaxBody bytes of the request body; a larger one is a 413. It reads the
// body stream itself (never fasthttp's Body(), which would read a chunked body of any size into
// memory); what it leaves unread is discarded by proxy's guard, or the connection closes.
func readBody(c *fiber.Ctx) ([]byte, int, string) {
	s := c.Context().RequestBodyStream()
	if n := c.Request().Header.ContentLength(); n > MaxBody {
		// Read (a bounded part of) what the client is sending before answering, so that it gets
		// the 413 rather than a connection reset while it still writes; the connection closes.
		if s != nil {
			io.CopyN(io.Discard, s, 4*MaxBody)
		}
		c.Context().SetConnectionClose()
		return nil, fiber.StatusRequestEntityTooLarge, "body over 1 MiB"
	}
	if s == nil {
		return nil, 0, "" // no body
	}
	b, err := io.ReadAll(io.LimitReader(s, MaxBody+1))
	if err != nil {
		return nil, fiber.StatusBadRequest, "reading body: " + err.Error()
	}
	if len(b) > MaxBody {
		return nil, fiber.StatusRequestEntityTooLarge, "body over 1 MiB"
	}
	return b, 0, ""
}

// purge is PURGE <path>: clear that one key.
func (h *Handler) purge(c *fiber.Ctx) error {
	host := ""
	if h.KeyHost {
		b, _ := httpcache.AppendHost(nil, c.Request().Header.Host(), httpcache.DefaultPort(c.Context().IsTLS()))
		host = string(b)
	}
	key := httpcache.Key(host, string(c.Request().Header.RequestURI()))
	res, err := h.Apply(context.Background(), Request{Keys: []string{key}, Mode: Clear})
	return h.reply(c, res, err)
}

// Apply carries out an invalidation on both tiers and every instance's L1, and waits for the
// acknowledgements. The returned error reports a partial failure (Redis trouble); the result
// says what was done.
func (h *Handler) Apply(ctx context.Context, req Request) (Result, error) {
	wait := h.AckWait
	if wait <= 0 {
		wait = 2 * time.Second
	}
	return h.apply(ctx, req, wait)
}

func (h *Handler) apply(ctx context.Context, req Request, wait time.Duration) (Result, error) {
	h.Requests.Add(1)
	res := Result{Mode: req.Mode}
	keys, err := h.selectKeys(ctx, req)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	// Drop in-flight collapses first, so nothing started before now is joined afterwards.
	for _, k := range keys {
		h.Refresher.Forget(k)
	}
	for _, k := range keys {
		o, err := h.Store.GetL2(ctx, k)
		if err != nil {
			errs = append(errs, err)
		}
		cached := o != nil && len(o.Variants) > 0
		if cached {
			res.Matched++
		}
		mode := req.Mode
		if mode == Auto {
			mode = Clear
			if cached && (h.Refresher.Hot(k) || h.Store.IsHot(ctx, k)) {
				mode = Refresh
			}
		}
		if mode == Clear || !cached {
			if err := h.Store.Delete(ctx, k); err != nil {
				errs = append(errs, err)
			}
			if cached {
				res.Cleared++
				h.Cleared.Add(1)
			}
			continue
		}
		if _, err := h.Store.MarkStale(ctx, k); err != nil {
			errs = append(errs, err)
		}
		if o2, err := h.Store.GetL2(ctx, k); err == nil && o2 != nil {
			o = o2
		} else if err == nil {
			continue
		}
		for _, e := range o.Variants {
			if h.Refresher.Refresh(e, o.Gen) {
				res.Refreshing++
			}
		}
		h.Refreshed.Add(1)
	}

	// Every instance (this one included) drops its L1 copies of the selection. The message names
	// the prefixes and tags rather than the keys they expand to: each instance finds its own
	// copies, and the message stays small whatever the selection.
	msg := Message{Keys: req.Keys, Prefixes: req.Prefixes, Tags: req.Tags, All: req.All}
	if h.Store.HasL2() {
		// L2 holds the truth now; without it, the L1 operations above were the whole job.
		h.Drop(msg)
	}
	res.Instances, res.Acknowledged = 1, 1
	switch {
	case h.Bus == nil:
	case h.Store.L2Open():
		errs = append(errs, errors.New("invalidate: publish: redis unavailable, other instances were not told"))
		res.Instances = 0
	default:
		live, acked, err := h.Bus.Publish(ctx, msg, wait)
		if err != nil {
			errs = append(errs, err)
			live = 0
		}
		res.Instances, res.Acknowledged = live, acked
	}
	res.Complete = len(errs) == 0 && res.Acknowledged >= res.Instances
	return res, joinErrs(errs)
}

// Drop applies a coherence message to this instance: its L1 copies of the selection go, and
// in-flight fetches of the keys are no longer joined.
func (h *Handler) Drop(m Message) {
	if m.All {
		h.Store.ForgetAll()
		return
	}
	keys := append([]string(nil), m.Keys...)
	for _, p := range m.Prefixes {
		keys = append(keys, h.Store.L1KeysWithPrefix(p)...)
	}
	for _, t := range m.Tags {
		keys = append(keys, h.Store.L1KeysWithTag(t)...)
	}
	for _, k := range keys {
		h.Store.Forget(k)
		h.Refresher.Forget(k)
	}
}

// selectKeys resolves a selection to cache keys through the Redis indexes (or L1 without Redis).
func (h *Handler) selectKeys(ctx context.Context, req Request) ([]string, error) {
	seen := map[string]bool{}
	var keys []string
	add := func(ks ...string) {
		for _, k := range ks {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	add(req.Keys...)
	var errs []error
	prefixes := req.Prefixes
	if req.All {
		prefixes = []string{""}
	}
	for _, p := range prefixes {
		after := ""
		for {
			ks, more, err := h.Store.KeysWithPrefix(ctx, p, after, 1000)
			if err != nil {
				errs = append(errs, err)
				break
			}
			add(ks...)
			if !more || len(ks) == 0 {
				break
			}
			after = ks[len(ks)-1]
		}
		add(h.Store.L1KeysWithPrefix(p)...)
	}
	for _, t := range req.Tags {
		ks, err := h.Store.KeysWithTag(ctx, t)
		if err != nil {
			errs = append(errs, err)
		}
		add(ks...)
		add(h.Store.L1KeysWithTag(t)...)
	}
	return keys, joinErrs(errs)
}

// keys lists cached keys: GET /_swr/keys?prefix=/api/&after=<last key of the previous page>&limit=100.
func (h *Handler) keys(c *fiber.Ctx) error {
	limit := 100
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"error": "limit must be a number from 1 to 1000"})
		}
		limit = n
	}
	prefix, after := c.Query("prefix"), c.Query("after")
	ctx := context.Background()
	ks, more, err := h.Store.KeysWithPrefix(ctx, prefix, after, limit)
	if err != nil {
		h.Log.Warn("listing keys failed", "err", err)
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"error": "key index unavailable (Redis down?)"})
	}
	now := time.Now()
	type item struct {
		tiers.KeyInfo
		Hits int64 `json:"hits"`
	}
	items := []item{}
	for _, k := range ks {
		if info, ok := h.Store.Describe(ctx, k, now); ok {
			items = append(items, item{info, h.Refresher.Hits(k)})
		}
	}
	out := fiber.Map{"keys": items}
	if more && len(ks) > 0 {
		out["next"] = ks[len(ks)-1]
	}
	return c.JSON(out)
}

func (h *Handler) stats(c *fiber.Ctx) error {
	out := map[string]any{}
	if h.Stats != nil {
		out = h.Stats()
	}
	out["invalidations"] = h.Requests.Load()
	out["invalidated_cleared"] = h.Cleared.Load()
	out["invalidated_refreshed"] = h.Refreshed.Load()
	return c.JSON(out)
}

// Invalidate clears key on every instance: the cached GET of a URL after a successful unsafe
// request to it (RFC 9111 §4.4).
// It does not wait for the other instances' acknowledgements: the write's reply should not.
func (h *Handler) Invalidate(ctx context.Context, key string) {
	if _, err := h.apply(ctx, Request{Keys: []string{key}, Mode: Clear}, 0); err != nil {
		h.Log.Warn("invalidation after a write incomplete", "key", key, "err", err)
	}
}
