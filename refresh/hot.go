package refresh

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
)

// Tracker keeps hot keys warm. A key (variant) that clients asked for within Window is hot:
// shortly before its entry goes stale, a pool job fetches it again (conditionally), so polling
// clients keep getting fresh hits and never wait on the origin. A key nobody asked for within
// Window is not refreshed again and is forgotten.
//
// Touch, on the hit path, costs a map load and two atomic operations; it never writes to Redis
// and takes no lock. Hotness is shared with other instances by Run, which marks the keys touched
// since its last sweep in Redis in one pipeline (for invalidation mode auto).
type Tracker struct {
	Window time.Duration
	Pool   *Pool
	Filler *Filler
	Store  *tiers.Store
	Log    *slog.Logger

	keys sync.Map // id → *hot
}

// hot is what the tracker knows of one key variant.
type hot struct {
	id, key   string
	last      atomic.Int64                // Unix seconds of the latest request
	hits      atomic.Int64                // requests served from cache by this instance
	scheduled atomic.Pointer[tiers.Entry] // the entry whose refresh is queued
	fetch     atomic.Int64                // duration of the latest refresh, in ns
}

// Touch records a request served with e. It schedules e's refresh-ahead the first time it sees e.
// Safe for concurrent use; does not allocate for a known key without Vary.
func (t *Tracker) Touch(key string, e *tiers.Entry) {
	if t == nil || t.Window <= 0 {
		return
	}
	id := key
	if len(e.Vary) > 0 {
		id = key + "\x00" + strings.Join(e.VaryValues, "\x00")
	}
	v, ok := t.keys.Load(id)
	if !ok {
		v, _ = t.keys.LoadOrStore(strings.Clone(id), &hot{id: strings.Clone(id), key: strings.Clone(key)})
	}
	h := v.(*hot)
	if now := time.Now().Unix(); h.last.Load() != now {
		h.last.Store(now)
	}
	h.hits.Add(1)
	if old := h.scheduled.Load(); old != e && (old == nil || e.Stored.After(old.Stored)) && h.scheduled.CompareAndSwap(old, e) {
		t.schedule(h, e)
	}
}

// Hot reports whether this instance served key within the window.
func (t *Tracker) Hot(key string) bool {
	if t == nil || t.Window <= 0 {
		return false
	}
	cutoff := time.Now().Add(-t.Window).Unix()
	found := false
	t.variants(key, func(h *hot) {
		found = found || h.last.Load() >= cutoff
	})
	return found
}

// Hits returns how many requests for key this instance served from cache.
func (t *Tracker) Hits(key string) int64 {
	var n int64
	t.variants(key, func(h *hot) { n += h.hits.Load() })
	return n
}

// variants calls f for what the tracker knows of key: one map load for a key without Vary
// (its id is the key), a scan only for a key tracked per variant.
func (t *Tracker) variants(key string, f func(*hot)) {
	if v, ok := t.keys.Load(key); ok {
		f(v.(*hot))
		return
	}
	t.keys.Range(func(_, v any) bool {
		if h := v.(*hot); h.key == key {
			f(h)
		}
		return true
	})
}

// lead is how long before an entry goes stale its refresh starts: enough for the origin to answer
// (twice the latest refresh, at least 500ms), but at most a quarter of the freshness lifetime so a
// short-lived key is not refreshed much more often than it goes stale.
func (t *Tracker) lead(h *hot, e *tiers.Entry) time.Duration {
	return min(e.Fresh/4, max(500*time.Millisecond, 2*time.Duration(h.fetch.Load())))
}

func (t *Tracker) schedule(h *hot, e *tiers.Entry) {
	if e.Fresh <= 0 {
		return // must be revalidated on every use: nothing to refresh ahead of
	}
	due := e.StaleAt().Add(-t.lead(h, e))
	t.Pool.Schedule(Job{ID: "ahead\x00" + h.id, Due: due, Run: func(ctx context.Context) error {
		return t.refresh(ctx, h, e)
	}})
}

// refresh is the refresh-ahead job for h, scheduled for entry e.
func (t *Tracker) refresh(ctx context.Context, h *hot, e *tiers.Entry) error {
	if time.Now().Unix()-h.last.Load() > int64(t.Window/time.Second) {
		// Cold: let it expire. The next request starts over.
		h.scheduled.CompareAndSwap(e, nil)
		t.keys.CompareAndDelete(h.id, h)
		return nil
	}
	o, _, err := t.Store.Get(ctx, h.key)
	if err != nil {
		t.Log.Debug("refresh-ahead lookup failed", "key", h.key, "err", err)
	}
	var cur *tiers.Entry
	if o != nil {
		cur = o.Variant(entryValue(e))
	}
	if cur == nil {
		// Cleared meanwhile: the next request fills it and schedules anew.
		h.scheduled.CompareAndSwap(e, nil)
		return nil
	}
	if cur != e && cur.Gen >= o.Gen && cur.StaleAt().Sub(time.Now()) > t.lead(h, cur) {
		// Another instance (or a revalidation) already renewed it: just schedule the next round.
		t.reschedule(h, e, cur)
		return nil
	}
	start := time.Now()
	req := RequestFor(cur, o.Gen)
	res, err := t.Filler.Fill(ctx, req)
	if err != nil {
		h.scheduled.CompareAndSwap(e, nil)
		return err
	}
	h.fetch.Store(int64(time.Since(start)))
	if res.Entry != nil {
		t.reschedule(h, e, res.Entry)
	} else {
		h.scheduled.CompareAndSwap(e, nil)
	}
	if res.Pass != nil {
		res.Pass.Release(req)
	}
	return nil
}

func (t *Tracker) reschedule(h *hot, old, next *tiers.Entry) {
	if h.scheduled.CompareAndSwap(old, next) {
		t.schedule(h, next)
	}
}

// Run shares this instance's hot keys through Redis every few seconds and forgets keys that went
// cold. It blocks until ctx is cancelled and returns nil.
func (t *Tracker) Run(ctx context.Context) error {
	if t.Window <= 0 {
		<-ctx.Done()
		return nil
	}
	every := min(t.Window/4, 5*time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	since := time.Now().Unix()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now := time.Now()
		cold := now.Add(-t.Window).Unix()
		var touched []string
		t.keys.Range(func(k, v any) bool {
			h := v.(*hot)
			switch last := h.last.Load(); {
			case last >= since:
				touched = append(touched, h.key)
			case last < cold:
				// Cold. A refresh job still queued for it finds it cold too and does nothing.
				t.keys.CompareAndDelete(k, h)
			}
			return true
		})
		since = now.Unix()
		if err := t.Store.MarkHot(ctx, touched, t.Window); err != nil {
			t.Log.Debug("sharing hot keys failed", "err", err)
		}
	}
}

// RequestFor builds the background request that refreshes entry e (stored under object
// generation gen): its target, the request fields of the fill that e keeps for replay, the values
// of the headers it varies on, and e's validators.
func RequestFor(e *tiers.Entry, gen uint64) *tiers.Request {
	host, uri := httpcache.SplitKey(e.Key)
	hdr := http.Header{}
	for _, f := range e.ReqHeader {
		hdr.Add(f.Name, f.Value)
	}
	for i, name := range e.Vary {
		if v := e.VaryValues[i]; v != "" {
			hdr.Set(name, v)
		}
	}
	if host != "" {
		hdr.Set("X-Forwarded-Host", host)
	}
	return &tiers.Request{Key: e.Key, URI: uri, Header: hdr, Value: entryValue(e), Stale: e, Gen: gen}
}

// entryValue returns the request-header values of the request that filled e (for Vary).
func entryValue(e *tiers.Entry) func(string) string {
	return func(name string) string {
		for i, n := range e.Vary {
			if n == name {
				return e.VaryValues[i]
			}
		}
		return ""
	}
}
