package main

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCollapsedRequestsNeverGetAnotherUsersPrivateResponse(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond)
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
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
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

func TestA429DuringRevalidationKeepsServingTheStaleCopy(t *testing.T) {
	var limited atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if limited.Load() {
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		w.Header().Set("Cache-Control", "max-age=1, stale-if-error=3600")
		fmt.Fprint(w, "good")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_STALE_WHILE_REVALIDATE": "0", "SWR_REFRESH_WINDOW": "0"})
	expect(t, get(t, p.URL+"/rl"), 200, "MISS", "good")
	limited.Store(true)
	time.Sleep(1100 * time.Millisecond)
	for range 3 {
		expect(t, get(t, p.URL+"/rl"), 200, "STALE", "good")
	}
	limited.Store(false)
	expect(t, get(t, p.URL+"/rl"), 200, "MISS", "good")
}

func TestNoCacheResponsesAreStoredAndRevalidatedEveryTime(t *testing.T) {
	var full, notModified atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", `"nc1"`)
		if r.Header.Get("If-None-Match") == `"nc1"` {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		full.Add(1)
		fmt.Fprint(w, "revalidate me")
	})
	p := startProxy(t, o.URL, nil)
	for range 3 {
		if r := get(t, p.URL+"/nc"); r.Body != "revalidate me" {
			t.Fatalf("body %q", r.Body)
		}
	}
	if full.Load() != 1 || notModified.Load() != 2 {
		t.Errorf("origin sent %d bodies and %d 304s, want 1 and 2", full.Load(), notModified.Load())
	}
}

func TestLastModifiedAloneIsEnoughToRevalidate(t *testing.T) {
	var full, notModified atomic.Int64
	const lm = "Mon, 02 Jan 2006 15:04:05 GMT"
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1")
		w.Header().Set("Last-Modified", lm)
		if r.Header.Get("If-None-Match") == "" && r.Header.Get("If-Modified-Since") == lm {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		full.Add(1)
		fmt.Fprint(w, "dated")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_STALE_WHILE_REVALIDATE": "0", "SWR_REFRESH_WINDOW": "0"})
	get(t, p.URL+"/lm")
	time.Sleep(1100 * time.Millisecond)
	if r := get(t, p.URL+"/lm"); r.Body != "dated" {
		t.Fatalf("body %q", r.Body)
	}
	if full.Load() != 1 || notModified.Load() != 1 {
		t.Errorf("origin sent %d bodies and %d 304s, want 1 and 1", full.Load(), notModified.Load())
	}
}

func TestRefreshAheadAsksTheOriginWhatTheClientAsked(t *testing.T) {
	seen := make(chan http.Header, 16)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.Header().Set("Cache-Control", "max-age=1")
		fmt.Fprint(w, "x")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_REFRESH_WINDOW": "1m"})
	get(t, p.URL+"/ahead", "Accept", "application/json", "User-Agent", "poller/1.0", "X-Forwarded-Proto", "https", "Cookie", "secret=1")
	first := <-seen
	var refresh http.Header
	select {
	case refresh = <-seen:
	case <-time.After(5 * time.Second):
		t.Fatal("no refresh-ahead within 5s")
	}
	for _, h := range []string{"Accept", "User-Agent", "X-Forwarded-Proto"} {
		if refresh.Get(h) != first.Get(h) {
			t.Errorf("refresh sent %s=%q, the fill %q", h, refresh.Get(h), first.Get(h))
		}
	}
	if refresh.Get("Cookie") != "" {
		t.Errorf("refresh replayed the client's Cookie %q", refresh.Get("Cookie"))
	}
}
