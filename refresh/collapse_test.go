package refresh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

func TestConcurrentFillsOfAKeyShareOneOriginRequest(t *testing.T) {
	o := newTestOrigin(t, true, cacheable)
	s := newTestStore(t, nil)
	f := newTestFiller(t, s, o)

	const n = 8
	results, errs := make([]*fill.Result, n), make([]error, n)
	ctxs := make([]*waitingCtx, n)
	var wg sync.WaitGroup
	for i := range n {
		ctxs[i] = newWaitingCtx(t.Context())
		wg.Go(func() { results[i], errs[i] = f.Fill(ctxs[i], request("/a")) })
	}
	waitJoined(t, ctxs...)
	o.release()
	wg.Wait()

	if got := o.hits.Load(); got != 1 {
		t.Errorf("origin requests = %d, want 1", got)
	}
	shared := 0
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("Fill %d: %v", i, errs[i])
		}
		if res.Entry == nil || res.Entry != results[0].Entry {
			t.Fatalf("Fill %d returned entry %p, want the one entry %p", i, res.Entry, results[0].Entry)
		}
		if res.Shared {
			shared++
		}
	}
	if got := string(results[0].Entry.Body); got != "v1" {
		t.Errorf("body = %q, want v1", got)
	}
	if shared != n-1 {
		t.Errorf("%d of %d results are Shared, want %d: every caller but the one whose fetch it was", shared, n, n-1)
	}
	if got := f.stats.SharedLocal.Load(); got != n-1 {
		t.Errorf("Stats.SharedLocal = %d, want %d", got, n-1)
	}
	if got := f.stats.OriginRequests.Load(); got != 1 {
		t.Errorf("Stats.OriginRequests = %d, want 1", got)
	}
	if got := variant(s, "/a"); got != results[0].Entry {
		t.Errorf("stored %p, want the served entry %p", got, results[0].Entry)
	}
}

func testFillsOnTwoInstancesShareOneOriginRequest(t *testing.T, srv redistest.Topology) {
	o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, n int64) {
		select { // a slow origin
		case <-time.After(200 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		cacheable(w, r, n)
	})
	stores := []*tiers.Store{newTestStore(t, srv.Connect(t)), newTestStore(t, srv.Connect(t))}
	instances := []*Filler{newTestFiller(t, stores[0], o), newTestFiller(t, stores[1], o)}

	const perInstance = 3
	type result struct {
		res *fill.Result
		err error
	}
	results := make([]result, 2*perInstance)
	var wg sync.WaitGroup
	for i := range results {
		f := instances[i%2]
		wg.Go(func() {
			res, err := f.Fill(t.Context(), request("/a"))
			results[i] = result{res, err}
		})
	}
	wg.Wait()

	if got := o.hits.Load(); got != 1 {
		t.Errorf("origin requests from two instances = %d, want 1", got)
	}
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("Fill %d on instance %d: %v", i, i%2, r.err)
		}
		if e := r.res.Entry; e == nil || string(e.Body) != "v1" || e.ETag != `"v1"` {
			t.Errorf("Fill %d on instance %d returned %+v, want the v1 entry", i, i%2, e)
		}
	}
	a, b := instances[0].stats.SharedRemote.Load(), instances[1].stats.SharedRemote.Load()
	if a+b != 1 {
		t.Errorf("Stats.SharedRemote = %d and %d, want 1 on the instance that waited and 0 on the other", a, b)
	}
	for i, f := range instances {
		if e := variant(stores[i], "/a"); e == nil || string(e.Body) != "v1" {
			t.Errorf("instance %d L1 holds %+v, want the v1 entry", i, e)
		}
		if f.Store.Locked(t.Context(), "/a") {
			t.Errorf("instance %d: the fetch lock is still held after every fill returned", i)
		}
	}
}

func TestFillsWithAuthorizationOrAloneAreNotCollapsed(t *testing.T) {
	tests := []struct {
		name   string
		set    func(r *fill.Request)
		alone  bool   // call alone rather than Fill
		bypass string // Result.Bypass
	}{
		{"authorization", func(r *fill.Request) {
			r.Authorization = true
			r.Header.Set("Authorization", "Bearer secret")
		}, false, "authorization"},
		{"cookie, guessed copy", func(r *fill.Request) {
			r.Cookie = true
			r.Header.Set("Cookie", "id=1")
			r.Stale = staleEntry("/a")
			r.Stale.Guessed = true
		}, false, "cookie"},
		{"alone", func(*fill.Request) {}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newTestOrigin(t, true, cacheable)
			f := newTestFiller(t, newTestStore(t, nil), o)
			const n = 4
			results, errs := make([]*fill.Result, n), make([]error, n)
			reqs := make([]*fill.Request, n)
			var wg sync.WaitGroup
			for i := range n {
				reqs[i] = request("/a")
				tt.set(reqs[i])
				wg.Go(func() {
					if tt.alone {
						results[i], errs[i] = f.alone(t.Context(), reqs[i], "")
					} else {
						results[i], errs[i] = f.Fill(t.Context(), reqs[i])
					}
				})
			}
			// Every request reaches the held origin on its own.
			testenv.WaitFor(t, 5*time.Second, fmt.Sprintf("%d origin requests", n), func() bool { return o.hits.Load() == n })
			o.release()
			wg.Wait()

			bodies := map[string]bool{}
			for i, res := range results {
				if errs[i] != nil {
					t.Fatalf("Fill %d: %v", i, errs[i])
				}
				if res.Shared {
					t.Errorf("Fill %d: Shared = true, want false", i)
				}
				if res.Bypass != tt.bypass {
					t.Errorf("Fill %d: Bypass = %q, want %q", i, res.Bypass, tt.bypass)
				}
				switch {
				case res.Entry != nil:
					bodies[string(res.Entry.Body)] = true
				case res.Pass != nil && res.Pass.Body != nil:
					b, _ := io.ReadAll(res.Pass.Body)
					res.Pass.Body.Close()
					bodies[string(b)] = true
				}
			}
			if len(bodies) != n {
				t.Errorf("callers got %d distinct responses, want %d", len(bodies), n)
			}
			if got := o.hits.Load(); got != n {
				t.Errorf("origin requests = %d, want %d", got, n)
			}
			if got := f.stats.SharedLocal.Load(); got != 0 {
				t.Errorf("Stats.SharedLocal = %d, want 0", got)
			}
		})
	}
}

func testAWaitForAnotherInstancesFetchThatRunsOutOfTimeIsATimeout(t *testing.T, topo redistest.Topology) {
	rdb := topo.Connect(t)
	o := newTestOrigin(t, false, cacheable)
	s := newTestStore(t, rdb)
	f := newTestFiller(t, s, o)
	other := newTestStore(t, rdb) // another instance, holding the key's fetch lock
	lock, ok, err := other.TryLock(t.Context(), "/a", 10*time.Second)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v; want the lock", ok, err)
	}
	defer lock.Unlock()

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	res, err := f.fetch(ctx, request("/a"), true)
	var we *waitError
	var ue *upstream.Error
	if res != nil || !errors.As(err, &we) || errors.As(err, &ue) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("fetch = %+v, %v; want a *waitError wrapping context.DeadlineExceeded, not an *upstream.Error", res, err)
	}
	if !timesOut(err) {
		t.Error("the wait's error does not say it is a timeout, want one (a client gets 504 as before)")
	}
	if got := o.hits.Load(); got != 0 {
		t.Errorf("origin requests = %d, want 0 while another instance holds the lock", got)
	}
}

func TestACallerGivingUpDoesNotCancelTheSharedFetch(t *testing.T) {
	o := newTestOrigin(t, true, cacheable)
	s := newTestStore(t, nil)
	f := newTestFiller(t, s, o)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	impatient := newWaitingCtx(ctx)
	patient := newWaitingCtx(t.Context())
	var wg sync.WaitGroup
	var res1, res2 *fill.Result
	var err1, err2 error
	returned := make(chan struct{})
	wg.Go(func() { // leads the flight
		defer close(returned)
		res1, err1 = f.Fill(impatient, request("/a"))
	})
	waitJoined(t, impatient)
	testenv.WaitFor(t, 5*time.Second, "the origin request", func() bool { return o.hits.Load() == 1 })
	wg.Go(func() { res2, err2 = f.Fill(patient, request("/a")) })
	waitJoined(t, patient)

	cancel()
	select {
	case <-returned: // while the origin still holds the request
	case <-time.After(5 * time.Second):
		t.Fatal("the impatient caller did not return within 5s of giving up")
	}
	o.release()
	wg.Wait()

	var ue *upstream.Error
	if res1 != nil || !errors.As(err1, &ue) || !errors.Is(err1, context.Canceled) {
		t.Errorf("impatient Fill = %+v, %v; want an *upstream.Error wrapping context.Canceled", res1, err1)
	}
	if err2 != nil || res2.Entry == nil || string(res2.Entry.Body) != "v1" {
		t.Errorf("patient Fill = %+v, %v; want the shared v1", res2, err2)
	}
	if got := o.hits.Load(); got != 1 {
		t.Errorf("origin requests = %d, want 1", got)
	}
	if variant(s, "/a") == nil {
		t.Error("the shared fetch was not stored after its leader gave up")
	}
}
