package refresh

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"weak"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/internal/testenv"
	"github.com/swrproxy/swrproxy/tiers"
)

// fillFunc adapts a function to the pool's filler; it stands in for the origin trip.
type fillFunc func(ctx context.Context, r *fill.Request) (*tiers.Entry, error)

func (f fillFunc) background(ctx context.Context, r *fill.Request) (*tiers.Entry, error) {
	return f(ctx, r)
}

func TestEnqueueFillsTheRequestInTheBackground(t *testing.T) {
	tests := []struct {
		name       string
		err        error // the fill's error
		wantFailed int64
	}{
		{name: "entry"},
		{name: "error", err: errors.New("origin down"), wantFailed: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				var got []*fill.Request
				var deadline bool
				p := newPool(fillFunc(func(ctx context.Context, r *fill.Request) (*tiers.Entry, error) {
					mu.Lock()
					defer mu.Unlock()
					got = append(got, r)
					_, deadline = ctx.Deadline()
					if tt.err != nil {
						return nil, tt.err
					}
					return &tiers.Entry{Key: r.Key}, nil
				}), 1, 10, time.Minute, slog.New(slog.DiscardHandler))

				r := &fill.Request{Key: "/a", URI: "/a"}
				if !p.Enqueue(r) {
					t.Fatal("Enqueue = false, want true")
				}
				if p.Enqueue(&fill.Request{Key: "/a", URI: "/a"}) {
					t.Error("second Enqueue of a queued key = true, want false")
				}
				start(t, p)
				synctest.Wait()

				mu.Lock()
				defer mu.Unlock()
				if len(got) != 1 || got[0] != r {
					t.Fatalf("Fill called with %v, want once with the enqueued request", got)
				}
				if !deadline {
					t.Error("Fill ran without a deadline, want the pool's timeout")
				}
				if got := p.failed.Load(); got != tt.wantFailed {
					t.Errorf("Failed = %d, want %d", got, tt.wantFailed)
				}
			})
		})
	}
}

func TestEnqueueQueuesOneRevalidationPerVariant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var got []string
		p := newPool(fillFunc(func(_ context.Context, r *fill.Request) (*tiers.Entry, error) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, r.Stale.VaryValues[0])
			return r.Stale, nil
		}), 1, 10, time.Minute, slog.New(slog.DiscardHandler))
		stale := func(enc string) *fill.Request {
			e := &tiers.Entry{Key: "/a", Vary: []string{"Accept-Encoding"}, VaryValues: []string{enc}}
			return &fill.Request{Key: "/a", URI: "/a", Stale: e}
		}
		if !p.Enqueue(stale("gzip")) || !p.Enqueue(stale("br")) {
			t.Error("Enqueue of two variants of one key refused one, want both queued")
		}
		if p.Enqueue(stale("gzip")) {
			t.Error("second Enqueue of a queued variant = true, want false")
		}
		start(t, p)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		slices.Sort(got)
		if want := []string{"br", "gzip"}; !slices.Equal(got, want) {
			t.Errorf("revalidated variants %q, want %q", got, want)
		}
	})
}

func TestRefreshFillsTheEntryUnderItsGeneration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var got []*fill.Request
		p := newPool(fillFunc(func(_ context.Context, r *fill.Request) (*tiers.Entry, error) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, r)
			return r.Stale, nil
		}), 1, 10, time.Minute, slog.New(slog.DiscardHandler))
		e := &tiers.Entry{Key: httpcache.Key("example.com", "/a?b=1"), ETag: `"v1"`, Vary: []string{"Accept-Encoding"}, VaryValues: []string{"gzip"}}

		if !p.Enqueue(&fill.Request{Key: e.Key, URI: "/a?b=1"}) {
			t.Fatal("Enqueue = false, want true")
		}
		if !p.Refresh(e, 7) {
			t.Error("Refresh of a key with a queued revalidation = false, want true (another job ID)")
		}
		if p.Refresh(e, 7) {
			t.Error("second Refresh of the same variant = true, want false")
		}
		start(t, p)
		synctest.Wait()

		mu.Lock()
		defer mu.Unlock()
		if len(got) != 2 {
			t.Fatalf("Fill called %d times, want 2", len(got))
		}
		r := got[0]
		if r.Stale == nil {
			r = got[1]
		}
		if r.Stale != e || r.Gen != 7 || r.URI != "/a?b=1" || r.Key != e.Key {
			t.Errorf("Refresh filled %+v, want the entry's key and target with Stale = e, Gen = 7", r)
		}
		if v := r.Value("Accept-Encoding"); v != "gzip" {
			t.Errorf("refresh request's Accept-Encoding value = %q, want gzip", v)
		}
		if h := r.Header.Get("X-Forwarded-Host"); h != "example.com" {
			t.Errorf("refresh request's X-Forwarded-Host = %q, want example.com", h)
		}
	})
}

// TestQueuedJobsDoNotKeepTheirEntryAlive is issue 7 point 6: jobs hold the key, not the entry, so
// once L1 drops an entry nothing keeps its body in memory while its job waits; the job then finds
// nothing to do. Before, 400 queued refresh-ahead jobs of 256 KiB entries kept 163 MB resident.
func TestQueuedJobsDoNotKeepTheirEntryAlive(t *testing.T) {
	tests := []struct {
		name  string
		queue func(p *Pool, tr *Tracker, e *tiers.Entry)
	}{
		{"revalidation", func(p *Pool, _ *Tracker, e *tiers.Entry) {
			p.Enqueue(&fill.Request{Key: e.Key, URI: e.Key, Header: http.Header{}, Stale: e, Value: func(string) string { return "" }})
		}},
		{"invalidation refresh", func(p *Pool, _ *Tracker, e *tiers.Entry) { p.Refresh(e, 1) }},
		{"refresh-ahead", func(_ *Pool, tr *Tracker, e *tiers.Entry) {
			tr.TouchAt(e.Key, nil, e, time.Now())
			tr.TouchAt(e.Key, nil, e, time.Now()) // asked for again: its refresh is scheduled
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newTestOrigin(t, false, cacheable)
			s := newTestStore(t, nil)
			f := newTestFiller(t, s, o)
			p := newPool(f, 1, 100, 5*time.Second, slog.New(slog.DiscardHandler))
			tr := &Tracker{Window: time.Minute, Pool: p, Filler: f, Store: s, Log: slog.New(slog.DiscardHandler)}
			weakEntry := func() weak.Pointer[tiers.Entry] {
				e := &tiers.Entry{Key: "/big", Status: 200, Body: make([]byte, 8<<20), ETag: `"v0"`, OriginETag: true,
					Stored: time.Now(), Fresh: time.Minute, StaleWhileRevalidate: time.Minute}
				if err := s.Set(context.Background(), e); err != nil {
					t.Fatal(err)
				}
				tt.queue(p, tr, e)
				if p.Len() != 1 {
					t.Fatalf("queued jobs = %d, want 1", p.Len())
				}
				s.Forget(e.Key) // L1 drops it (evicted, or invalidated on another instance)
				return weak.Make(e)
			}()
			runtime.GC()
			runtime.GC()
			if weakEntry.Value() != nil {
				t.Fatalf("the %s job queued for an 8 MiB entry keeps it alive after L1 dropped it", tt.name)
			}
			// Make the job due before the workers start: a revalidation is due already, and a
			// worker that took it first would leave nothing queued to change.
			p.mu.Lock()
			p.soon.items[0].job.Due = time.Now() // run the refresh-ahead now
			p.mu.Unlock()
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { p.Run(ctx) })
			defer func() { cancel(); wg.Wait() }()
			testenv.WaitFor(t, 5*time.Second, "the job to run", func() bool { return p.done.Load()+p.failed.Load() == 1 })
			if n := o.hits.Load(); n != 0 {
				t.Errorf("origin requests = %d, want 0: the entry is gone, there is nothing to revalidate", n)
			}
		})
	}
}

// TestAQueuedRevalidationLooksItsEntryUpWhenItRuns: a revalidation queued for a stale copy does
// nothing if the copy was renewed before it ran, and otherwise revalidates the copy stored then.
func TestAQueuedRevalidationLooksItsEntryUpWhenItRuns(t *testing.T) {
	o, validators := revalidatingOrigin(t, "max-age=60")
	s := newTestStore(t, nil)
	f := newTestFiller(t, s, o)
	p := newPool(f, 1, 100, 5*time.Second, slog.New(slog.DiscardHandler))
	revalidate := func(e *tiers.Entry) *fill.Request {
		return &fill.Request{Key: e.Key, URI: e.Key, Header: http.Header{}, Stale: e, Value: func(string) string { return "" }}
	}
	set := func(e *tiers.Entry) {
		if err := s.Set(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}

	renewedMeanwhile := staleEntry("/renewed")
	set(renewedMeanwhile)
	p.Enqueue(revalidate(renewedMeanwhile))
	fresh := *renewedMeanwhile
	fresh.Stored = time.Now()
	set(&fresh)

	older := staleEntry("/older")
	older.ETag, older.Stored = `"v0"`, older.Stored.Add(-time.Minute)
	set(older)
	p.Enqueue(revalidate(older))
	set(staleEntry("/older")) // a newer copy, still stale: ETag "v1"

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	testenv.WaitFor(t, 5*time.Second, "both revalidations to run", func() bool { return p.done.Load()+p.failed.Load() == 2 })
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin requests = %d, want 1 (none for the copy renewed before its job ran)", n)
	}
	if inm, _ := validators(); inm != `"v1"` {
		t.Errorf("revalidation sent If-None-Match %q, want the copy stored when it ran (%q)", inm, `"v1"`)
	}
}
