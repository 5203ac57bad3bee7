package refresh

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/internal/testenv"
	"github.com/swrproxy/swrproxy/tiers"
)

// failingOrigin answers every request with status, fresh for 30 seconds (RFC 9111 §4.2.1:
// explicit freshness makes any status storable, RFC 9111 §3), once held requests are released.
func failingOrigin(t *testing.T, status int) *testOrigin {
	return newTestOrigin(t, true, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.Header().Set("Cache-Control", "max-age=30")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		io.WriteString(w, "down")
	})
}

// A failing origin that gives its error explicit freshness is asked once per lifetime, not once
// per client: the error is stored and every waiter of the flight gets the stored entry (negative
// caching, RFC 9111 §3 and §4.2.1).
func TestAFreshOriginErrorIsStoredForTheWholeFlight(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			o := failingOrigin(t, status)
			s := newTestStore(t, nil)
			f := newTestFiller(t, s, o)

			const n = 3
			res := make([]*fill.Result, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			wg.Go(func() { res[0], errs[0] = f.Fill(t.Context(), request("/down")) })
			testenv.WaitFor(t, 5*time.Second, "the leader's origin request", func() bool { return o.hits.Load() == 1 })
			ctxs := make([]*waitingCtx, n-1)
			for i := range ctxs {
				ctxs[i] = newWaitingCtx(t.Context())
				wg.Go(func() { res[i+1], errs[i+1] = f.Fill(ctxs[i], request("/down")) })
			}
			waitJoined(t, ctxs...)
			o.release()
			wg.Wait()

			for i := range n {
				if errs[i] != nil || res[i].Entry == nil || res[i].Pass != nil {
					t.Fatalf("Fill %d = %+v, %v; want the stored entry", i, res[i], errs[i])
				}
				if e := res[i].Entry; int(e.Status) != status || string(e.Body) != "down" {
					t.Errorf("Fill %d: entry %d %q, want %d %q", i, e.Status, e.Body, status, "down")
				}
			}
			if got := o.hits.Load(); got != 1 {
				t.Errorf("origin requests = %d, want 1", got)
			}
			e := variant(s, "/down")
			if e == nil || int(e.Status) != status || e.Fresh != httpcache.MaxErrorFresh {
				t.Fatalf("stored %+v, want the %d fresh for %v (its max-age=30, capped)", e, status, httpcache.MaxErrorFresh)
			}
		})
	}
}

// goodCopy is a stored 200 to key that went stale a minute ago and may be served on error for an hour.
func goodCopy(key string) *tiers.Entry {
	e := staleEntry(key)
	e.StaleIfError = time.Hour
	return e
}

// A fresh error never replaces a good copy that may still be served on error (RFC 5861 §4;
// RFC 9111 §4.3.3 lets a cache act as if a 5xx to a validation were no answer): the good copy
// stays stored, the leader gets the error to drop (proxy serves its stale copy), and a waiter with
// the same copy gets an error rather than ask the failing origin again.
func TestAFreshErrorDoesNotReplaceAGoodCopyWithinStaleIfError(t *testing.T) {
	o := failingOrigin(t, http.StatusServiceUnavailable)
	s := newTestStore(t, nil)
	f := newTestFiller(t, s, o)
	good := goodCopy("/down")
	if err := s.Set(t.Context(), good); err != nil {
		t.Fatalf("Set(good copy): %v", err)
	}

	var leader, waiter *fill.Result
	var errLeader, errWaiter error
	var wg sync.WaitGroup
	r := request("/down")
	r.Stale = good
	wg.Go(func() { leader, errLeader = f.Fill(t.Context(), r) })
	testenv.WaitFor(t, 5*time.Second, "the leader's origin request", func() bool { return o.hits.Load() == 1 })
	ctx := newWaitingCtx(t.Context())
	rw := request("/down")
	rw.Stale = good
	wg.Go(func() { waiter, errWaiter = f.Fill(ctx, rw) })
	waitJoined(t, ctx)
	o.release()
	wg.Wait()

	if errLeader != nil || leader.Entry != nil || leader.Pass == nil || leader.Pass.Status != http.StatusServiceUnavailable {
		t.Fatalf("leader Fill = %+v, %v; want the 503 passed, not stored", leader, errLeader)
	}
	if leader.Pass.Body != nil {
		leader.Pass.Body.Close()
	}
	if leader.NotStored != "stale-if-error" {
		t.Errorf("leader NotStored = %q, want stale-if-error", leader.NotStored)
	}
	// The waiter gets the failure, never a stored entry: the leader's small anonymous 503 page
	// (shared, see shareable) or, for a page that may be the leader's alone, an error; proxy
	// serves the waiter's own stale copy in place of either.
	sharedFailure := waiter != nil && waiter.Entry == nil && waiter.Pass != nil && waiter.Pass.Shared != nil &&
		waiter.Pass.Status == http.StatusServiceUnavailable
	if !sharedFailure && (waiter != nil || !errors.Is(errWaiter, errFailedForAnother)) {
		t.Errorf("waiter Fill = %+v, %v; want the shared 503 page or an error wrapping errFailedForAnother", waiter, errWaiter)
	}
	if got := variant(s, "/down"); got != good {
		t.Errorf("store holds %+v, want the good copy", got)
	}
	if got := o.hits.Load(); got != 1 {
		t.Errorf("origin requests = %d, want 1", got)
	}

	// The 503 said it stands for MaxErrorFresh: until then a fill with the good copy, a client's
	// or a background revalidation, does not ask the origin again (proxy serves the copy).
	for _, bg := range []bool{false, true} {
		r = request("/down")
		r.Stale = good
		var err error
		if bg {
			var e *tiers.Entry
			e, err = f.background(t.Context(), r)
			if e != nil {
				t.Errorf("background brought %+v, want nothing", e)
			}
		} else {
			_, err = f.Fill(t.Context(), r)
		}
		if !errors.Is(err, errStillFailing) {
			t.Errorf("fill (background %v) = %v, want errStillFailing", bg, err)
		}
	}
	if got := variant(s, "/down"); got != good {
		t.Errorf("the store holds %+v, want the good copy", got)
	}
	if got := o.hits.Load(); got != 1 {
		t.Errorf("origin requests = %d, want 1 for the lifetime of its error", got)
	}
	// Without a copy to serve, the origin is asked: the mark only spares a good copy's users.
	go o.release()
	res, err := f.Fill(t.Context(), request("/down"))
	if err != nil || res.Entry == nil || res.Entry.Status != http.StatusServiceUnavailable {
		t.Errorf("Fill without a copy = %+v, %v; want the 503 stored", res, err)
	}
	// An invalidation forgets the mark.
	f.Forget("/down")
	if f.failing.holds("/down", good.VariantID(), time.Now()) {
		t.Error("the failing mark outlived Forget")
	}
}

// The failing marks end with their error's lifetime (at most maxFailingFor), are per variant,
// go with an invalidation or an invalidation during the fetch that would set them, and stay
// bounded in count and in bytes whatever the keys.
func TestFailingMarksExpireAndAreBounded(t *testing.T) {
	var m failingMarks
	now := time.Now()
	m.mark("/gone", "", now.Add(-time.Millisecond), 0)
	m.mark("/on", "", now.Add(time.Hour), 0)
	if m.holds("/gone", "", now) || !m.holds("/on", "", now) {
		t.Errorf("holds(/gone, /on) = %v, %v; want false, true", m.holds("/gone", "", now), m.holds("/on", "", now))
	}
	if m.holds("/on", "en", now) {
		t.Error("a mark of one variant holds for another")
	}
	if m.holds("/on", "", now.Add(maxFailingFor+time.Second)) {
		t.Errorf("a mark outlived maxFailingFor (%v) though its error said an hour", maxFailingFor)
	}
	epoch := m.epoch()
	m.forget("/other")
	m.mark("/late", "", now.Add(time.Minute), epoch) // its fetch began before the invalidation
	if m.holds("/late", "", now) {
		t.Error("a fetch that began before an invalidation set a mark")
	}
	for i := range 3 * maxFailingMarks {
		m.mark(fmt.Sprintf("/k%d", i), "", now.Add(time.Minute), m.epoch())
	}
	if m.n > maxFailingMarks || m.n != countMarks(&m) {
		t.Errorf("%d marks kept (counted %d), want at most %d", countMarks(&m), m.n, maxFailingMarks)
	}
	if !m.holds(fmt.Sprintf("/k%d", 3*maxFailingMarks-1), "", now) {
		t.Error("the newest mark was dropped")
	}
	long := strings.Repeat("x", 16<<10) // keys up to the request buffer: the bytes bound holds
	for i := range 500 {
		m.mark(fmt.Sprintf("/%d/%s", i, long), "", now.Add(time.Minute), m.epoch())
	}
	if m.bytes > maxFailingBytes {
		t.Errorf("the marks weigh %d bytes, want at most %d", m.bytes, maxFailingBytes)
	}
}

func countMarks(m *failingMarks) int {
	n := 0
	for _, vs := range m.until {
		n += len(vs)
	}
	return n
}

// Only an origin failure that speaks for everyone marks the key failing: not one to a request
// with Cookie or Authorization, nor a 429, nor an error page private to the request (Vary,
// private, Set-Cookie), nor a guessed lifetime. A client could otherwise make the origin fail for
// itself alone and stop every other user's revalidations (security review).
func TestOnlyAnErrorForEveryoneMarksTheKeyFailing(t *testing.T) {
	fresh := httpcache.Decision{Store: true, Fresh: 10 * time.Second}
	resp := func(status int, h ...string) *http.Response {
		r := &http.Response{StatusCode: status, Header: http.Header{}, ContentLength: 4}
		for i := 0; i+1 < len(h); i += 2 {
			r.Header.Add(h[i], h[i+1])
		}
		return r
	}
	anonymous, withCookie, withAuth := request("/k"), request("/k"), request("/k")
	withCookie.Cookie, withAuth.Authorization = true, true
	guessed := fresh
	guessed.Guessed = true
	tests := []struct {
		name string
		r    *fill.Request
		resp *http.Response
		d    httpcache.Decision
		want bool
	}{
		{"a 503 for everyone", anonymous, resp(503), fresh, true},
		{"a 503 to a request with Cookie", withCookie, resp(503), fresh, false},
		{"a 503 to a request with Authorization", withAuth, resp(503), fresh, false},
		{"a 429", anonymous, resp(429), fresh, false},
		{"a 503 with Vary", anonymous, resp(503, "Vary", "User-Agent"), fresh, false},
		{"a private 503", anonymous, resp(503, "Cache-Control", "private, max-age=60"), fresh, false},
		{"a 503 with Set-Cookie", anonymous, resp(503, "Set-Cookie", "a=1"), fresh, false},
		{"a 503 with a guessed lifetime", anonymous, resp(503), guessed, false},
		{"a 503 without a lifetime", anonymous, resp(503), httpcache.Decision{Store: true}, false},
	}
	for _, tt := range tests {
		if got := markable(tt.r, tt.resp, tt.d); got != tt.want {
			t.Errorf("%s: markable = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// keepStale decides, for a response Decide lets us store, whether the stale copy it would
// replace stays instead: only for an origin failure (5xx, 429, 408) over a good copy within its
// stale-if-error window (RFC 5861 §4). A copy past it, or itself an error, gives way, so a
// failing origin is still asked once per lifetime of its error (RFC 9111 §4.3.3).
func TestKeepStaleOnlyForAFailureOverAGoodCopyWithinStaleIfError(t *testing.T) {
	now := time.Now()
	past := goodCopy("/k")
	past.StaleIfError = 30 * time.Second // stale for a minute: past its window
	staleError := goodCopy("/k")
	staleError.Status = http.StatusServiceUnavailable
	tests := []struct {
		name   string
		status int
		stale  *tiers.Entry
		keep   bool
	}{
		{"503, no copy", http.StatusServiceUnavailable, nil, false},
		{"503 over a good copy within stale-if-error", http.StatusServiceUnavailable, goodCopy("/k"), true},
		{"429 over a good copy within stale-if-error", http.StatusTooManyRequests, goodCopy("/k"), true},
		{"408 over a good copy within stale-if-error", http.StatusRequestTimeout, goodCopy("/k"), true},
		{"503 over a good copy past stale-if-error", http.StatusServiceUnavailable, past, false},
		{"503 over a stale 503", http.StatusServiceUnavailable, staleError, false},
		{"200 over a good copy", http.StatusOK, goodCopy("/k"), false},
		{"404 over a good copy", http.StatusNotFound, goodCopy("/k"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keepStale(tt.status, tt.stale, now); got != tt.keep {
				t.Errorf("keepStale(%d) = %v, want %v", tt.status, got, tt.keep)
			}
		})
	}
}

// A waiter with a good copy within stale-if-error whose flight stored an origin failure (its
// leader had no copy to keep) gets an error, so that proxy serves the waiter's copy (RFC 5861 §4);
// the leader gets the stored error.
func TestAWaiterWithAGoodCopyIsNotServedAnErrorTheFlightStored(t *testing.T) {
	o := failingOrigin(t, http.StatusServiceUnavailable)
	s := newTestStore(t, nil)
	f := newTestFiller(t, s, o)

	var leader, waiter *fill.Result
	var errLeader, errWaiter error
	var wg sync.WaitGroup
	wg.Go(func() { leader, errLeader = f.Fill(t.Context(), request("/down")) })
	testenv.WaitFor(t, 5*time.Second, "the leader's origin request", func() bool { return o.hits.Load() == 1 })
	ctx := newWaitingCtx(t.Context())
	r := request("/down")
	r.Stale = goodCopy("/down")
	wg.Go(func() { waiter, errWaiter = f.Fill(ctx, r) })
	waitJoined(t, ctx)
	o.release()
	wg.Wait()

	if errLeader != nil || leader.Entry == nil || leader.Entry.Status != http.StatusServiceUnavailable {
		t.Fatalf("leader Fill = %+v, %v; want the stored 503", leader, errLeader)
	}
	if waiter != nil || !errors.Is(errWaiter, errFailedForAnother) {
		t.Errorf("waiter Fill = %+v, %v; want an error wrapping errFailedForAnother", waiter, errWaiter)
	}
	if got := o.hits.Load(); got != 1 {
		t.Errorf("origin requests = %d, want 1", got)
	}
}

// A mark holds only for requests that send the origin the same unkeyed fields as the one that
// failed (its address, User-Agent, the Accept fields): a client that makes the origin fail for
// itself alone, and keeps doing so, stops only its own revalidations (security review).
func TestAFailingMarkHoldsOnlyForRequestsThatSendTheSameFields(t *testing.T) {
	evil, other := request("/k"), request("/k")
	evil.Header = http.Header{"User-Agent": {"evilbot"}, "X-Forwarded-For": {"203.0.113.9"}}
	other.Header = http.Header{"User-Agent": {"Mozilla/5.0"}, "X-Forwarded-For": {"198.51.100.7"}}
	if markScope(evil) == markScope(other) {
		t.Fatal("two requests with other unkeyed fields share a mark scope")
	}
	again := request("/k")
	again.Header = evil.Header.Clone()
	if markScope(evil) != markScope(again) {
		t.Error("the same fields give another scope")
	}
	var m failingMarks
	now := time.Now()
	m.mark("/k", "v"+markScope(evil), now.Add(time.Second), m.epoch())
	if !m.holds("/k", "v"+markScope(again), now) || m.holds("/k", "v"+markScope(other), now) {
		t.Error("the mark must hold for the failing request's fields only")
	}
}
