package refresh

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/internal/testenv"
	"github.com/swrproxy/swrproxy/tiers"
)

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
		if n, b := r.tracker.Size(); n != 0 {
			t.Errorf("tracker records after 20 keys asked for once = %d (%d bytes), want 0: a fill is not demand", n, b)
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

// TestAVariantKeyedOnCredentialsIsNeverRefreshedInTheBackground is issue 7 point 4 for refresh:
// a response that varies on Cookie, Authorization or Proxy-Authorization is stored under a digest
// of the credential, which no background request may send (it is not the credential) nor replace
// by the anonymous answer. So: no refresh-ahead, Pool.Refresh refuses it, and requestFor carries
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
			p := newPool(f, 2, 100, 5*time.Second, log)
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
			req := requestFor(e, 0)
			if v := req.Header.Get(field); v != "" {
				t.Errorf("requestFor sets %s: %q", field, v)
			}
			if v := req.Value(field); v != "" || req.Stale != nil {
				t.Errorf("requestFor: Value(%s) = %q, Stale = %v; want the anonymous request (\"\", nil)", field, v, req.Stale)
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

func TestARefreshAheadJobAFullQueueDroppedIsScheduledAgain(t *testing.T) {
	bubble(t, func(t *testing.T) {
		o := &memOrigin{cc: "max-age=2, stale-while-revalidate=60", body: []byte("x")}
		log := slog.New(slog.DiscardHandler)
		s, _ := tiers.New(tiers.Options{L1MaxBytes: 64 << 20, L1MaxTTL: time.Hour, Log: log})
		f := &Filler{Store: s, Origin: o, MaxObjectBytes: 8 << 20, Timeout: 5 * time.Second, Log: log}
		p := newPool(f, 2, 1, 5*time.Second, log) // a queue of one job
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

// TestAKeyKeptWarmSurvivesAFullTracker: a key polled less often than its copies are refreshed
// keeps its record when a flood fills the tracker: right after a refresh-ahead its new copy has
// no request yet, but the key is being kept warm, and the sweep that makes room spares it (it
// used to drop it, and the key went stale under the flood).
func TestAKeyKeptWarmSurvivesAFullTracker(t *testing.T) {
	bubble(t, func(t *testing.T) {
		o := &memOrigin{cc: "max-age=4", body: []byte("x")}
		r := newRig(t, o, 5*time.Minute)
		defer r.stop()
		r.tracker.MaxBytes = 64 << 10
		r.get(t, "/polled", http.Header{})
		r.get(t, "/polled", http.Header{}) // asked for again: refreshed ahead at 3.5 s
		time.Sleep(3700 * time.Millisecond)
		synctest.Wait()
		if n := o.requests("/polled"); n != 2 {
			t.Fatalf("origin requests for /polled = %d, want 2 (the fill and one refresh-ahead)", n)
		}
		for i := range 10_000 { // a flood of keys, each asked for twice
			e := &tiers.Entry{Key: "/flood/" + strconv.Itoa(i), Stored: time.Now(), Fresh: time.Hour}
			r.tracker.TouchAt(e.Key, nil, e, time.Now())
		}
		time.Sleep(1100 * time.Millisecond) // a sweep under pressure
		synctest.Wait()
		if _, ok := r.tracker.keys().Load("/polled"); !ok {
			t.Error("the key kept warm lost its record to the flood")
		}
	})
}
