package main

// One origin request for many clients, in one instance and across instances (Redis, Redis
// Cluster): the stored entry is shared, a private answer or an error page is never handed to another user.

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

func testTwoInstancesShareOneRedis(t *testing.T, rs redistest.Topology) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "shared body")
	})
	a := startProxy(t, o.URL, map[string]string{"SWR_REDIS_URL": rs.URL(), "SWR_REDIS_MASTER_NAME": rs.MasterName(), "SWR_REDIS_SENTINEL_PASSWORD": rs.SentinelPassword()})
	b := startProxy(t, o.URL, map[string]string{"SWR_REDIS_URL": rs.URL(), "SWR_REDIS_MASTER_NAME": rs.MasterName(), "SWR_REDIS_SENTINEL_PASSWORD": rs.SentinelPassword()})

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

func testConcurrentMissesOverTwoInstancesMakeOneOriginRequest(t *testing.T, rs redistest.Topology) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond) // a slow origin: the misses overlap
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "cold")
	})
	env := map[string]string{"SWR_REDIS_URL": rs.URL(), "SWR_REDIS_MASTER_NAME": rs.MasterName(), "SWR_REDIS_SENTINEL_PASSWORD": rs.SentinelPassword()}
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

func TestCollapsedRequestsNeverGetAnotherUsersPrivateResponse(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond) // a slow origin: the requests overlap
		c, _ := r.Cookie("session")
		name := "anonymous"
		if c != nil {
			name = c.Value
		}
		w.Header().Set("Cache-Control", "private")
		w.Header().Set("Set-Cookie", "seen="+name)
		fmt.Fprint(w, "account of "+name)
	})
	p := startProxy(t, o.URL, nil)
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for i := range 40 {
		wg.Go(func() {
			user := "user" + strconv.Itoa(i)
			r := do(http.MethodGet, p.URL+"/account", "Cookie", "session="+user)
			if r.Body != "account of "+user || r.Header.Get("Set-Cookie") != "seen="+user {
				wrong.Add(1)
			}
		})
	}
	wg.Wait()
	if n := wrong.Load(); n > 0 {
		t.Fatalf("%d of 40 users got someone else's private page", n)
	}
}

func TestConcurrentRequestsShareOneOriginErrorPage(t *testing.T) {
	// Not parallel: its 20 requests must overlap within the origin's 200 ms.
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond) // a slow origin: the requests overlap
		w.Header().Set("Retry-After", "5")
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	})
	p := startProxy(t, o.URL, nil)
	var wg sync.WaitGroup
	replies := make([]reply, 20)
	for i := range replies {
		wg.Go(func() { replies[i] = do(http.MethodGet, p.URL+"/struggling") })
	}
	wg.Wait()
	for _, r := range replies {
		if r.StatusCode != 503 || r.Body != "overloaded\n" || r.Header.Get("Retry-After") != "5" {
			t.Fatalf("got %d %q, want the origin's 503 page", r.StatusCode, r.Body)
		}
	}
	if n := o.hits.Load(); n > 2 {
		t.Errorf("origin hits = %d for 20 concurrent requests of a failing URL, want 1", n)
	}
}
