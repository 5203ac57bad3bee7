package refresh

// Collapsing: one origin trip per key in the process (singleflight) and across instances (the
// Redis fetch lock), and the refetch of a variant the first trip did not bring.

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// cookieFlight ends the flight key of requests with Cookie.
const cookieFlight = "\x00cookie"

// withVary returns r asking also for the fields names that r's client sent and r did not
// forward. Forwarding fields (X-Forwarded-*, …) are never taken from a client: swrproxy sets its
// own. A background request (Field nil) is returned as it is.
func withVary(r *fill.Request, names []string) *fill.Request {
	if r.Field == nil {
		return r
	}
	var hdr http.Header
	for _, n := range names {
		// Accept-Encoding is never added back: the fill sends its normalised value, and none
		// means identity (a client's "deflate" or "zstd" copied back would make the origin
		// encode a body stored as the variant for clients that accept no coding).
		if r.Header.Get(n) != "" || httpcache.ForwardingField(n) || n == "Accept-Encoding" {
			continue
		}
		if v := r.Field(n); v != "" {
			if hdr == nil {
				hdr = r.Header.Clone()
			}
			hdr.Set(n, v)
		}
	}
	if hdr == nil {
		return r
	}
	r2 := *r
	r2.Header = hdr
	return &r2
}

// join fetches r collapsed under flightKey with every concurrent join of it (taking the
// cross-instance lock when lock is set). It returns this caller's copy of the flight's result,
// and whether the fetch was r's: this caller led the flight.
func (f *Filler) join(ctx context.Context, flightKey string, r *fill.Request, lock bool) (res *fill.Result, led bool, err error) {
	var leader atomic.Bool // only the caller whose function runs leads; singleflight marks every caller Shared
	ch := f.flight.DoChan(flightKey, func() (any, error) {
		leader.Store(true)
		return f.safeFetch(context.WithoutCancel(ctx), r, lock)
	})
	select {
	case v := <-ch:
		led = leader.Load()
		if v.Err != nil {
			return nil, led, v.Err
		}
		out := *v.Val.(*fill.Result)
		if v.Shared && !led {
			out.Shared = true
			f.stats.SharedLocal.Add(1)
		}
		return &out, led, nil
	case <-ctx.Done():
		return nil, leader.Load(), &upstream.Error{Target: r.URI, Err: ctx.Err()}
	}
}

// lockOrWait takes the cross-instance fetch lock of r.Key, or, while another instance holds it,
// waits for that instance's result to appear in L2. It returns the held lock (nil without Redis),
// or the other instance's result. When the holder finishes without storing what r needs, or dies
// (its lock expires), this instance tries to take the lock itself.
func (f *Filler) lockOrWait(ctx context.Context, r *fill.Request) (*tiers.Lock, *fill.Result, error) {
	ttl := f.LockTTL
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	since := time.Now().Add(-time.Second) // slack for the other instance's clock
	for {
		lock, ok, err := f.Store.TryLock(ctx, r.Key, ttl)
		if err != nil && !errors.Is(err, tiers.ErrL2Unavailable) {
			f.Log.Debug("fetch lock unavailable, fetching without it", "key", r.Key, "err", err)
		}
		if ok {
			// Another instance may have stored the key between our lookup and the lock.
			if res := f.fromL2(ctx, r, since); res != nil {
				lock.Unlock()
				return nil, res, nil
			}
			return lock, nil, nil
		}
		wait := 10 * time.Millisecond
		for {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, nil, &waitError{key: r.Key, err: ctx.Err()}
			case <-t.C:
			}
			wait = min(wait*2, 80*time.Millisecond)
			if res := f.fromL2(ctx, r, since); res != nil {
				f.stats.SharedRemote.Add(1)
				return nil, res, nil
			}
			if !f.Store.Locked(ctx, r.Key) {
				break
			}
		}
	}
}

// fromL2 returns a result for r from L2 when another instance stored a usable variant since r's
// lookup (newer than r.Stale; for a miss, a fresh one or one stored since this instance began
// to wait), refreshing this instance's L1 with it.
func (f *Filler) fromL2(ctx context.Context, r *fill.Request, since time.Time) *fill.Result {
	o, err := f.Store.Reload(ctx, r.Key)
	if err != nil || o == nil {
		return nil
	}
	e := o.Variant(r.Value)
	switch {
	case e == nil, e.Gen < o.Gen, !e.Expires().After(time.Now()):
		return nil
	case r.Stale != nil && !e.Stored.After(r.Stale.Stored):
		return nil
	case r.Stale == nil && e.CurrentAge(time.Now()) >= e.Fresh && !e.Stored.After(since):
		return nil // kept only for revalidation: not an answer to a miss
	}
	return &fill.Result{Entry: e, Shared: true}
}
