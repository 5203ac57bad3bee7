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
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/internal/testenv"
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
	p := NewPool(f, 2, 1000, 5*time.Second, log)
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
// served (HIT, or STALE and revalidated in the background); a miss is filled, and the filled
// entry touched. It returns how it was served.
func (r *rig) get(t *testing.T, target string, hdr http.Header) string {
	t.Helper()
	value := func(name string) string { return httpcache.VaryValue(name, hdr.Get(name)) }
	var e *tiers.Entry
	var gen uint64
	if o := r.store.Peek(target); o != nil {
		e, gen = o.Variant(value), o.Gen
	}
	if e != nil {
		r.tracker.Touch(target, e)
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
	r.tracker.Touch(target, res.Entry)
	return "MISS"
}

// TestAKeyRequestedOnceIsNeverRefreshedAhead is the first figure of issue 7 point 6: 20 keys with
// max-age=2, each requested once, made 280 origin requests in 20 s. Nobody asked for them after
// they were stored, so the origin sees the 20 fills and nothing else.
func TestAKeyRequestedOnceIsNeverRefreshedAhead(t *testing.T) {
	bubble(t, func(t *testing.T) {
		o := &memOrigin{cc: "max-age=2", body: []byte("x")}
		r := newRig(t, o, 5*time.Minute)
		defer r.stop()
		for i := range 20 {
			if got := r.get(t, "/once/"+strconv.Itoa(i), http.Header{}); got != "MISS" {
				t.Fatalf("first request served %s, want MISS", got)
			}
		}
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if n := o.requests(""); n != 20 {
			t.Errorf("origin requests in 20s after 20 single requests = %d, want 20 (no refresh without demand)", n)
		}
		if n := r.pool.Len(); n != 0 {
			t.Errorf("queued jobs = %d, want 0", n)
		}
	})
}

// TestAPolledKeyStaysFreshAndAnAbandonedOneStops: a key polled every 200ms is refreshed ahead, so
// every poll is a HIT; once polling stops, the origin sees at most one more request (the refresh
// of the last copy a client was served, which nobody uses), then none.
func TestAPolledKeyStaysFreshAndAnAbandonedOneStops(t *testing.T) {
	bubble(t, func(t *testing.T) {
		o := &memOrigin{cc: "max-age=2", body: []byte("x")}
		r := newRig(t, o, 5*time.Minute)
		defer r.stop()
		r.get(t, "/polled", http.Header{})
		for range 100 { // 20s
			time.Sleep(200 * time.Millisecond)
			synctest.Wait()
			if got := r.get(t, "/polled", http.Header{}); got != "HIT" {
				t.Fatalf("poll at %v served %s, want HIT", time.Now().Format("05.000"), got)
			}
		}
		// One refresh per 1.5s (2s of freshness less the 500ms lead), plus the fill.
		polled := o.requests("")
		if polled < 12 || polled > 16 {
			t.Errorf("origin requests over 20s of polling = %d, want about 14", polled)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if extra := o.requests("") - polled; extra > 1 {
			t.Errorf("origin requests in the minute after polling stopped = %d, want at most 1", extra)
		}
	})
}

// TestARequestLateInTheLeadStillRefreshesAhead: demand that arrives after the refresh-ahead
// point of a copy (but before it goes stale) schedules the refresh at once.
func TestARequestLateInTheLeadStillRefreshesAhead(t *testing.T) {
	bubble(t, func(t *testing.T) {
		o := &memOrigin{cc: "max-age=2", body: []byte("x")}
		r := newRig(t, o, 5*time.Minute)
		defer r.stop()
		r.get(t, "/late", http.Header{})
		time.Sleep(1700 * time.Millisecond) // past stale-at less the lead (1.5s)
		if got := r.get(t, "/late", http.Header{}); got != "HIT" {
			t.Fatalf("second request served %s, want HIT", got)
		}
		synctest.Wait()
		if n := o.requests(""); n != 2 {
			t.Fatalf("origin requests = %d, want 2 (the fill, then the refresh the second request asked for)", n)
		}
		time.Sleep(500 * time.Millisecond) // the first copy is stale by now
		if got := r.get(t, "/late", http.Header{}); got != "HIT" {
			t.Errorf("request after the first copy went stale served %s, want HIT (refreshed ahead)", got)
		}
	})
}

// TestTheTrackerIsBoundedInBytes: a flood of distinct keys fills the tracker to MaxBytes and no
// further; Run then drops the records nobody asked for again, keeps the ones clients asked for
// twice, and new keys are tracked again.
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
		tr.Touch("/hot", hot)
		tr.Touch("/hot", hot) // demand
		for i := range 10_000 {
			tr.Touch("/flood/"+strconv.Itoa(i), entry("/flood/"+strconv.Itoa(i)))
		}
		n, b := tr.Size()
		t.Logf("after 10 000 keys: %d records, %d bytes; %d untracked", n, b, tr.Untracked.Load())
		if b > max {
			t.Errorf("tracker holds %d bytes, want at most MaxBytes = %d", b, max)
		}
		if tr.Untracked.Load() == 0 {
			t.Error("Untracked = 0 after a flood larger than MaxBytes")
		}
		time.Sleep(1100 * time.Millisecond) // one tick of Run
		synctest.Wait()
		if !tr.Hot("/hot") || tr.Hits("/hot") != 2 {
			t.Errorf("the key asked for twice: Hot = %v, Hits = %d; want true, 2", tr.Hot("/hot"), tr.Hits("/hot"))
		}
		if n, _ := tr.Size(); n != 1 {
			t.Errorf("records after Run's sweep = %d, want 1 (only the key asked for again)", n)
		}
		tr.Touch("/new", entry("/new"))
		if tr.Hits("/new") != 1 {
			t.Error("a new key is not tracked after the sweep")
		}
	})
}

// TestAVariantKeyedOnCredentialsIsNeverRefreshedInTheBackground is issue 7 point 4 for refresh:
// a response that varies on Cookie, Authorization or Proxy-Authorization is stored under a digest
// of the credential, which no background request may send (it is not the credential) nor replace
// by the anonymous answer. So: no refresh-ahead, Pool.Refresh refuses it, and RequestFor carries
// no credential. A variant that varies on Accept-Language, asked for in the same way, is the
// control: its refreshes show that the credential variant's would have run by then.
func TestAVariantKeyedOnCredentialsIsNeverRefreshedInTheBackground(t *testing.T) {
	for _, field := range []string{"Cookie", "Authorization", "Proxy-Authorization"} {
		t.Run(field, func(t *testing.T) {
			var mu sync.Mutex
			var seen []http.Header
			o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, _ int64) {
				mu.Lock()
				seen = append(seen, r.Header.Clone())
				mu.Unlock()
				w.Header().Set("Cache-Control", "public, max-age=1")
				if r.URL.Path == "/control" {
					w.Header().Set("Vary", "Accept-Language")
				} else {
					w.Header().Set("Vary", field)
				}
				w.Header().Set("ETag", `"a"`)
				io.WriteString(w, "for "+r.Header.Get(field))
			})
			s := newTestStore(t, nil)
			f := newTestFiller(t, s, o)
			log := slog.New(slog.DiscardHandler)
			p := NewPool(f, 2, 100, 5*time.Second, log)
			tr := &Tracker{Window: time.Minute, Pool: p, Filler: f, Store: s, Log: log}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { p.Run(ctx) })
			t.Cleanup(func() { cancel(); wg.Wait() })
			r := &rig{s, f, p, tr, nil}

			secret := http.Header{field: {"secret-of-alice"}}
			r.get(t, "/private", secret)
			r.get(t, "/private", secret) // demand, as for the control
			r.get(t, "/control", http.Header{"Accept-Language": {"fr"}})
			r.get(t, "/control", http.Header{"Accept-Language": {"fr"}})
			e := s.Peek("/private").Variant(func(name string) string { return httpcache.VaryValue(name, secret.Get(name)) })
			if e == nil {
				t.Fatal("the variant keyed on the credential was not stored")
			}

			if p.Refresh(e, s.Peek("/private").Gen) {
				t.Errorf("Pool.Refresh of a variant keyed on %s = true, want false", field)
			}
			req := RequestFor(e, 0)
			if v := req.Header.Get(field); v != "" {
				t.Errorf("RequestFor sets %s: %q", field, v)
			}
			if v := req.Value(field); v != "" || req.Stale != nil {
				t.Errorf("RequestFor: Value(%s) = %q, Stale = %v; want the anonymous request (\"\", nil)", field, v, req.Stale)
			}

			control := func() int {
				mu.Lock()
				defer mu.Unlock()
				n := 0
				for _, h := range seen {
					if h.Get("Accept-Language") == "fr" {
						n++
					}
				}
				return n
			}
			// The private variant was due first (750ms after its fill). Polling the control until it
			// was refreshed twice lets more than a freshness lifetime pass after that.
			testenv.WaitFor(t, 10*time.Second, "two refreshes of the control variant", func() bool {
				r.get(t, "/control", http.Header{"Accept-Language": {"fr"}})
				time.Sleep(50 * time.Millisecond)
				return control() >= 3
			})
			mu.Lock()
			defer mu.Unlock()
			private := 0
			for _, h := range seen {
				if h.Get("Accept-Language") == "" {
					private++
					if v := h.Get(field); v != "secret-of-alice" {
						t.Errorf("origin got %s = %q, want only the client's own request (secret-of-alice)", field, v)
					}
				}
			}
			if private != 1 {
				t.Errorf("origin requests for the variant keyed on %s = %d, want 1 (the client's fill, no background refresh)", field, private)
			}
		})
	}
}

// TestTrackerRecordWeightCoversItsHeap checks that the weight the tracker counts against
// MaxBytes is at least what its records cost on the heap, so MaxBytes is a true bound.
func TestTrackerRecordWeightCoversItsHeap(t *testing.T) {
	for _, vary := range []bool{false, true} {
		t.Run(fmt.Sprintf("vary=%v", vary), func(t *testing.T) {
			const n = 20_000
			entries := make([]*tiers.Entry, n)
			for i := range entries {
				entries[i] = &tiers.Entry{Key: "/api/prices?pair=" + strconv.Itoa(i), Stored: time.Now(), Fresh: time.Hour}
				if vary {
					entries[i].Vary, entries[i].VaryValues = []string{"Accept-Encoding"}, []string{"gzip"}
				}
			}
			tr := &Tracker{Window: time.Minute, MaxBytes: 1 << 30, Pool: newTestPool(1, 10, time.Minute)}
			before := heapInUse()
			for _, e := range entries {
				tr.Touch(e.Key, e)
			}
			grew := heapInUse() - before
			_, counted := tr.Size()
			t.Logf("%d records: heap grew %d bytes (%d each), counted %d (%d each)", n, grew, grew/n, counted, counted/n)
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

// TestTouchOfAKnownKeyDoesNotAllocate: Touch is on the hit path, which must not allocate.
func TestTouchOfAKnownKeyDoesNotAllocate(t *testing.T) {
	tr := &Tracker{Window: time.Minute, Pool: newTestPool(1, 10, time.Minute)}
	e := &tiers.Entry{Key: "/api/prices?pair=ALGO-USD", Stored: time.Now(), Fresh: time.Hour}
	tr.Touch(e.Key, e) // the fill
	tr.Touch(e.Key, e) // demand: the refresh-ahead is scheduled
	if n := testing.AllocsPerRun(1000, func() { tr.Touch(e.Key, e) }); n != 0 {
		t.Errorf("Touch of a known key: %v allocations, want 0", n)
	}
}

func BenchmarkTouch(b *testing.B) {
	tr := &Tracker{Window: time.Minute, Pool: newTestPool(1, 10, time.Minute)}
	e := &tiers.Entry{Key: "/api/prices?pair=ALGO-USD", Stored: time.Now(), Fresh: time.Hour}
	tr.Touch(e.Key, e)
	tr.Touch(e.Key, e)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tr.Touch(e.Key, e)
		}
	})
}

// A refresh-ahead job that a full queue drops is scheduled again by the next request: a polled
// key does not lose refresh-ahead for good (newcomer review: it stayed off while polled).
func TestARefreshAheadJobAFullQueueDroppedIsScheduledAgain(t *testing.T) {
	bubble(t, func(t *testing.T) {
		o := &memOrigin{cc: "max-age=2, stale-while-revalidate=60", body: []byte("x")}
		log := slog.New(slog.DiscardHandler)
		s, _ := tiers.New(tiers.Options{L1MaxBytes: 64 << 20, L1MaxTTL: time.Hour, Log: log})
		f := &Filler{Store: s, Origin: o, MaxObjectBytes: 8 << 20, Timeout: 5 * time.Second, Log: log}
		p := NewPool(f, 2, 1, 5*time.Second, log) // a queue of one job
		tr := &Tracker{Window: 5 * time.Minute, Pool: p, Filler: f, Store: s, Log: log}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { p.Run(ctx) })
		wg.Go(func() { tr.Run(ctx) })
		r := &rig{s, f, p, tr, func() { cancel(); wg.Wait() }}
		defer r.stop()

		r.get(t, "/polled", http.Header{})
		r.get(t, "/polled", http.Header{}) // demand: the refresh-ahead is queued (due in 1.5s)
		synctest.Wait()
		// Another job due sooner fills the queue of one: the refresh-ahead is dropped (overflow).
		block := make(chan struct{})
		p.Schedule(Job{ID: "other", Due: time.Now().Add(100 * time.Millisecond), Run: func(ctx context.Context) error { <-block; return nil }})
		close(block)
		stale := 0
		for range 50 { // 10 s of polling
			time.Sleep(200 * time.Millisecond)
			synctest.Wait()
			if got := r.get(t, "/polled", http.Header{}); got != "HIT" {
				stale++
			}
		}
		if stale > 0 {
			t.Errorf("%d of 50 polls were not HITs after one dropped refresh-ahead job: the key was never re-armed", stale)
		}
	})
}
