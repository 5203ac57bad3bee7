package refresh

import (
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/puzpuzpuz/xsync/v4"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
)

// Tracker keeps hot keys warm while clients keep asking for them. A key (variant) is refreshed
// ahead of going stale only if a client requested it since its copy was stored, and within
// Window: so a polled key never goes stale, a key asked for once costs one origin request, and
// an abandoned key gets at most one refresh nobody used (its last copy), then none.
//
// TouchAt, on the hit path, costs a few atomic operations for a known key in its steady state (a
// key without Vary finds its record in its L1 object's memo slot, tiers.Object.Memo; a variant
// with a map load); it never writes to Redis and takes no shared lock. One Tracker per Store:
// the slots are its own. Hotness is shared with other instances by Run, which marks the keys
// touched since its last sweep in Redis (tiers.Store.MarkHot: in batches; for invalidation mode
// auto).
//
// What the tracker keeps is bounded: records of MaxBytes in all (see recordWeight); when full, a
// new key is not tracked (counted as untracked in Stats) until Run drops the records nobody
// asked for again. Its refresh jobs hold the record's ID only and reload the entry from Store
// when they run.
type Tracker struct {
	Window time.Duration
	// MaxBytes bounds the tracker's records; 0 means defaultTrackerBytes.
	MaxBytes int64
	Pool     *Pool
	Filler   *Filler
	Store    Store
	Log      *slog.Logger

	// untracked counts the requests for keys the tracker had no room for: striped, as when the
	// tracker is full every hit on an untracked key counts one.
	untracked stripedCounter

	keysOnce sync.Once
	keyMap   *xsync.Map[string, *hot] // id → record: use keys()
	bytes    atomic.Int64             // sum of the records' weights
	records  atomic.Int64
	pressure atomic.Bool // a key found no room: Run drops the records without demand
	// droppable counts the changes that may give Run's sweep for room something to drop: a
	// record adopting a copy nobody asked for yet (Filled), a fill remembered. (A new record is
	// asked for at once; a refreshed one is kept warm.)
	droppable  atomic.Uint64
	roomSweeps atomic.Int64 // sweeps for room Run made (read by tests)

	filled filledKeys // keys filled without a record: hot, not refreshed ahead
}

// defaultTrackerBytes is a Tracker's MaxBytes when it sets none.
const defaultTrackerBytes = 16 << 20

// hot is what the tracker knows of one key variant.
type hot struct {
	id     string   // the key, or the key, "\x00" and the variant ID (tiers.Entry.VariantID)
	klen   int      // id[:klen] is the key
	vary   []string // the names the variant varies on; their values are in vals
	vals   []string // substrings of id
	weight int64

	last   atomic.Int64 // Unix seconds of the latest request
	hits   atomic.Int64 // requests served a stored copy by this instance (hits, collapsed requests)
	fetch  atomic.Int64 // duration of the latest refresh, in ns
	copy   atomic.Int64 // Stored (Unix ns) of the newest copy seen; written under mu
	demand atomic.Bool  // a request was served copy since h adopted it; written under mu
	// kept: h's previous copy was asked for and refreshed ahead, so the key is being kept warm;
	// a full tracker's sweep spares it until its window passes. Written under mu.
	kept atomic.Bool
	// dropped: the pool dropped the queued refresh-ahead job (a full queue); the next request
	// schedules it again. Set by the pool, under its lock, so an atomic.
	dropped atomic.Bool
	// gone: forgotten, out of the map; an object's memo slot may still hold h a while, and a
	// hit that finds it there looks in the map instead.
	gone atomic.Bool

	mu      sync.Mutex
	staleAt int64         // when copy stops being fresh, Unix ns
	fresh   time.Duration // copy's freshness lifetime
	creds   bool          // copy is keyed on credentials: never refreshed in the background
	armed   bool          // a refresh-ahead job for id is queued or running
	gaveUp  bool          // refreshing copy failed or it is gone: the stale path takes over
}

// recordOverhead is a record's weight besides its strings: the struct, its map entry and the
// slice headers (measured with TestTrackerRecordWeightCoversItsHeap).
const recordOverhead = int64(unsafe.Sizeof(hot{})) + 136

func recordWeight(id string, vary []string) int64 {
	n := recordOverhead + cloneWeight(len(id))
	for _, v := range vary {
		n += 32 + cloneWeight(len(v))
	}
	return n
}

// cloneWeight is at least what a copy of n bytes costs on the heap: the allocator rounds a
// small object up to its size class (by at most an eighth, and 16 bytes below 128), a large one
// to whole 8 KiB pages.
func cloneWeight(n int) int64 {
	if n > 32<<10 {
		return int64(n) + 8<<10
	}
	return int64(n) + int64(n)/8 + 16
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

// TouchAt records a request served e, a stored copy of o (nil if the caller has none): demand
// for e, which schedules its refresh-ahead. A hit is one; so is a request collapsed onto
// another's fill (several clients asking at once is what a popular key looks like). The request
// that filled e is not demand (it asked before the copy was stored): it calls Filled; nor is
// the first request an instance serves from L2 (PromotedAt). So a key asked for once has no
// record at all. now is when the request arrived (the hit path has read the clock already).
// Safe for concurrent use; does not allocate for a known key without Vary. Such a key's record
// is kept in o's memo slot (tiers.Object.Memo) too, and found there without the map.
func (t *Tracker) TouchAt(key string, o *tiers.Object, e *tiers.Entry, now time.Time) {
	if t == nil || t.Window <= 0 {
		return
	}
	var slot *unsafe.Pointer
	if o != nil && len(e.Vary) == 0 {
		slot = o.Memo()
	}
	var h *hot
	if slot != nil {
		// The slot is only ever given a record of o's key, whose ID is that key: the comparison
		// (of equal pointers, which reads no bytes) is a check against a caller passing the
		// object of another key.
		if h = (*hot)(atomic.LoadPointer(slot)); h != nil && (h.gone.Load() || h.id != key) {
			h = nil
		}
	}
	if h == nil {
		id := recordID(key, e)
		if v, ok := t.keys().Load(id); ok {
			h = v
		} else if h = t.track(id, key, e); h == nil {
			return
		}
		if slot != nil {
			atomic.StorePointer(slot, unsafe.Pointer(h))
		}
	}
	if s := now.Unix(); h.last.Load() != s {
		h.last.Store(s)
	}
	h.hits.Add(1)
	if h.demand.Load() && h.copy.Load() == e.Stored.UnixNano() && !h.dropped.Load() {
		return // a polled key between two refreshes
	}
	t.saw(h, e, now)
}

// PromotedAt records a request served e from L2, a copy another instance of the fleet filled
// (or one this instance's L1 no longer held), now promoted into L1: demand for a key this
// instance tracks, or filled or promoted within the window (asked for again, from L1 or L2:
// L1 keeps a copy for SWR_L1_MAX_TTL at most, so a key asked for less often comes from L2 each
// time); else, as for a fill, the key is remembered as hot at a few bytes. (A record for every
// key a fleet's instance was asked for once cost it a few hundred bytes per object beside it.)
// Safe for concurrent use; an untracked key takes the memo's lock (next to an L2 read).
func (t *Tracker) PromotedAt(key string, e *tiers.Entry, now time.Time) {
	if t == nil || t.Window <= 0 {
		return
	}
	if _, ok := t.keys().Load(recordID(key, e)); ok || t.filledSince(key, now.Add(-t.Window).Unix()) {
		t.TouchAt(key, nil, e, now)
		return
	}
	t.fill(key, now.Unix())
}

// recordID names the record of e, a variant of key: the key itself for a response that varies
// on nothing.
func recordID(key string, e *tiers.Entry) string {
	if len(e.Vary) > 0 {
		return key + "\x00" + e.VariantID()
	}
	return key
}

// Filled records that the request that filled (or revalidated) e was answered with it. It is
// not demand for e, and creates no record: a key is tracked once a client asks for it again.
// It makes the key hot (Hot, the fleet's hot set), remembered at a few bytes per key (filled.go).
// A known key's record adopts e, which waits for a request to be refreshed ahead.
func (t *Tracker) Filled(key string, e *tiers.Entry) {
	if t == nil || t.Window <= 0 {
		return
	}
	id := recordID(key, e)
	h, ok := t.keys().Load(id)
	if !ok {
		t.fill(key, time.Now().Unix()) // hot, but no record until asked for again
		return
	}
	h.last.Store(time.Now().Unix())
	h.mu.Lock()
	defer h.mu.Unlock()
	if e.Stored.UnixNano() > h.copy.Load() {
		h.adopt(e)
		t.droppable.Add(1)
	}
}

// saw records that a request was served e from cache: e becomes h's copy if it is newer, and
// the request is demand for it, so e's refresh-ahead is scheduled.
func (t *Tracker) saw(h *hot, e *tiers.Entry, now time.Time) {
	stored := e.Stored.UnixNano()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dropped.Swap(false) {
		h.armed = false // a full queue dropped its job: schedule it again
	}
	cur := h.copy.Load()
	if stored < cur {
		return // an older copy (another instance's L1, a request that began earlier)
	}
	if stored > cur {
		h.adopt(e)
	}
	h.demand.Store(true)
	t.arm(h, now)
}

// track adds a record for id, or returns nil when the tracker is full.
func (t *Tracker) track(id, key string, e *tiers.Entry) *hot {
	w := recordWeight(id, e.Vary)
	// A full tracker is checked with a load first: when it stays full, requests for untracked
	// keys read the shared counters and write none but the untracked count.
	if t.bytes.Load()+w > t.maxBytes() {
		t.noRoom(id)
		return nil
	}
	if t.bytes.Add(w) > t.maxBytes() {
		t.bytes.Add(-w)
		t.noRoom(id)
		return nil
	}
	if len(id) != len(key) {
		id = strings.Clone(id) // a variant's ID, built for this call
	} else {
		// A key's own ID is the entry's Key (immutable, and a copy would be as long), whatever
		// string the caller passed: every hit of the entry passes that string, and a map lookup
		// comparing two strings with the same bytes at the same address does not read them
		// (with many keys, a load from memory).
		id = e.Key
	}
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
	if v, loaded := t.keys().LoadOrStore(id, h); loaded {
		t.bytes.Add(-w)
		return v
	}
	t.records.Add(1)
	return h
}

// noRoom counts a request for a key the tracker had no room for, and asks Run to make room.
func (t *Tracker) noRoom(id string) {
	t.untracked.add(id)
	if !t.pressure.Load() {
		t.pressure.Store(true)
	}
}

// keys is the map of the records, made on first use (a Tracker's zero value is ready to use).
// A concurrent hash map whose loads take no lock and touch a bucket or two, not a trie walk: in
// a side-by-side micro-benchmark when it was chosen, a lookup took 17 ns at 10 000 keys and 290 ns
// at 1 000 000 where sync.Map took 45 and 588 (BenchmarkL1HitManyKeys measures the whole hit).
func (t *Tracker) keys() *xsync.Map[string, *hot] {
	t.keysOnce.Do(func() { t.keyMap = xsync.NewMap[string, *hot]() })
	return t.keyMap
}

func (t *Tracker) maxBytes() int64 {
	if t.MaxBytes > 0 {
		return t.MaxBytes
	}
	return defaultTrackerBytes
}

// forget drops h from the tracker; a job still queued for it finds nothing and does nothing.
// h is marked gone and, if the key's L1 object holds h in its memo slot, the slot is emptied, so
// the object does not keep h alive. A hit racing forget may store h there again; the next hit
// of the key sees h gone and replaces it.
func (t *Tracker) forget(h *hot) {
	deleted := false
	t.keys().Compute(h.id, func(cur *hot, loaded bool) (*hot, xsync.ComputeOp) {
		if loaded && cur == h {
			deleted = true
			return nil, xsync.DeleteOp
		}
		return cur, xsync.CancelOp
	})
	if !deleted {
		return
	}
	h.gone.Store(true)
	t.bytes.Add(-h.weight)
	t.records.Add(-1)
	if l1, ok := t.Store.(quietPeeker); ok && h.klen == len(h.id) {
		if o := l1.PeekQuietly(h.id); o != nil {
			if slot := o.Memo(); slot != nil {
				atomic.CompareAndSwapPointer(slot, unsafe.Pointer(h), nil)
			}
		}
	}
}

// quietPeeker is the Store that holds the objects whose memo slots TouchAt fills: a test's
// Store without it leaves forgotten records in slots until the next hit.
type quietPeeker interface {
	PeekQuietly(key string) *tiers.Object
}

var _ quietPeeker = (*tiers.Store)(nil)

// Size returns the number of records and their weight in bytes.
func (t *Tracker) Size() (records int, bytes int64) {
	return int(t.records.Load()), t.bytes.Load()
}

// Hot reports whether this instance served key within the window (from cache or by a fill).
func (t *Tracker) Hot(key string) bool {
	if t == nil || t.Window <= 0 {
		return false
	}
	cutoff := time.Now().Add(-t.Window).Unix()
	found := false
	t.variants(key, func(h *hot) {
		found = found || h.last.Load() >= cutoff
	})
	return found || t.filledSince(key, cutoff)
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
	if h, ok := t.keys().Load(key); ok {
		f(h)
		return
	}
	t.keys().Range(func(_ string, h *hot) bool {
		if h.key() == key {
			f(h)
		}
		return true
	})
}
