package refresh

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// memOrigin is an origin in memory: no network, so it runs under synctest's fake clock. It
// answers every target with body, Cache-Control cc and Vary vary, and records each request.
type memOrigin struct {
	cc, vary string
	body     []byte

	mu   sync.Mutex
	reqs []*upstream.Request
}

func (o *memOrigin) Do(_ context.Context, r *upstream.Request) (*http.Response, error) {
	o.mu.Lock()
	o.reqs = append(o.reqs, &upstream.Request{Method: r.Method, URI: r.URI, Header: r.Header.Clone()})
	o.mu.Unlock()
	h := http.Header{"Cache-Control": {o.cc}, "Etag": {`"e"`}}
	if o.vary != "" {
		h.Set("Vary", o.vary)
	}
	return &http.Response{StatusCode: 200, Header: h, ContentLength: int64(len(o.body)),
		Body: io.NopCloser(bytes.NewReader(o.body))}, nil
}

// requests returns how many requests the origin got for target ("" = all).
func (o *memOrigin) requests(target string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, r := range o.reqs {
		if target == "" || r.URI == target {
			n++
		}
	}
	return n
}

// rig is a real Store (L1 only), Filler, Pool and Tracker in front of an origin, wired as main
// wires them. stop ends Pool.Run and Tracker.Run.
type rig struct {
	store   *tiers.Store
	filler  *Filler
	pool    *Pool
	tracker *Tracker
	stop    func()
}

// bubble runs f in a synctest bubble (fake clock). The Store of a rig starts otter's cleanup
// goroutines in the bubble, which end once their cache is collected: so f must stop its rig
// before it returns (defer r.stop(), not t.Cleanup), and bubble then collects the garbage and
// lets fake time pass until they have ended.
func bubble(t *testing.T, f func(t *testing.T)) {
	synctest.Test(t, func(t *testing.T) {
		f(t)
		for range 3 {
			runtime.GC()
			time.Sleep(2 * time.Second)
		}
	})
}

func newRig(t *testing.T, origin Fetcher, window time.Duration) *rig {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	s, err := tiers.New(tiers.Options{L1MaxBytes: 64 << 20, L1MaxTTL: time.Hour, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	f := &Filler{Store: s, Origin: origin, MaxObjectBytes: 8 << 20, Timeout: 5 * time.Second, Log: log}
	p := newPool(f, 2, 1000, 5*time.Second, log)
	tr := &Tracker{Window: window, Pool: p, Filler: f, Store: s, Log: log}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(ctx) })
	wg.Go(func() { tr.Run(ctx) })
	return &rig{s, f, p, tr, func() { cancel(); wg.Wait() }}
}

// clientRequest is the request proxy.Handler builds for a client's GET of target with hdr.
func clientRequest(target string, hdr http.Header, stale *tiers.Entry, gen uint64) *fill.Request {
	return &fill.Request{Key: target, URI: target, Header: hdr.Clone(), Stale: stale, Gen: gen,
		Value:         func(name string) string { return httpcache.VaryValue(name, hdr.Get(name)) },
		Authorization: hdr.Get("Authorization") != "", Cookie: hdr.Get("Cookie") != ""}
}

// get serves a client's GET of target as proxy.Handler does: an L1 variant is touched and
// served (HIT, or STALE and revalidated in the background); a miss is filled, and the tracker
// told (Filled). It returns how it was served.
func (r *rig) get(t *testing.T, target string, hdr http.Header) string {
	t.Helper()
	value := func(name string) string { return httpcache.VaryValue(name, hdr.Get(name)) }
	var e *tiers.Entry
	var gen uint64
	if o := r.store.Peek(target); o != nil {
		e, gen = o.Variant(value), o.Gen
	}
	if e != nil {
		r.tracker.TouchAt(target, nil, e, time.Now())
		age := e.CurrentAge(time.Now())
		switch {
		case age < e.Fresh && e.Gen >= gen:
			return "HIT"
		case age < e.Fresh+e.StaleWhileRevalidate:
			r.pool.Enqueue(clientRequest(target, hdr, e, gen))
			return "STALE"
		}
	}
	res, err := r.filler.Fill(context.Background(), clientRequest(target, hdr, e, gen))
	if err != nil {
		t.Fatalf("fill %s: %v", target, err)
	}
	if res.Entry == nil {
		t.Fatalf("fill %s stored nothing (%s)", target, res.NotStored)
	}
	r.tracker.Filled(target, res.Entry)
	return "MISS"
}

// TestTheTrackerIsBoundedInBytes: a flood of distinct keys, each asked for again, fills the
// tracker to MaxBytes and no further; the records stay while their copies are wanted (no churn),
// and once those copies are replaced without anyone asking for them (a refresh nobody used), Run
// drops them, keeps the one clients asked for, and new keys are tracked again.
func TestTheTrackerIsBoundedInBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const max = 64 << 10
		p := newTestPool(1, 100, time.Minute)
		tr := &Tracker{Window: time.Minute, MaxBytes: max, Pool: p, Log: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go tr.Run(ctx)
		entry := func(key string) *tiers.Entry {
			return &tiers.Entry{Key: key, Stored: time.Now(), Fresh: time.Hour}
		}
		hot := entry("/hot")
		tr.TouchAt("/hot", nil, hot, time.Now())
		tr.TouchAt("/hot", nil, hot, time.Now())
		flood := make([]*tiers.Entry, 10_000)
		for i := range flood {
			flood[i] = entry("/flood/" + strconv.Itoa(i))
			tr.TouchAt(flood[i].Key, nil, flood[i], time.Now())
		}
		n, b := tr.Size()
		t.Logf("after 10 000 keys: %d records, %d bytes; %d untracked", n, b, tr.untracked.load())
		if b > max {
			t.Errorf("tracker holds %d bytes, want at most MaxBytes = %d", b, max)
		}
		if tr.untracked.load() == 0 {
			t.Error("untracked = 0 after a flood larger than MaxBytes")
		}
		time.Sleep(1100 * time.Millisecond) // one tick of Run
		synctest.Wait()
		if kept, _ := tr.Size(); kept != n {
			t.Errorf("records after a sweep = %d, want the %d whose copies were asked for", kept, n)
		}
		time.Sleep(time.Second) // the flood's copies are replaced a second later (each Stored is newer)
		for _, e := range flood {
			tr.Filled(e.Key, entry(e.Key)) // a new copy nobody asked for yet
		}
		time.Sleep(1100 * time.Millisecond)
		synctest.Wait()
		if !tr.Hot("/hot") || tr.Hits("/hot") != 2 {
			t.Errorf("the key asked for twice: Hot = %v, Hits = %d; want true, 2", tr.Hot("/hot"), tr.Hits("/hot"))
		}
		if n, _ := tr.Size(); n != 1 {
			t.Errorf("records after Run's sweep = %d, want 1 (only the key whose copy was asked for)", n)
		}
		tr.TouchAt("/new", nil, entry("/new"), time.Now())
		if tr.Hits("/new") != 1 {
			t.Error("a new key is not tracked after the sweep")
		}
	})
}

// TestAFullTrackerWithNothingToDropIsNotSweptEverySecond: when every record's copy was asked
// for (a million polled keys in a tracker that holds fewer), requests for the keys left out keep
// asking for room, but Run walks the records again only when something may have become
// droppable, or after its sharing cadence; then a copy nobody asked for is dropped at the next
// tick.
func TestAFullTrackerWithNothingToDropIsNotSweptEverySecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const max = 64 << 10
		tr := &Tracker{Window: time.Minute, MaxBytes: max, Pool: newTestPool(1, 100, time.Minute), Store: &hotStore{}, Log: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go tr.Run(ctx)
		entry := func(key string) *tiers.Entry {
			return &tiers.Entry{Key: key, Stored: time.Now(), Fresh: time.Hour}
		}
		var kept []*tiers.Entry
		for i := 0; tr.untracked.load() == 0; i++ {
			e := entry("/k/" + strconv.Itoa(i))
			tr.TouchAt(e.Key, nil, e, time.Now())
			kept = append(kept, e)
		}
		time.Sleep(1100 * time.Millisecond)
		synctest.Wait()
		before := tr.roomSweeps.Load()
		for range 20 { // 20 s of requests for keys left out, each second
			tr.TouchAt("/left/out", nil, entry("/left/out"), time.Now())
			time.Sleep(time.Second)
			synctest.Wait()
		}
		if n := tr.roomSweeps.Load() - before; n > 5 {
			t.Errorf("%d sweeps for room in 20 s with nothing to drop, want at most 5 (one per 5 s cadence)", n)
		}
		last := kept[len(kept)-1]
		tr.Filled(last.Key, entry(last.Key)) // a new copy nobody asked for: droppable
		tr.TouchAt("/left/out", nil, entry("/left/out"), time.Now())
		time.Sleep(1100 * time.Millisecond)
		synctest.Wait()
		if tr.Hits(last.Key) != 0 {
			t.Errorf("the record whose copy nobody asked for is still there a tick later")
		}
	})
}

// TestTrackerRecordWeightCoversItsHeap checks that the weight the tracker counts against
// MaxBytes is at least what its records cost on the heap, so MaxBytes is a true bound.
func TestTrackerRecordWeightCoversItsHeap(t *testing.T) {
	for _, tt := range []struct {
		vary bool
		pad  int // bytes added to each key: ids of many sizes, each rounded up by the allocator
	}{{false, 0}, {true, 0}, {false, 1000}, {false, 8170}, {true, 40_000}} {
		t.Run(fmt.Sprintf("vary=%v,key+%d", tt.vary, tt.pad), func(t *testing.T) {
			vary := tt.vary
			n := 20_000
			if tt.pad > 0 {
				n = 2_000
			}
			pad := strings.Repeat("p", tt.pad)
			entries := make([]*tiers.Entry, n)
			for i := range entries {
				entries[i] = &tiers.Entry{Key: "/api/prices?pair=" + strconv.Itoa(i) + pad, Stored: time.Now(), Fresh: time.Hour}
				if vary {
					entries[i].Vary, entries[i].VaryValues = []string{"Accept-Encoding"}, []string{"gzip"}
				}
			}
			tr := &Tracker{Window: time.Minute, MaxBytes: 1 << 30, Pool: newTestPool(1, 10, time.Minute)}
			before := heapInUse()
			for _, e := range entries {
				tr.TouchAt(e.Key, nil, e, time.Now())
			}
			grew := heapInUse() - before
			_, counted := tr.Size()
			t.Logf("%d records: heap grew %d bytes (%d each), counted %d (%d each)", n, grew, grew/int64(n), counted, counted/int64(n))
			if grew > counted {
				t.Errorf("records cost %d bytes of heap, the tracker counted %d", grew, counted)
			}
			runtime.KeepAlive(tr)
			runtime.KeepAlive(entries)
		})
	}
}

// heapInUse returns the bytes of live heap objects, after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestTouchOfAKnownKeyDoesNotAllocate: TouchAt is on the hit path, which must not allocate.
func TestTouchOfAKnownKeyDoesNotAllocate(t *testing.T) {
	tr := &Tracker{Window: time.Minute, Pool: newTestPool(1, 10, time.Minute)}
	e := &tiers.Entry{Key: "/api/prices?pair=ALGO-USD", Stored: time.Now(), Fresh: time.Hour}
	tr.TouchAt(e.Key, nil, e, time.Now()) // demand: the record is made, the refresh-ahead scheduled
	if n := testing.AllocsPerRun(1000, func() { tr.TouchAt(e.Key, nil, e, time.Now()) }); n != 0 {
		t.Errorf("TouchAt of a known key: %v allocations, want 0", n)
	}
}

// TestAKeysRecordHoldsTheEntrysKeyString: a key's record keeps the entry's Key string itself as
// its ID, whatever string the request passed: a hit of that entry then finds its record with a
// comparison of equal pointers, which reads no bytes (with many keys, a load from memory).
func TestAKeysRecordHoldsTheEntrysKeyString(t *testing.T) {
	tr := &Tracker{Window: time.Minute, Pool: newTestPool(1, 10, time.Minute)}
	e := &tiers.Entry{Key: "/api/prices?pair=ALGO-USD", Stored: time.Now(), Fresh: time.Hour}
	tr.TouchAt(strings.Clone(e.Key), nil, e, time.Now())
	h, ok := tr.keys().Load(e.Key)
	if !ok {
		t.Fatal("no record for the key after a request")
	}
	if unsafe.StringData(h.id) != unsafe.StringData(e.Key) {
		t.Error("the record's ID is a copy of the key, not the entry's Key")
	}
}

// TestAHitFindsItsRecordInTheObjectsMemoSlot: a hit of a key without Vary keeps the key's record
// in its object's memo slot and finds it there; a record forgotten meanwhile (gone from the map)
// is not used from the slot: the next hit makes a new one, and the slot holds that.
func TestAHitFindsItsRecordInTheObjectsMemoSlot(t *testing.T) {
	s := newTestStore(t, nil)
	tr := &Tracker{Window: time.Minute, Pool: newTestPool(1, 10, time.Minute), Store: s}
	e := &tiers.Entry{Key: "/k", Status: 200, ETag: `"x"`, Stored: time.Now(), Fresh: time.Hour}
	if err := s.Set(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	o := s.Peek("/k")
	if o == nil || o.Memo() == nil {
		t.Fatal("the stored object has no memo slot")
	}
	tr.TouchAt(e.Key, o, e, time.Now())
	tr.TouchAt(e.Key, o, e, time.Now())
	h := (*hot)(atomic.LoadPointer(o.Memo()))
	if h == nil || h.hits.Load() != 2 || tr.Hits("/k") != 2 {
		t.Fatalf("after two hits: slot holds %p, Hits = %d; want the key's record, 2", h, tr.Hits("/k"))
	}
	tr.keys().Delete("/k") // behind the tracker's back: only the slot leads to h now
	tr.TouchAt(e.Key, o, e, time.Now())
	if h.hits.Load() != 3 {
		t.Fatalf("a hit with the record in the slot only: its hits = %d, want 3 (the hit went elsewhere)", h.hits.Load())
	}
	tr.keys().Store("/k", h)
	if n := testing.AllocsPerRun(100, func() { tr.TouchAt(e.Key, o, e, time.Now()) }); n != 0 {
		t.Errorf("a hit through the slot: %v allocations, want 0", n)
	}

	tr.forget(h) // a sweep forgot it: L1 holds the object, so its slot is emptied
	if p := atomic.LoadPointer(o.Memo()); p != nil {
		t.Errorf("the slot still holds the forgotten record")
	}
	atomic.StorePointer(o.Memo(), unsafe.Pointer(h)) // as a hit racing the sweep could leave it
	tr.TouchAt(e.Key, o, e, time.Now())
	next := (*hot)(atomic.LoadPointer(o.Memo()))
	if next == h || next == nil || next.hits.Load() != 1 || tr.Hits("/k") != 1 {
		t.Errorf("a hit with a forgotten record in the slot: slot %p (forgotten %p), Hits = %d; want a new record with 1", next, h, tr.Hits("/k"))
	}
	if n, _ := tr.Size(); n != 1 {
		t.Errorf("records = %d, want 1", n)
	}
}

// BenchmarkTouch: a hit of a polled key, its record found in its object's memo slot, as the
// handler's hits do.
func BenchmarkTouch(b *testing.B) {
	s := newTestStore(b, nil)
	tr := &Tracker{Window: time.Minute, Pool: newTestPool(1, 10, time.Minute), Store: s}
	e := &tiers.Entry{Key: "/api/prices?pair=ALGO-USD", Status: 200, ETag: `"x"`, Stored: time.Now(), Fresh: time.Hour}
	if err := s.Set(b.Context(), e); err != nil {
		b.Fatal(err)
	}
	o := s.Peek(e.Key)
	tr.TouchAt(e.Key, o, e, time.Now())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tr.TouchAt(e.Key, o, e, time.Now())
		}
	})
}

// A refresh-ahead job that a full queue drops is scheduled again by the next request: a polled
// key does not lose refresh-ahead for good (newcomer review: it stayed off while polled).
