package refresh

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
)

// Tracker keeps hot keys warm while clients keep asking for them. A key (variant) is refreshed
// ahead of going stale only if a client requested it since its copy was stored, and within
// Window: so a polled key never goes stale, a key asked for once costs one origin request, and
// an abandoned key gets at most one refresh nobody used (its last copy), then none.
//
// Touch, on the hit path, costs a map load and a few atomic operations for a known key in its
// steady state; it never writes to Redis and takes no shared lock. Hotness is shared with other
// instances by Run, which marks the keys touched since its last sweep in Redis in one pipeline
// (for invalidation mode auto).
//
// What the tracker keeps is bounded: records of MaxBytes in all (see recordWeight); when full, a
// new key is not tracked (counted in Untracked) until Run drops the records nobody asked for again.
// Its refresh jobs hold the record's ID only and reload the entry from Store when they run.
type Tracker struct {
	Window time.Duration
	// MaxBytes bounds the tracker's records; 0 means DefaultTrackerBytes.
	MaxBytes int64
	Pool     *Pool
	Filler   *Filler
	Store    *tiers.Store
	Log      *slog.Logger

	// Untracked counts the requests for keys the tracker had no room for.
	Untracked atomic.Int64

	keys     sync.Map     // id → *hot
	bytes    atomic.Int64 // sum of the records' weights
	records  atomic.Int64
	pressure atomic.Bool // a key found no room: Run drops the records without demand
}

// DefaultTrackerBytes is a Tracker's MaxBytes when it sets none.
const DefaultTrackerBytes = 16 << 20

// Limits are the bounds of what refresh keeps per key outside L1.
type Limits struct {
	TrackerBytes int64 // Tracker.MaxBytes
	QueueBytes   int64 // Pool.SetMaxBytes
	QueueJobs    int   // NewPool's queue
}

// LimitsFor derives the limits from the L1 size: an eighth of it (at least 1 MiB) each for the
// tracker and the queue, so refresh adds at most a quarter of L1 (plus 2 MiB) to what L1 holds,
// whatever the number of keys. A record weighs about 360 bytes plus its key, so an eighth of L1
// still tracks more hot keys than most deployments have (about 11 000 with 32 MiB, 90 000 with
// the default 256 MiB); the job count follows from the bytes (a job weighs at least 256 bytes)
// and does not bind on its own. Fixed fractions rather than a setting: both bounds scale with
// the one memory setting operators already size.
func LimitsFor(l1MaxBytes int64) Limits {
	b := max(l1MaxBytes/8, 1<<20)
	return Limits{TrackerBytes: b, QueueBytes: b, QueueJobs: int(b / jobOverhead)}
}

// hot is what the tracker knows of one key variant.
type hot struct {
	id     string   // the key, or the key, "\x00" and the variant ID (tiers.Entry.VariantID)
	klen   int      // id[:klen] is the key
	vary   []string // the names the variant varies on; their values are in vals
	vals   []string // substrings of id
	weight int64

	last   atomic.Int64 // Unix seconds of the latest request
	hits   atomic.Int64 // requests served from cache by this instance
	fetch  atomic.Int64 // duration of the latest refresh, in ns
	copy   atomic.Int64 // Stored (Unix ns) of the newest copy seen; written under mu
	demand atomic.Bool  // a request was served copy since this instance first saw it; written under mu
	// dropped: the pool dropped the queued refresh-ahead job (a full queue); the next request
	// schedules it again. Set by the pool, under its lock, so an atomic.
	dropped atomic.Bool

	mu      sync.Mutex
	staleAt int64         // when copy stops being fresh, Unix ns
	fresh   time.Duration // copy's freshness lifetime
	creds   bool          // copy is keyed on credentials: never refreshed in the background
	armed   bool          // a refresh-ahead job for id is queued or running
	gaveUp  bool          // refreshing copy failed or it is gone: the stale path takes over
}

// recordOverhead is a record's weight besides its strings: the struct, its map entry and the
// slice headers (measured with TestTrackerRecordWeightCoversItsHeap).
const recordOverhead = int64(unsafe.Sizeof(hot{})) + 192

func recordWeight(id string, vary []string) int64 {
	n := recordOverhead + int64(len(id))
	for _, v := range vary {
		n += 32 + int64(len(v))
	}
	return n
}

func (h *hot) key() string { return h.id[:h.klen] }

func (h *hot) value(name string) string {
	for i, n := range h.vary {
		if n == name {
			return h.vals[i]
		}
	}
	return ""
}

// adopt makes e the copy h tracks. Nobody has asked for it yet. h.mu is held.
func (h *hot) adopt(e *tiers.Entry) {
	h.copy.Store(e.Stored.UnixNano())
	h.demand.Store(false)
	h.staleAt, h.fresh = e.StaleAt().UnixNano(), e.Fresh
	h.creds = httpcache.KeyedOnCredentials(e.Vary)
	h.gaveUp = false
	h.armed = false // a job still queued for the old copy is found by its ID when arm schedules again
}

// Touch records a request served with e. Safe for concurrent use; does not allocate for a known
// key without Vary.
func (t *Tracker) Touch(key string, e *tiers.Entry) {
	if t == nil || t.Window <= 0 {
		return
	}
	id := key
	if len(e.Vary) > 0 {
		id = key + "\x00" + e.VariantID()
	}
	var h *hot
	if v, ok := t.keys.Load(id); ok {
		h = v.(*hot)
	} else if h = t.track(id, key, e); h == nil {
		return
	}
	now := time.Now()
	if s := now.Unix(); h.last.Load() != s {
		h.last.Store(s)
	}
	h.hits.Add(1)
	if h.demand.Load() && h.copy.Load() == e.Stored.UnixNano() && !h.dropped.Load() {
		return // a polled key between two refreshes
	}
	t.saw(h, e, now)
}

// saw records that a request was served e: the first time, e becomes h's copy; every later
// time it is demand for e, and the refresh-ahead of e is scheduled. The first request served a
// copy does not count: most often it is the request that filled it, which asked before the store.
func (t *Tracker) saw(h *hot, e *tiers.Entry, now time.Time) {
	stored := e.Stored.UnixNano()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dropped.Swap(false) {
		h.armed = false // a full queue dropped its job: schedule it again
	}
	switch cur := h.copy.Load(); {
	case stored > cur:
		h.adopt(e)
	case stored == cur:
		h.demand.Store(true)
		t.arm(h, now)
	}
}

// track adds a record for id, or returns nil when the tracker is full.
func (t *Tracker) track(id, key string, e *tiers.Entry) *hot {
	w := recordWeight(id, e.Vary)
	if t.bytes.Add(w) > t.maxBytes() {
		t.bytes.Add(-w)
		t.Untracked.Add(1)
		t.pressure.Store(true)
		return nil
	}
	id = strings.Clone(id)
	h := &hot{id: id, klen: len(key), weight: w}
	if len(e.Vary) > 0 {
		h.vary, h.vals = make([]string, len(e.Vary)), make([]string, len(e.Vary))
		at := len(key) + 1
		for i, name := range e.Vary {
			h.vary[i] = strings.Clone(name)
			h.vals[i] = id[at : at+len(e.VaryValues[i])]
			at += len(e.VaryValues[i]) + 1
		}
	}
	if v, loaded := t.keys.LoadOrStore(id, h); loaded {
		t.bytes.Add(-w)
		return v.(*hot)
	}
	t.records.Add(1)
	return h
}

func (t *Tracker) maxBytes() int64 {
	if t.MaxBytes > 0 {
		return t.MaxBytes
	}
	return DefaultTrackerBytes
}

// forget drops h from the tracker; a job still queued for it finds nothing and does nothing.
func (t *Tracker) forget(h *hot) {
	if t.keys.CompareAndDelete(h.id, h) {
		t.bytes.Add(-h.weight)
		t.records.Add(-1)
	}
}

// Size returns the number of records and their weight in bytes.
func (t *Tracker) Size() (records int, bytes int64) {
	return int(t.records.Load()), t.bytes.Load()
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
		if h := v.(*hot); h.key() == key {
			f(h)
		}
		return true
	})
}

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
	v, ok := t.keys.Load(id)
	if !ok {
		return nil // forgotten meanwhile
	}
	h := v.(*hot)
	next, gaveUp, err := t.refresh(ctx, h)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed = false
	if next != nil && next.Stored.UnixNano() > h.copy.Load() {
		h.adopt(next) // its refresh waits for a request for it
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
	o, _, err := t.Store.Get(ctx, h.key())
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
	e, err := t.Filler.background(ctx, RequestFor(cur, o.Gen))
	if err != nil {
		return nil, true, err
	}
	h.fetch.Store(int64(time.Since(start)))
	return e, e == nil, nil
}

// Run shares this instance's hot keys through Redis every few seconds, forgets keys that went
// cold and, when the tracker is full, the records nobody asked for since their copy was stored.
// It blocks until ctx is cancelled and returns nil.
func (t *Tracker) Run(ctx context.Context) error {
	if t.Window <= 0 {
		<-ctx.Done()
		return nil
	}
	every := min(t.Window/4, 5*time.Second)
	tick := time.NewTicker(min(every, time.Second))
	defer tick.Stop()
	since, shared := time.Now().Unix(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if t.pressure.Swap(false) || t.bytes.Load() > t.maxBytes()/8*7 {
			t.keys.Range(func(_, v any) bool {
				if h := v.(*hot); !h.demand.Load() {
					t.forget(h)
				}
				return true
			})
		}
		now := time.Now()
		if now.Sub(shared) < every {
			continue
		}
		shared = now
		cold := now.Add(-t.Window).Unix()
		var touched []string
		t.keys.Range(func(_, v any) bool {
			h := v.(*hot)
			switch last := h.last.Load(); {
			case last >= since:
				touched = append(touched, h.key())
			case last < cold:
				t.forget(h) // a refresh job still queued for it finds nothing
			}
			return true
		})
		since = now.Unix()
		if err := t.Store.MarkHot(ctx, touched, t.Window); err != nil {
			t.Log.Debug("sharing hot keys failed", "err", err)
		}
	}
}

// varyValue returns the Value function of a request whose fields named names have values.
func varyValue(names, values []string) func(string) string {
	return func(name string) string {
		for i, n := range names {
			if n == name {
				return values[i]
			}
		}
		return ""
	}
}

// RequestFor builds the background request that refreshes entry e (stored under object
// generation gen): its target, the request fields of the fill that e keeps for replay, the values
// of the headers it varies on, and e's validators. It never sets a credential field (Cookie,
// Authorization, Proxy-Authorization): a variant keyed on one (httpcache.KeyedOnCredentials)
// cannot be asked for again, so callers do not refresh it; were they to, the request is the
// anonymous one (Value "" for credential fields, no Stale), which fills the anonymous variant.
// The request refers to e only through Stale.
func RequestFor(e *tiers.Entry, gen uint64) *fill.Request {
	host, uri := httpcache.SplitKey(e.Key)
	hdr := http.Header{}
	for _, f := range e.ReqHeader {
		if !httpcache.IsCredential(f.Name) {
			hdr.Add(f.Name, f.Value)
		}
	}
	names, values := e.Vary, e.VaryValues
	creds := httpcache.KeyedOnCredentials(names)
	if creds {
		values = make([]string, len(names))
		for i, name := range names {
			if !httpcache.IsCredential(name) {
				values[i] = e.VaryValues[i]
			}
		}
	}
	for i, name := range names {
		if v := values[i]; v != "" {
			hdr.Set(name, v)
		}
	}
	if host != "" {
		hdr.Set("X-Forwarded-Host", host)
	}
	r := &fill.Request{Key: e.Key, URI: uri, Header: hdr, Value: varyValue(names, values), Stale: e, Gen: gen}
	if creds {
		r.Stale = nil
	}
	return r
}
