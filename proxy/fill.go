package proxy

// Answering from a fill: the stored entry, the stream of an uncacheable response, or the stale
// copy when the origin fails.

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// fill fetches the key from the origin (collapsed) and answers with the result. r.Stale, when
// set, is served if the origin fails within its stale-if-error window.
func (h *Handler) fill(c *fiber.Ctx, r *fill.Request) error {
	if !upstream.ValidTarget(r.URI) {
		return badTarget(c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	res, err := h.Filler.Fill(ctx, r)
	failing := err != nil || res.Pass != nil && httpcache.OriginFailing(res.Pass.Status)
	if failing && r.Stale != nil && r.Stale.UsableOnError(time.Now()) {
		if err == nil && res.Pass.Body != nil {
			res.Pass.Body.Close()
		}
		h.Log.Warn("origin failed; serving stale", "key", r.Key, "err", err)
		return h.serveStaleIfError(c, r.Stale)
	}
	if err != nil {
		h.stats.Errors.Add(1)
		h.Log.Warn("origin failed", "key", r.Key, "err", err)
		return h.sendError(c, err)
	}
	if res.Pass == nil {
		return h.serveFilled(c, r, res)
	}
	// Hit-for-pass: the URL's responses are not cacheable, so for a while its requests go
	// straight to the origin instead of queueing behind one another's fetch. Not from a request
	// with credentials or cookies (the answer may be uncacheable because of them: one such
	// request must not turn caching off for everyone else), nor for an error (the origin may be
	// down for a moment).
	if res.Bypass == "" && !r.Authorization && !r.Cookie && res.Pass.Reason != "" && res.Pass.Status < 400 {
		h.Store.MarkPass(r.Key, passTTL)
	}
	return h.stream(c, res.Pass, bypassStatus(res.Bypass, res.Pass))
}

func bypassStatus(bypass string, p *fill.Pass) string {
	if bypass != "" {
		return "swrproxy; fwd=request; detail=" + bypass
	}
	if p.Reason == "" {
		return "swrproxy; fwd=miss"
	}
	return "swrproxy; fwd=miss; detail=" + p.Reason
}

// passTTL is how long a URL whose response was not cacheable goes straight to the origin
// (hit-for-pass), before a request may be collapsed with others again.
const passTTL = 10 * time.Second

func (h *Handler) serveFilled(c *fiber.Ctx, r *fill.Request, res *fill.Result) error {
	e := res.Entry
	now := time.Now()
	if res.NotStored == "" && r.Rule.RefreshesAhead() {
		if res.Shared {
			h.Tracker.TouchAt(e.Key, nil, e, now) // a collapsed request, served the copy another one filled
		} else {
			h.Tracker.Filled(e.Key, e)
		}
	}
	age := e.CurrentAge(now)
	switch {
	case res.Revalidated:
		h.stats.Miss.Add(1)
		return h.write(c, e, age, "MISS", csRevalidated)
	case res.Shared:
		h.stats.Miss.Add(1)
		return h.write(c, e, age, "MISS", csCollapsed)
	case res.NotStored != "":
		h.stats.Miss.Add(1)
		return h.write(c, e, age, "MISS", "swrproxy; fwd=miss; detail="+res.NotStored)
	}
	h.stats.Miss.Add(1)
	return h.write(c, e, age, "MISS", csStored)
}

func (h *Handler) serveStaleIfError(c *fiber.Ctx, e *tiers.Entry) error {
	h.stats.Stale.Add(1)
	h.stats.StaleIfError.Add(1)
	return h.write(c, e, e.CurrentAge(time.Now()), "STALE", csStaleIfError)
}
