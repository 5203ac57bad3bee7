package refresh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// newTestStore returns a real Store: L1 only when rdb is nil, else L1 and L2 in rdb.
func newTestStore(t *testing.T, rdb redis.UniversalClient) *tiers.Store {
	t.Helper()
	s, err := tiers.New(tiers.Options{
		L1MaxBytes: 64 << 20,
		L1MaxTTL:   time.Minute,
		Redis:      rdb,
		L2Timeout:  time.Second, // the race detector makes Redis calls slow
		Log:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("tiers.New: %v", err)
	}
	return s
}

// testOrigin is a real httptest origin that counts its requests and, when held, keeps every
// request waiting until release.
type testOrigin struct {
	*httptest.Server
	hits atomic.Int64
	gate chan struct{}
	once sync.Once
}

// newTestOrigin starts an origin that answers with h, passing the request's 1-based number.
func newTestOrigin(t *testing.T, held bool, h func(w http.ResponseWriter, r *http.Request, n int64)) *testOrigin {
	t.Helper()
	o := &testOrigin{gate: make(chan struct{})}
	if !held {
		o.release()
	}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := o.hits.Add(1)
		select {
		case <-o.gate:
		case <-r.Context().Done():
			return
		}
		h(w, r, n)
	}))
	t.Cleanup(o.Close)
	t.Cleanup(o.release) // runs first: Close waits for held requests
	return o
}

// release lets held requests (and every later one) through.
func (o *testOrigin) release() { o.once.Do(func() { close(o.gate) }) }

// cacheable answers 200 with a body naming the request number, fresh for a minute.
func cacheable(w http.ResponseWriter, _ *http.Request, n int64) {
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Header().Set("ETag", `"v`+strconv.FormatInt(n, 10)+`"`)
	io.WriteString(w, "v"+strconv.FormatInt(n, 10))
}

// newTestFiller returns a Filler of the real origin client for o, storing into s.
func newTestFiller(t *testing.T, s *tiers.Store, o *testOrigin) *Filler {
	t.Helper()
	u, err := url.Parse(o.URL)
	if err != nil {
		t.Fatalf("parse origin URL: %v", err)
	}
	return &Filler{
		Store:          s,
		Origin:         upstream.New(u, 5*time.Second),
		MaxObjectBytes: 1 << 20,
		Timeout:        5 * time.Second,
		LockTTL:        2 * time.Second,
		Log:            slog.New(slog.DiscardHandler),
		Stats:          &Stats{},
	}
}

// request is a client's GET of key (a target without host) that varies on nothing.
func request(key string) *tiers.Request {
	return &tiers.Request{Key: key, URI: key, Header: http.Header{}, Value: func(string) string { return "" }}
}

// waitingCtx closes joined when the caller first waits on it. Fill selects on ctx.Done only after
// it joined the key's flight, so once joined is closed the caller shares the flight in progress.
type waitingCtx struct {
	context.Context
	once   sync.Once
	joined chan struct{}
}

func newWaitingCtx(parent context.Context) *waitingCtx {
	return &waitingCtx{Context: parent, joined: make(chan struct{})}
}

func (c *waitingCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.joined) })
	return c.Context.Done()
}

// waitJoined waits until every caller joined its flight.
func waitJoined(t *testing.T, ctxs ...*waitingCtx) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for i, c := range ctxs {
		select {
		case <-c.joined:
		case <-timeout:
			t.Fatalf("caller %d did not join the flight within 5s", i)
		}
	}
}

// variant returns the stored variant of key in s's L1, or nil.
func variant(s *tiers.Store, key string) *tiers.Entry {
	o := s.Peek(key)
	if o == nil {
		return nil
	}
	return o.Variant(func(string) string { return "" })
}

// fieldValues returns the values of the stored header field name, in order.
func fieldValues(e *tiers.Entry, name string) []string {
	var vs []string
	for _, f := range e.Header {
		if f.Name == name {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

func TestConcurrentFillsOfAKeyShareOneOriginRequest(t *testing.T) {
	o := newTestOrigin(t, true, cacheable)
	s := newTestStore(t, nil)
	f := newTestFiller(t, s, o)

	const n = 8
	results, errs := make([]*tiers.Result, n), make([]error, n)
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
	if got := f.Stats.SharedLocal.Load(); got != n-1 {
		t.Errorf("Stats.SharedLocal = %d, want %d", got, n-1)
	}
	if got := f.Stats.OriginRequests.Load(); got != 1 {
		t.Errorf("Stats.OriginRequests = %d, want 1", got)
	}
	if got := variant(s, "/a"); got != results[0].Entry {
		t.Errorf("stored %p, want the served entry %p", got, results[0].Entry)
	}
}

func TestFillsOnTwoInstancesShareOneOriginRequest(t *testing.T) {
	srv := redistest.Start(t)
	o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, n int64) {
		select { // a slow origin
		case <-time.After(200 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		cacheable(w, r, n)
	})
	instances := []*Filler{
		newTestFiller(t, newTestStore(t, srv.Client()), o),
		newTestFiller(t, newTestStore(t, srv.Client()), o),
	}

	const perInstance = 3
	type result struct {
		res *tiers.Result
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
	a, b := instances[0].Stats.SharedRemote.Load(), instances[1].Stats.SharedRemote.Load()
	if a+b != 1 {
		t.Errorf("Stats.SharedRemote = %d and %d, want 1 on the instance that waited and 0 on the other", a, b)
	}
	for i, f := range instances {
		if e := variant(f.Store, "/a"); e == nil || string(e.Body) != "v1" {
			t.Errorf("instance %d L1 holds %+v, want the v1 entry", i, e)
		}
		if f.Store.Locked(t.Context(), "/a") {
			t.Errorf("instance %d: the fetch lock is still held after every fill returned", i)
		}
	}
}

func TestFillsWithAuthorizationOrAloneAreNotCollapsed(t *testing.T) {
	tests := []struct {
		name string
		set  func(r *tiers.Request)
	}{
		{"authorization", func(r *tiers.Request) {
			r.Authorization = true
			r.Header.Set("Authorization", "Bearer secret")
		}},
		{"alone", func(r *tiers.Request) { r.Alone = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newTestOrigin(t, true, cacheable)
			f := newTestFiller(t, newTestStore(t, nil), o)
			const n = 4
			results, errs := make([]*tiers.Result, n), make([]error, n)
			reqs := make([]*tiers.Request, n)
			var wg sync.WaitGroup
			for i := range n {
				reqs[i] = request("/a")
				tt.set(reqs[i])
				wg.Go(func() { results[i], errs[i] = f.Fill(t.Context(), reqs[i]) })
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
				switch {
				case res.Entry != nil:
					bodies[string(res.Entry.Body)] = true
				case res.Pass != nil && res.Pass.Claim(reqs[i]):
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
			if got := f.Stats.SharedLocal.Load(); got != 0 {
				t.Errorf("Stats.SharedLocal = %d, want 0", got)
			}
		})
	}
}

func TestAnUncacheableResponseIsPassedToOneCaller(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<14) // 256 KiB: more than one read
	o := newTestOrigin(t, true, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	s := newTestStore(t, nil)
	f := newTestFiller(t, s, o)

	const n = 5
	type result struct {
		res     *tiers.Result
		err     error
		claimed bool
		body    []byte
		readErr error
	}
	results := make([]result, n)
	ctxs := make([]*waitingCtx, n)
	var wg sync.WaitGroup
	for i := range n {
		ctxs[i] = newWaitingCtx(t.Context())
		wg.Go(func() {
			r, req := result{}, request("/p")
			r.res, r.err = f.Fill(ctxs[i], req)
			if r.err == nil && r.res.Pass != nil && r.res.Pass.Claim(req) {
				r.claimed = true
				r.body, r.readErr = io.ReadAll(r.res.Pass.Body)
				r.res.Pass.Body.Close()
			}
			results[i] = r
		})
	}
	waitJoined(t, ctxs...)
	o.release()
	wg.Wait()

	claims := 0
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("Fill %d: %v", i, r.err)
		}
		if r.res.Entry != nil || r.res.Pass == nil || r.res.Pass != results[0].res.Pass {
			t.Fatalf("Fill %d = %+v, want the one Pass of the flight", i, r.res)
		}
		if r.res.NotStored != "no-store" {
			t.Errorf("Fill %d: NotStored = %q, want no-store", i, r.res.NotStored)
		}
		if !r.claimed {
			continue
		}
		claims++
		if r.readErr != nil || !bytes.Equal(r.body, body) {
			t.Errorf("claimed body: %d bytes, error %v; want the %d bytes sent", len(r.body), r.readErr, len(body))
		}
	}
	if claims != 1 {
		t.Errorf("%d callers claimed the Pass, want 1", claims)
	}
	p := results[0].res.Pass
	if p.Status != http.StatusOK || p.Reason != "no-store" || p.Length != int64(len(body)) {
		t.Errorf("Pass = status %d, reason %q, length %d; want 200, no-store, %d", p.Status, p.Reason, p.Length, len(body))
	}
	if got := o.hits.Load(); got != 1 {
		t.Errorf("origin requests = %d, want 1", got)
	}
	if got := s.Peek("/p"); got != nil {
		t.Errorf("stored %+v for a no-store response, want nothing", got)
	}
}

func TestAResponseLargerThanMaxObjectBytesIsPassedWhole(t *testing.T) {
	const limit = 1000
	tests := []struct {
		name    string
		size    int
		chunked bool // no Content-Length
		pass    bool
	}{
		{"content-length over the limit", 5 * limit, false, true},
		{"chunked over the limit", 5 * limit, true, true},
		{"chunked one byte over the limit", limit + 1, true, true},
		{"content-length at the limit", limit, false, false},
		{"chunked at the limit", limit, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := make([]byte, tt.size)
			for i := range body {
				body[i] = byte('a' + i%26)
			}
			o := newTestOrigin(t, false, func(w http.ResponseWriter, _ *http.Request, _ int64) {
				w.Header().Set("Cache-Control", "max-age=60")
				if !tt.chunked {
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
					w.Write(body)
					return
				}
				for b := body; len(b) > 0; {
					n := min(len(b), 100)
					w.Write(b[:n])
					w.(http.Flusher).Flush()
					b = b[n:]
				}
			})
			s := newTestStore(t, nil)
			f := newTestFiller(t, s, o)
			f.MaxObjectBytes = limit

			r := request("/big")
			res, err := f.Fill(t.Context(), r)
			if err != nil {
				t.Fatalf("Fill: %v", err)
			}
			if !tt.pass {
				if res.Entry == nil || !bytes.Equal(res.Entry.Body, body) {
					t.Fatalf("Fill = %+v, want an entry with the %d bytes sent", res, len(body))
				}
				if variant(s, "/big") != res.Entry {
					t.Errorf("a body of exactly MaxObjectBytes was not stored")
				}
				return
			}
			if res.Entry != nil || res.Pass == nil {
				t.Fatalf("Fill = %+v, want a Pass", res)
			}
			if res.NotStored != "too-big" || res.Pass.Reason != "too-big" {
				t.Errorf("NotStored, Reason = %q, %q; want too-big", res.NotStored, res.Pass.Reason)
			}
			wantLen := int64(len(body))
			if tt.chunked {
				wantLen = -1
			}
			if res.Pass.Length != wantLen {
				t.Errorf("Pass.Length = %d, want %d", res.Pass.Length, wantLen)
			}
			if !res.Pass.Claim(r) {
				t.Fatal("Pass.Claim(r) = false for the request it was fetched for")
			}
			got, err := io.ReadAll(res.Pass.Body)
			res.Pass.Body.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("Pass body: %d bytes, error %v; want the %d bytes sent", len(got), err, len(body))
			}
			if s.Peek("/big") != nil || f.Stats.Stored.Load() != 0 {
				t.Errorf("a body over MaxObjectBytes was stored")
			}
		})
	}
}

// staleEntry is a stored response to key that went stale a minute ago, with validators.
func staleEntry(key string) *tiers.Entry {
	return &tiers.Entry{
		Key:          key,
		Status:       http.StatusOK,
		Header:       []tiers.Field{{Name: "Content-Type", Value: "text/plain"}, {Name: "X-Kept", Value: "a"}, {Name: "X-Kept", Value: "b"}},
		Body:         []byte("old body"),
		ETag:         `"v1"`,
		OriginETag:   true,
		LastModified: "Wed, 21 Oct 2015 07:28:00 GMT",
		Stored:       time.Now().Add(-2 * time.Minute),
		Fresh:        time.Minute,

		StaleWhileRevalidate: time.Hour,
	}
}

// revalidatingOrigin answers 304 with cacheControl to a request whose validators match the
// stale entry's (If-None-Match "v1", or without it an If-Modified-Since) and records them.
func revalidatingOrigin(t *testing.T, cacheControl string) (o *testOrigin, validators func() (inm, ims string)) {
	var mu sync.Mutex
	var inm, ims string
	o = newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, _ int64) {
		mu.Lock()
		inm, ims = r.Header.Get("If-None-Match"), r.Header.Get("If-Modified-Since")
		mu.Unlock()
		w.Header().Set("Cache-Control", cacheControl)
		inm := r.Header.Get("If-None-Match")
		if inm == `"v1"` || inm == "" && r.Header.Get("If-Modified-Since") != "" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "new body")
	})
	return o, func() (string, string) {
		mu.Lock()
		defer mu.Unlock()
		return inm, ims
	}
}

func TestRevalidationRenewsTheStaleEntryOn304(t *testing.T) {
	tests := []struct {
		name       string
		originETag bool   // the stale entry's ETag came from the origin (else swrproxy computed it)
		wantINM    string // If-None-Match sent
	}{
		{"origin etag", true, `"v1"`},
		{"computed etag", false, ""}, // meaningless to the origin: If-Modified-Since only
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, validators := revalidatingOrigin(t, "max-age=120")
			s := newTestStore(t, nil)
			f := newTestFiller(t, s, o)
			old := staleEntry("/r")
			old.OriginETag = tt.originETag
			if err := s.Set(t.Context(), old); err != nil {
				t.Fatalf("Set(stale entry): %v", err)
			}
			r := request("/r")
			r.Stale = old

			before := time.Now()
			res, err := f.Fill(t.Context(), r)
			if err != nil {
				t.Fatalf("Fill: %v", err)
			}
			if inm, ims := validators(); inm != tt.wantINM || ims != old.LastModified {
				t.Errorf("origin got If-None-Match %q, If-Modified-Since %q; want %q, %q", inm, ims, tt.wantINM, old.LastModified)
			}
			if got := o.hits.Load(); got != 1 {
				t.Errorf("origin requests = %d, want 1", got)
			}
			e := res.Entry
			if !res.Revalidated || e == nil {
				t.Fatalf("Fill = %+v, want Revalidated with an entry", res)
			}
			if string(e.Body) != "old body" || e.ETag != old.ETag || e.Status != http.StatusOK {
				t.Errorf("renewed entry: status %d, ETag %s, body %q; want the stale entry's 200, %s, %q", e.Status, e.ETag, e.Body, old.ETag, old.Body)
			}
			if e.Stored.Before(before) {
				t.Errorf("renewed entry Stored = %v, want the time of the 304 (after %v)", e.Stored, before)
			}
			if e.Fresh != 120*time.Second {
				t.Errorf("renewed entry Fresh = %v, want 2m0s from the 304's max-age", e.Fresh)
			}
			if got := fieldValues(e, "X-Kept"); !slices.Equal(got, []string{"a", "b"}) {
				t.Errorf("renewed entry X-Kept = %q, want the stored [a b]", got)
			}
			if got := fieldValues(e, "Content-Type"); !slices.Equal(got, []string{"text/plain"}) {
				t.Errorf("renewed entry Content-Type = %q, want the stored [text/plain]", got)
			}
			if got := fieldValues(e, "Cache-Control"); !slices.Equal(got, []string{"max-age=120"}) {
				t.Errorf("renewed entry Cache-Control = %q, want the 304's [max-age=120]", got)
			}
			if got := variant(s, "/r"); got != e {
				t.Errorf("store holds %p, want the renewed entry %p", got, e)
			}
			if got := f.Stats.Revalidated.Load(); got != 1 {
				t.Errorf("Stats.Revalidated = %d, want 1", got)
			}

			// The next revalidation asks the same question: a computed tag does not become the origin's.
			if e.OriginETag != tt.originETag {
				t.Errorf("renewed entry OriginETag = %v, want %v as before", e.OriginETag, tt.originETag)
			}
			r = request("/r")
			r.Stale = e
			if _, err := f.Fill(t.Context(), r); err != nil {
				t.Fatalf("second Fill: %v", err)
			}
			if inm, _ := validators(); inm != tt.wantINM {
				t.Errorf("second revalidation sent If-None-Match %q, want %q", inm, tt.wantINM)
			}
		})
	}
}

func TestA304ThatForbidsStorageDeletesTheEntry(t *testing.T) {
	o, _ := revalidatingOrigin(t, "no-store")
	s := newTestStore(t, nil)
	f := newTestFiller(t, s, o)
	old := staleEntry("/r")
	if err := s.Set(t.Context(), old); err != nil {
		t.Fatalf("Set(stale entry): %v", err)
	}
	r := request("/r")
	r.Stale = old

	res, err := f.Fill(t.Context(), r)
	var ue *upstream.Error
	if !errors.As(err, &ue) {
		t.Fatalf("Fill = %+v, %v; want an *upstream.Error", res, err)
	}
	if variant(s, "/r") != nil {
		t.Errorf("the entry is still stored after a 304 with no-store")
	}
	if got := f.Stats.Revalidated.Load(); got != 0 {
		t.Errorf("Stats.Revalidated = %d, want 0", got)
	}
}

func TestAFillAfterForgetMakesItsOwnOriginRequest(t *testing.T) {
	o := newTestOrigin(t, true, cacheable)
	f := newTestFiller(t, newTestStore(t, nil), o)

	var wg sync.WaitGroup
	var first, second *tiers.Result
	var err1, err2 error
	wg.Go(func() { first, err1 = f.Fill(t.Context(), request("/a")) })
	testenv.WaitFor(t, 5*time.Second, "the first origin request", func() bool { return o.hits.Load() == 1 })
	f.Forget("/a") // an invalidation landed: what the running fetch brings may be old
	wg.Go(func() { second, err2 = f.Fill(t.Context(), request("/a")) })
	testenv.WaitFor(t, 5*time.Second, "a second origin request after Forget", func() bool { return o.hits.Load() == 2 })
	o.release()
	wg.Wait()

	if err1 != nil || err2 != nil {
		t.Fatalf("Fill errors: %v, %v", err1, err2)
	}
	if string(first.Entry.Body) != "v1" || string(second.Entry.Body) != "v2" {
		t.Errorf("bodies = %q, %q; want v1 for the fill before Forget and v2 for the one after", first.Entry.Body, second.Entry.Body)
	}
	if second.Shared {
		t.Error("the fill after Forget is Shared, want its own")
	}
}

func TestAPurgeDuringAFetchIsNotUndone(t *testing.T) {
	tests := []struct {
		name  string
		redis bool
	}{
		{"l1 only", false},
		{"l1 and redis", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rdb redis.UniversalClient
			if tt.redis {
				rdb = redistest.Start(t).Client()
			}
			o := newTestOrigin(t, true, cacheable)
			s := newTestStore(t, rdb)
			f := newTestFiller(t, s, o)
			ctx := t.Context()

			var wg sync.WaitGroup
			var res *tiers.Result
			var err error
			wg.Go(func() { res, err = f.Fill(ctx, request("/a")) })
			testenv.WaitFor(t, 5*time.Second, "the origin request", func() bool { return o.hits.Load() == 1 })
			if err := s.Delete(ctx, "/a"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			o.release()
			wg.Wait()

			if err != nil {
				t.Fatalf("Fill: %v", err)
			}
			if res.Entry == nil || string(res.Entry.Body) != "v1" {
				t.Errorf("Fill = %+v, want the fetched v1 served to its caller", res)
			}
			if res.NotStored != "invalidated" {
				t.Errorf("NotStored = %q, want invalidated", res.NotStored)
			}
			if got := f.Stats.Stored.Load(); got != 0 {
				t.Errorf("Stats.Stored = %d, want 0", got)
			}
			obj, err := s.GetL2(ctx, "/a") // L2, or L1 without Redis
			if err != nil {
				t.Fatalf("GetL2: %v", err)
			}
			if obj != nil && len(obj.Variants) > 0 {
				t.Fatalf("store holds %d variants after the purge, want none", len(obj.Variants))
			}
			if variant(s, "/a") != nil {
				t.Errorf("L1 holds a variant after the purge, want none")
			}

			// A fill that begins after the purge, under the new generation, is stored.
			obj, _, err = s.Get(ctx, "/a")
			if err != nil || obj == nil {
				t.Fatalf("Get after purge = %v, %v; want the generation-only object", obj, err)
			}
			r := request("/a")
			r.Gen = obj.Gen
			res, err = f.Fill(ctx, r)
			if err != nil || res.NotStored != "" || res.Entry == nil || string(res.Entry.Body) != "v2" {
				t.Fatalf("Fill after purge = %+v, %v; want v2 stored", res, err)
			}
			if variant(s, "/a") == nil {
				t.Errorf("the fill after the purge was not stored")
			}
		})
	}
}

// fetchFunc adapts a function to Fetcher.
type fetchFunc func(ctx context.Context, r *upstream.Request) (*http.Response, error)

func (f fetchFunc) Do(ctx context.Context, r *upstream.Request) (*http.Response, error) {
	return f(ctx, r)
}

// fillRecovering calls f.Fill and turns a panic that escapes it into a value, so one failing case
// does not end the test binary.
func fillRecovering(f *Filler, r *tiers.Request) (res *tiers.Result, panicked any, err error) {
	defer func() { panicked = recover() }()
	res, err = f.Fill(context.Background(), r)
	return res, nil, err
}

func TestAPanicInTheOriginIsReturnedAsAnError(t *testing.T) {
	tests := []struct {
		name  string
		redis bool
		set   func(r *tiers.Request)
	}{
		{"collapsed", false, func(*tiers.Request) {}},
		{"collapsed, with redis", true, func(*tiers.Request) {}},
		{"authorization", false, func(r *tiers.Request) { r.Authorization = true }},
		{"alone", false, func(r *tiers.Request) { r.Alone = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rdb redis.UniversalClient
			if tt.redis {
				rdb = redistest.Start(t).Client()
			}
			o := newTestOrigin(t, false, cacheable)
			s := newTestStore(t, rdb)
			f := newTestFiller(t, s, o)
			working := f.Origin
			f.Origin = fetchFunc(func(context.Context, *upstream.Request) (*http.Response, error) {
				panic("origin client bug")
			})

			r := request("/a")
			tt.set(r)
			res, panicked, err := fillRecovering(f, r)
			if panicked != nil {
				t.Fatalf("Fill panicked with %v; want the panic returned as an error", panicked)
			}
			if res != nil || !errors.Is(err, errPanic) {
				t.Errorf("Fill = %+v, %v; want an error wrapping errPanic", res, err)
			}
			if s.Locked(t.Context(), "/a") {
				t.Error("the fetch lock is still held after the panic")
			}

			// The key is not stuck: the next fill reaches the origin.
			f.Origin = working
			res, err = f.Fill(t.Context(), request("/a"))
			if err != nil || res.Entry == nil || string(res.Entry.Body) != "v1" {
				t.Errorf("Fill after the panic = %+v, %v; want v1 from the origin", res, err)
			}
		})
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
	var res1, res2 *tiers.Result
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

// A fill forwards only the fields it knows the key to vary on. When the origin turns out to vary
// on a field the client sent and the fill did not, Fill asks again with it, and stores the
// variant under what the origin was asked; the key's Vary is remembered, so the next cold miss
// of the key asks once.
func TestAFillAsksAgainWithAFieldTheOriginVariesOnAndRemembersIt(t *testing.T) {
	var seen sync.Map // request number → X-Tenant it carried
	o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, n int64) {
		seen.Store(n, r.Header.Get("X-Tenant"))
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "X-Tenant")
		io.WriteString(w, "tenant="+r.Header.Get("X-Tenant"))
	})
	s := newTestStore(t, nil)
	f := newTestFiller(t, s, o)
	fill := func() *tiers.Result {
		t.Helper()
		r := request("/t")
		client := http.Header{"X-Tenant": {"acme"}}
		r.Value = func(n string) string { return httpcache.VaryValue(n, client.Get(n)) }
		r.Field = func(n string) string { return client.Get(n) }
		res, err := f.Fill(t.Context(), r)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := fill()
	if got := string(res.Entry.Body); got != "tenant=acme" || o.hits.Load() != 2 {
		t.Fatalf("first fill: %q after %d origin requests, want tenant=acme after 2", got, o.hits.Load())
	}
	if v, _ := seen.Load(int64(1)); v != "" {
		t.Errorf("the first request carried X-Tenant %q: a fill must not forward an unkeyed field", v)
	}
	// The variant without the field was the origin's answer to a request without it: stored so.
	if e := s.Peek("/t").Variant(func(string) string { return "" }); e == nil || string(e.Body) != "tenant=" {
		t.Errorf("the variant for no X-Tenant = %+v, want the origin's answer without it", e)
	}
	if err := s.Delete(t.Context(), "/t"); err != nil { // gone, as when every variant expired
		t.Fatal(err)
	}
	fill()
	if n := o.hits.Load(); n != 3 {
		t.Errorf("after the variants were gone, the next fill made %d origin requests, want 1 (the key's Vary is remembered)", n-2)
	}
}
