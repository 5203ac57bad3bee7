package invalidate

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
	"github.com/swrproxy/swrproxy/tiers"
)

// refresher records the refresh work a service orders; hot names the keys it calls hot.
type refresher struct {
	mu        sync.Mutex
	hot       map[string]bool
	refreshed []string // keys of the variants queued
	forgotten []string
}

func (r *refresher) Refresh(e *tiers.Entry, gen uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refreshed = append(r.refreshed, e.Key)
	return true
}

func (r *refresher) Forget(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgotten = append(r.forgotten, key)
}

func (r *refresher) Hot(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hot[key]
}

func (r *refresher) queued() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.refreshed)
}

var quiet = slog.New(slog.DiscardHandler)

// newStore returns a real store over rdb (nil: L1 only), running until the test ends.
func newStore(t *testing.T, rdb redis.UniversalClient) *tiers.Store {
	t.Helper()
	s, err := tiers.New(tiers.Options{L1MaxBytes: 1 << 20, L1MaxTTL: time.Minute, Redis: rdb, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	start(t, s.Run)
	return s
}

// start runs a Run loop until the test ends.
func start(t *testing.T, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// put stores a fresh 200 for key, with the given Surrogate-Key tags.
func put(t *testing.T, s *tiers.Store, key string, tags ...string) {
	t.Helper()
	err := s.Set(context.Background(), &tiers.Entry{
		Key: key, Status: 200, Body: []byte(key), ETag: strconv.Quote(key), Tags: tags,
		Stored: time.Now(), Fresh: time.Hour, StaleWhileRevalidate: time.Minute,
	})
	if err != nil {
		t.Fatalf("store %s: %v", key, err)
	}
}

// cached reports whether key has a copy in s (L1 or L2).
func cached(t *testing.T, s *tiers.Store, key string) bool {
	t.Helper()
	o, _, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return o != nil && len(o.Variants) > 0
}

// newService returns a service over a real store on topo (nil: L1 only).
func newService(t *testing.T, topo redistest.Topology) (*Service, *tiers.Store, *refresher) {
	t.Helper()
	var rdb redis.UniversalClient
	var bus *Bus
	if topo != nil {
		c := topo.Connect(t)
		rdb, bus = c, NewBus(c, quiet)
	}
	store := newStore(t, rdb)
	r := &refresher{hot: map[string]bool{}}
	s := New(store, r, bus, quiet)
	start(t, s.Run)
	return s, store, r
}

func TestParseRequestReadsHostSlashPathAsAKeyWithKeyHost(t *testing.T) {
	body := []byte(`{"keys":["Example.COM:80/a?x=1","/b"],"prefixes":["example.com/api/"]}`)
	r, err := ParseRequest(body, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{httpcache.Key("example.com", "/a?x=1"), "/b"}
	if !slices.Equal(r.Keys, want) || r.Prefixes[0] != httpcache.Key("example.com", "/api/") {
		t.Errorf("keys %q prefixes %q, want %q and %q", r.Keys, r.Prefixes, want, httpcache.Key("example.com", "/api/"))
	}
	r, err = ParseRequest(body, false)
	if err != nil || r.Keys[0] != "Example.COM:80/a?x=1" || r.Mode != Auto {
		t.Errorf("without SWR_KEY_HOST: %+v, %v; want the keys as sent and mode auto", r, err)
	}
	if _, err := ParseRequest([]byte(`{"mode":"clear"}`), true); err == nil {
		t.Error("an empty selection was accepted")
	}
}

func testClearRemovesTheKeyFromBothTiersAndEveryInstanceAcknowledges(t *testing.T, topo redistest.Topology) {
	for _, topo := range []redistest.Topology{topo, nil} {
		t.Run("redis="+strconv.FormatBool(topo != nil), func(t *testing.T) {
			s, store, r := newService(t, topo)
			put(t, store, "/a")
			put(t, store, "/b")
			res, err := s.Apply(context.Background(), Request{Keys: []string{"/a", "/missing"}, Mode: Clear})
			if err != nil {
				t.Fatal(err)
			}
			want := Result{Mode: Clear, Matched: 1, Cleared: 1, Instances: 1, Acknowledged: 1, Complete: true}
			if res != want {
				t.Errorf("result %+v, want %+v", res, want)
			}
			if cached(t, store, "/a") || !cached(t, store, "/b") {
				t.Error("want /a cleared and /b kept")
			}
			if !slices.Contains(r.forgotten, "/a") {
				t.Error("the in-flight fetch of /a was not forgotten")
			}
		})
	}
}

func testRefreshKeepsTheCopyAsStaleAndQueuesItsVariants(t *testing.T, topo redistest.Topology) {
	s, store, r := newService(t, topo)
	put(t, store, "/a")
	res, err := s.Apply(context.Background(), Request{Keys: []string{"/a"}, Mode: Refresh})
	if err != nil {
		t.Fatal(err)
	}
	if res.Matched != 1 || res.Cleared != 0 || res.Refreshing != 1 || !res.Complete {
		t.Errorf("result %+v, want 1 matched and refreshing, none cleared", res)
	}
	if got := r.queued(); !slices.Equal(got, []string{"/a"}) {
		t.Errorf("refreshes queued for %q, want /a", got)
	}
	o, err := store.GetL2(context.Background(), "/a")
	if err != nil || o == nil || len(o.Variants) != 1 || o.Variants[0].Gen >= o.Gen {
		t.Fatalf("L2 object %+v, %v: want the old variant kept under a newer generation (stale)", o, err)
	}
	if st := s.Stats(); st != (Stats{Requests: 1, Refreshed: 1}) {
		t.Errorf("stats %+v", st)
	}
}

func testAutoRefreshesHotKeysAndClearsColdOnes(t *testing.T, topo redistest.Topology) {
	s, store, r := newService(t, topo)
	for _, k := range []string{"/hot-here", "/hot-elsewhere", "/cold"} {
		put(t, store, k)
	}
	r.hot["/hot-here"] = true // served by this instance within the window
	if err := store.MarkHot(context.Background(), []string{"/hot-elsewhere"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	res, err := s.Apply(context.Background(), Request{Prefixes: []string{"/"}, Mode: Auto})
	if err != nil {
		t.Fatal(err)
	}
	if res.Matched != 3 || res.Cleared != 1 || res.Refreshing != 2 {
		t.Errorf("result %+v, want 3 matched, 1 cleared, 2 refreshing", res)
	}
	got := r.queued()
	slices.Sort(got)
	if !slices.Equal(got, []string{"/hot-elsewhere", "/hot-here"}) || cached(t, store, "/cold") {
		t.Errorf("refreshed %q and /cold cached=%v; want the hot keys refreshed and /cold cleared", got, cached(t, store, "/cold"))
	}
	if st := s.Stats(); st != (Stats{Requests: 1, Cleared: 1, Refreshed: 2}) {
		t.Errorf("stats %+v", st)
	}
}

func testPrefixesTagsAndAllSelectTheirKeys(t *testing.T, topo redistest.Topology) {
	for _, topo := range []redistest.Topology{topo, nil} {
		t.Run("redis="+strconv.FormatBool(topo != nil), func(t *testing.T) {
			tests := []struct {
				req  Request
				gone []string
			}{
				{Request{Prefixes: []string{"/a/"}}, []string{"/a/1", "/a/2"}},
				{Request{Tags: []string{"t1"}}, []string{"/a/1", "/b/1"}},
				{Request{Keys: []string{"/c"}, Tags: []string{"t2"}}, []string{"/b/1", "/c"}},
				{Request{All: true}, []string{"/a/1", "/a/2", "/b/1", "/c"}},
			}
			for _, tt := range tests {
				if topo != nil {
					topo.Flush(t)
				}
				s, store, _ := newService(t, topo)
				put(t, store, "/a/1", "t1")
				put(t, store, "/a/2")
				put(t, store, "/b/1", "t1", "t2")
				put(t, store, "/c")
				tt.req.Mode = Clear
				if _, err := s.Apply(context.Background(), tt.req); err != nil {
					t.Fatal(err)
				}
				for _, k := range []string{"/a/1", "/a/2", "/b/1", "/c"} {
					if want := !slices.Contains(tt.gone, k); cached(t, store, k) != want {
						t.Errorf("%+v: %s cached = %v, want %v", tt.req, k, !want, want)
					}
				}
			}
		})
	}
}

// twoInstances starts two services, each with its store and bus, on topo, and
// waits until each sees the other's heartbeat.
func twoInstances(t *testing.T, topo redistest.Topology) ([2]*tiers.Store, [2]*Service) {
	t.Helper()
	var stores [2]*tiers.Store
	var services [2]*Service
	for i := range services {
		c := topo.Connect(t)
		stores[i] = newStore(t, c)
		services[i] = New(stores[i], &refresher{}, NewBus(c, quiet), quiet)
		start(t, services[i].Run)
	}
	testenv.WaitFor(t, 5*time.Second, "both heartbeats", func() bool { return services[0].bus.Live(context.Background()) == 2 })
	return stores, services
}

func testEveryInstanceDropsItsL1CopyBeforeTheReply(t *testing.T, topo redistest.Topology) {
	stores, services := twoInstances(t, topo)
	put(t, stores[0], "/a")
	if !cached(t, stores[1], "/a") { // promoted into instance 1's L1
		t.Fatal("instance 1 does not see /a")
	}
	if stores[1].Peek("/a") == nil {
		t.Fatal("/a is not in instance 1's L1")
	}
	res, err := services[0].Apply(context.Background(), Request{Prefixes: []string{"/"}, Mode: Clear})
	if err != nil {
		t.Fatal(err)
	}
	if res.Instances != 2 || res.Acknowledged != 2 || !res.Complete {
		t.Errorf("result %+v, want 2 instances acknowledged", res)
	}
	if o := stores[1].Peek("/a"); o != nil && len(o.Variants) > 0 {
		t.Error("instance 1 still holds /a in L1 after the reply")
	}
	if st := services[1].bus.Stats(); st.Live != 2 {
		t.Errorf("bus stats %+v, want 2 live", st)
	}
}

func testAWriteInvalidationClearsTheKeyWithoutWaitingForAcks(t *testing.T, topo redistest.Topology) {
	s, store, _ := newService(t, topo)
	put(t, store, "/a")
	s.Invalidate(context.Background(), "/a")
	if cached(t, store, "/a") {
		t.Error("/a is still cached")
	}
	if st := s.Stats(); st != (Stats{Requests: 1, Cleared: 1}) {
		t.Errorf("stats %+v", st)
	}
}

func TestRedisDownMakesTheInvalidationIncomplete(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	store := newStore(t, rdb)
	s := New(store, &refresher{}, NewBus(rdb, quiet), quiet)
	put(t, store, "/a")
	srv.Stop()
	res, err := s.Apply(context.Background(), Request{Keys: []string{"/a"}, Mode: Clear})
	if err == nil || res.Complete {
		t.Errorf("result %+v, err %v; want an error and complete=false", res, err)
	}
	if store.Peek("/a") != nil && len(store.Peek("/a").Variants) > 0 {
		t.Error("this instance still holds /a in L1")
	}
}

func testAKeyClearsItsKeyedVariantsInBothTiersOnEveryInstance(t *testing.T, topo redistest.Topology) {
	stores, services := twoInstances(t, topo)
	const eu, us = "/a\nX-Region: eu", "/a\nX-Region: us"
	put(t, stores[0], eu)
	put(t, stores[1], us)
	put(t, stores[0], "/ab\nX-Region: eu")
	for _, k := range []string{eu, us} {
		for i, st := range stores {
			if !cached(t, st, k) || st.Peek(k) == nil {
				t.Fatalf("instance %d does not hold %q in L1", i, k)
			}
		}
	}
	res, err := services[1].Apply(context.Background(), Request{Keys: []string{"/a"}, Mode: Clear})
	if err != nil {
		t.Fatal(err)
	}
	if res.Matched != 2 || res.Cleared != 2 || !res.Complete {
		t.Errorf("result %+v, want both keyed variants of /a matched and cleared", res)
	}
	for i, st := range stores {
		for _, k := range []string{eu, us} {
			if o := st.Peek(k); o != nil && len(o.Variants) > 0 {
				t.Errorf("instance %d still holds %q in L1", i, k)
			}
			if cached(t, st, k) {
				t.Errorf("instance %d still reads %q", i, k)
			}
		}
	}
	if !cached(t, stores[0], "/ab\nX-Region: eu") {
		t.Error("/ab's variant was cleared by /a")
	}
}
