package refresh

import (
	"context"
	"time"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
)

// The jobs the request path and the invalidations queue: revalidations of stale variants and
// refreshes ordered by invalidations. They hold keys, never entries.

// variantRef names a stored variant without holding it: its key, the vary names and values that
// select it, and when it was stored. A pool whose filler has no Store (tests' fill functions)
// keeps the entry itself instead.
type variantRef struct {
	key          string
	vary, values []string
	stored       time.Time
	entry        *tiers.Entry // only without a store
}

func (p *Pool) refTo(e *tiers.Entry) *variantRef {
	ref := &variantRef{key: e.Key, vary: e.Vary, values: e.VaryValues, stored: e.Stored}
	if p.store == nil {
		ref.entry = e
	}
	return ref
}

// size is what ref holds, in bytes.
func (ref *variantRef) size() int64 {
	n := int64(96 + len(ref.key))
	for i := range ref.vary {
		n += int64(32 + len(ref.vary[i]) + len(ref.values[i]))
	}
	return n
}

// resolve returns the variant ref names as stored now, and its object's generation; nil when it
// is gone (cleared, expired or evicted everywhere): then there is nothing left to revalidate.
func (p *Pool) resolve(ctx context.Context, ref *variantRef) (*tiers.Entry, uint64) {
	if p.store == nil {
		return ref.entry, 0
	}
	o, _, err := p.store.Get(ctx, ref.key)
	if err != nil {
		p.log.Debug("background refresh lookup failed", "key", ref.key, "err", err)
	}
	if o == nil {
		return nil, 0
	}
	return o.Variant(varyValue(ref.vary, ref.values)), o.Gen
}

// renewedSince reports whether e is a copy stored after ref's, fresh and not invalidated under
// gen: another fetch already did what a job for ref would do.
func renewedSince(e *tiers.Entry, ref *variantRef, gen uint64) bool {
	return e.Stored.After(ref.stored) && e.Gen >= gen && e.CurrentAge(time.Now()) < e.Fresh
}

// Enqueue schedules a revalidation of r's stale entry, due now (see Schedule). It takes r over:
// the caller must not use it afterwards. The queued job keeps r's key and fields, not the stale
// entry; when it runs it looks the entry up again, and does nothing if it is gone or was renewed
// meanwhile.
func (p *Pool) Enqueue(r *fill.Request) bool {
	id := r.Key
	if r.Stale != nil && len(r.Stale.VaryValues) > 0 {
		id += "\x00" + r.Stale.VariantID() // one revalidation per variant
	}
	// Keep only what the revalidation needs: the forwarded fields and the values of the fields
	// the variant varies on. The request's Value and Field read a copy of every field the client
	// sent (up to the 24 KiB header limit, cookies included), which a queued job must not hold.
	var vals map[string]string
	if r.Stale != nil && r.Value != nil {
		vals = make(map[string]string, len(r.Stale.Vary))
		for _, n := range r.Stale.Vary {
			vals[n] = r.Value(n)
		}
	}
	r.Value, r.Field = func(name string) string { return vals[name] }, nil
	var ref *variantRef
	size := requestSize(r) + int64(48+16*len(vals)) // the closure and its map
	for n, v := range vals {
		size += int64(len(n) + len(v) + 32)
	}
	if r.Stale != nil {
		ref = p.refTo(r.Stale)
		size += ref.size()
		r.Stale = nil
	}
	return p.Schedule(Job{ID: id, Due: time.Now(), size: size, Run: func(ctx context.Context) error {
		if ref != nil {
			e, gen := p.resolve(ctx, ref)
			if e == nil || renewedSince(e, ref, max(gen, r.Gen)) {
				return nil
			}
			r.Stale, r.Gen = e, max(r.Gen, gen)
		}
		_, err := p.fill.background(ctx, r)
		return err
	}})
}

// requestSize is what a queued request holds, in bytes: its target and forwarded fields (Enqueue
// drops what reads the client's other fields).
func requestSize(r *fill.Request) int64 {
	n := int64(312 + len(r.Key) + len(r.URI)) // the struct (its policy fields included) and its closures
	for _, name := range r.Replay {
		n += int64(len(name) + 16)
	}
	for name, vs := range r.Header {
		for _, v := range vs {
			n += int64(len(name) + len(v) + 64) // the strings, the map entry and the value slice
		}
	}
	return n
}

// Refresh queues a fetch of the variant e under object generation gen, due now: the work of an
// invalidation in mode refresh. It reports false when the queue refused it, and for a variant keyed
// on credentials (Vary: Cookie, Authorization): no background request may ask for it again. The
// job keeps e's key and vary values, not e; when it runs it fetches the variant as then stored,
// unless it is gone or was renewed after the invalidation.
func (p *Pool) Refresh(e *tiers.Entry, gen uint64) bool {
	if httpcache.KeyedOnCredentials(e.Vary) {
		return false
	}
	ref := p.refTo(e)
	id := "refresh\x00" + e.Key + "\x00" + e.VariantID()
	return p.Schedule(Job{ID: id, Due: time.Now(), size: ref.size(), Run: func(ctx context.Context) error {
		cur, curGen := p.resolve(ctx, ref)
		if cur == nil || renewedSince(cur, ref, gen) || httpcache.KeyedOnCredentials(cur.Vary) {
			return nil
		}
		_, err := p.fill.background(ctx, requestFor(cur, max(gen, curGen)))
		return err
	}})
}
