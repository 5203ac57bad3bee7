package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

func TestMissThenHitWithAgeETagAndCacheStatus(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("Link", "</a>; rel=preload")
		w.Header().Add("Link", "</b>; rel=preload")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.RequestURI())
	})
	p := startProxy(t, o.URL, nil)

	r := get(t, p.URL+"/api/prices?pair=ALGO-USD")
	expect(t, r, 200, "MISS", `{"path":"/api/prices?pair=ALGO-USD"}`)
	if got := r.Header.Get("Cache-Status"); got != "swrproxy; fwd=miss; stored" {
		t.Errorf("Cache-Status = %q", got)
	}
	r = get(t, p.URL+"/api/prices?pair=ALGO-USD")
	expect(t, r, 200, "HIT", `{"path":"/api/prices?pair=ALGO-USD"}`)
	if got := r.Header.Get("Cache-Status"); got != "swrproxy; hit; detail=l1" {
		t.Errorf("Cache-Status = %q", got)
	}
	if r.Header.Get("Age") == "" {
		t.Error("no Age header on a cached reply")
	}
	if et := r.Header.Get("ETag"); !strings.HasPrefix(et, `"`) || len(et) != 24 {
		t.Errorf("computed ETag = %q, want a quoted strong tag", et)
	}
	if got := r.Header.Values("Link"); len(got) != 2 || got[0] != "</a>; rel=preload" || got[1] != "</b>; rel=preload" {
		t.Errorf("Link = %q, want both values in order", got)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin hits = %d, want 1", n)
	}
}

func TestQueryStringIsPartOfTheKey(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.URL.RawQuery)
	})
	p := startProxy(t, o.URL, nil)
	expect(t, get(t, p.URL+"/x?a=1"), 200, "MISS", "a=1")
	expect(t, get(t, p.URL+"/x?a=2"), 200, "MISS", "a=2")
	expect(t, get(t, p.URL+"/x?a=1"), 200, "HIT", "a=1")
	expect(t, get(t, p.URL+"/x?a=2"), 200, "HIT", "a=2")
}

func TestTwoInstancesShareOneRedis(t *testing.T) {
	rs := redistest.Start(t)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "shared body")
	})
	a := startProxy(t, o.URL, map[string]string{"SWR_REDIS_URL": rs.URL()})
	b := startProxy(t, o.URL, map[string]string{"SWR_REDIS_URL": rs.URL()})

	expect(t, get(t, a.URL+"/k"), 200, "MISS", "shared body")
	r := get(t, b.URL+"/k")
	expect(t, r, 200, "HIT", "shared body")
	if got := r.Header.Get("Cache-Status"); got != "swrproxy; hit; detail=l2" {
		t.Errorf("B's Cache-Status = %q, want an L2 hit", got)
	}
	expect(t, get(t, b.URL+"/k"), 200, "HIT", "shared body") // now from B's L1
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin hits = %d, want 1", n)
	}
}

func TestConcurrentMissesOverTwoInstancesMakeOneOriginRequest(t *testing.T) {
	rs := redistest.Start(t)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "cold")
	})
	env := map[string]string{"SWR_REDIS_URL": rs.URL()}
	insts := []*instance{startProxy(t, o.URL, env), startProxy(t, o.URL, env)}

	var wg sync.WaitGroup
	replies := make([]reply, 200)
	start := make(chan struct{})
	for i := range replies {
		wg.Go(func() {
			<-start
			replies[i] = do(http.MethodGet, insts[i%2].URL+"/cold")
		})
	}
	close(start)
	wg.Wait()
	for i, r := range replies {
		if r.StatusCode != 200 || r.Body != "cold" {
			t.Fatalf("client %d got %d %q", i, r.StatusCode, trim(r.Body))
		}
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin hits = %d, want exactly 1 for 200 concurrent clients on 2 instances", n)
	}
}

func TestStaleIsServedWithoutWaitingThenRefreshed(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	version := 1
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		v := version
		mu.Unlock()
		if v > 1 {
			<-release // a slow origin: the refresh hangs until the test lets it go
		}
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=60")
		fmt.Fprintf(w, "v%d", v)
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_REFRESH_WINDOW": "0"}) // no refresh-ahead: let it go stale
	expect(t, get(t, p.URL+"/s"), 200, "MISS", "v1")
	mu.Lock()
	version = 2
	mu.Unlock()
	waitFor(t, 5*time.Second, "the entry to go stale", func() bool {
		return get(t, p.URL+"/s").Header.Get("X-Cache") == "STALE"
	})
	// The origin is blocked, yet the stale copy comes at once.
	r := get(t, p.URL+"/s")
	expect(t, r, 200, "STALE", "v1")
	if got := r.Header.Get("Cache-Status"); got != "swrproxy; fwd=stale; detail=revalidating" {
		t.Errorf("Cache-Status = %q", got)
	}
	close(release)
	waitFor(t, 5*time.Second, "the refreshed body", func() bool { return get(t, p.URL+"/s").Body == "v2" })
}

func TestRevalidationWith304RenewsTheEntryWithoutABody(t *testing.T) {
	var bodies, notModified atomicCounter
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("X-Version", fmt.Sprint(bodies.load()+notModified.load()))
		if r.Header.Get("If-None-Match") == `"v1"` {
			notModified.add()
			w.WriteHeader(http.StatusNotModified)
			return
		}
		bodies.add()
		fmt.Fprint(w, "body v1")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_STALE_WHILE_REVALIDATE": "0", "SWR_REFRESH_WINDOW": "0"})
	expect(t, get(t, p.URL+"/r"), 200, "MISS", "body v1")
	time.Sleep(1100 * time.Millisecond) // let max-age=1 run out; no stale window, so the next request revalidates
	r := get(t, p.URL+"/r")
	expect(t, r, 200, "MISS", "body v1")
	if got := r.Header.Get("Cache-Status"); !strings.Contains(got, "fwd-status=304") {
		t.Errorf("Cache-Status = %q, want a 304 revalidation", got)
	}
	if r.Header.Get("X-Version") != "1" {
		t.Errorf("X-Version = %q: the 304's headers did not update the entry", r.Header.Get("X-Version"))
	}
	expect(t, get(t, p.URL+"/r"), 200, "HIT", "body v1")
	if bodies.load() != 1 || notModified.load() != 1 {
		t.Errorf("origin sent %d bodies and %d 304s, want 1 and 1", bodies.load(), notModified.load())
	}
}

type atomicCounter struct {
	mu sync.Mutex
	n  int
}

func (c *atomicCounter) add() { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *atomicCounter) load() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
