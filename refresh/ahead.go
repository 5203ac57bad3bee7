package refresh

// The refresh-ahead jobs of the hot-key tracker: when one is due, what it fetches, and what it
// makes of the result.

import (
	"context"
	"strings"
	"time"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
)

// lead is how long before a copy goes stale its refresh starts: enough for the origin to answer
// (twice the latest refresh, at least 500ms), but at most a quarter of the freshness lifetime so a
// short-lived key is not refreshed much more often than it goes stale.
func (t *Tracker) lead(h *hot) time.Duration {
	return min(h.fresh/4, max(500*time.Millisecond, 2*time.Duration(h.fetch.Load())))
}

// arm schedules the refresh-ahead of h's copy if it was asked for and is still fresh. The job
// holds h's ID, not the entry. h.mu is held.
func (t *Tracker) arm(h *hot, now time.Time) {
	if h.gaveUp || h.creds || h.fresh <= 0 || !h.demand.Load() || now.UnixNano() >= h.staleAt {
		return // already stale: the request path revalidates it (RFC 5861)
	}
	if h.armed {
		return
	}
	due := time.Unix(0, h.staleAt).Add(-t.lead(h))
	if due.Before(now) {
		due = now
	}
	id := h.id
	_, h.armed = t.Pool.schedule(Job{ID: "ahead\x00" + id, Due: due, size: int64(len(id)), Dropped: func() { h.dropped.Store(true) }, Run: func(ctx context.Context) error {
		return t.run(ctx, id)
	}})
}

// run is the refresh-ahead job of the record id.
func (t *Tracker) run(ctx context.Context, id string) error {
	h, ok := t.keys().Load(id)
	if !ok {
		return nil // forgotten meanwhile
	}
	next, gaveUp, err := t.refresh(ctx, h)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed = false
	if next != nil && next.Stored.UnixNano() > h.copy.Load() {
		h.adopt(next) // its refresh waits for a request for it
		h.kept.Store(true)
	} else if gaveUp {
		h.gaveUp = true
	}
	t.arm(h, time.Now()) // a request for the copy came while this job ran
	return err
}

// refresh fetches h's copy again if it was asked for. It returns the copy stored now, or whether
// it gave up on this copy (gone, not storable, or the fetch failed).
func (t *Tracker) refresh(ctx context.Context, h *hot) (next *tiers.Entry, gaveUp bool, err error) {
	if time.Now().Unix()-h.last.Load() > int64(t.Window/time.Second) {
		t.forget(h) // cold: let it expire; the next request starts over
		return nil, false, nil
	}
	if !h.demand.Load() {
		return nil, false, nil // nobody asked for this copy: let it go stale
	}
	key := h.key()
	if h.klen < len(h.id) {
		key = strings.Clone(key) // a variant's record: L1 and a new record would keep its whole ID
	}
	o, _, err := t.Store.Get(ctx, key)
	if err != nil {
		t.Log.Debug("refresh-ahead lookup failed", "key", h.key(), "err", err)
	}
	var cur *tiers.Entry
	if o != nil {
		cur = o.Variant(h.value)
	}
	switch {
	case cur == nil:
		return nil, true, nil // cleared meanwhile: the next request fills it
	case cur.Stored.UnixNano() > h.copy.Load() && cur.Gen >= o.Gen:
		return cur, false, nil // another instance (or a revalidation) renewed it
	case httpcache.KeyedOnCredentials(cur.Vary):
		return nil, true, nil
	}
	start := time.Now()
	e, err := t.Filler.background(ctx, requestFor(cur, o.Gen))
	if err != nil {
		return nil, true, err
	}
	h.fetch.Store(int64(time.Since(start)))
	return e, e == nil, nil
}
