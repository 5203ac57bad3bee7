package main

// A failing origin, end to end: stale-if-error, 502 without a copy, and error or truncated answers never stored.

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestOriginFailureServesStaleIfErrorThenErrors(t *testing.T) {
	var failing atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Cache-Control", "max-age=1, stale-if-error=2")
		fmt.Fprint(w, "good")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_STALE_WHILE_REVALIDATE": "0", "SWR_REFRESH_WINDOW": "0"})
	expect(t, get(t, p.URL+"/e"), 200, "MISS", "good")
	failing.Store(true)
	time.Sleep(1100 * time.Millisecond)
	r := get(t, p.URL+"/e")
	expect(t, r, 200, "STALE", "good")
	if got := r.Header.Get("Cache-Status"); got != "swrproxy; fwd=stale; detail=stale-if-error" {
		t.Errorf("Cache-Status = %q", got)
	}
	// Past the stale-if-error window the origin's own error is relayed, and it is not cached.
	time.Sleep(2 * time.Second)
	r = get(t, p.URL+"/e")
	if r.StatusCode != 500 || r.Header.Get("X-Cache") == "HIT" {
		t.Fatalf("past the window got %d %s, want the origin's 500", r.StatusCode, r.Header.Get("X-Cache"))
	}
	failing.Store(false)
	expect(t, get(t, p.URL+"/e"), 200, "MISS", "good")
}

func TestOriginDownServesStaleAndA502WithoutCopy(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1")
		fmt.Fprint(w, "cached")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_STALE_WHILE_REVALIDATE": "0", "SWR_STALE_IF_ERROR": "1h", "SWR_REFRESH_WINDOW": "0"})
	expect(t, get(t, p.URL+"/d"), 200, "MISS", "cached")
	o.Close() // connection refused from now on
	time.Sleep(1100 * time.Millisecond)
	expect(t, get(t, p.URL+"/d"), 200, "STALE", "cached")
	r := get(t, p.URL+"/never-cached")
	if r.StatusCode != http.StatusBadGateway {
		t.Fatalf("uncached key with origin down: %d, want 502", r.StatusCode)
	}
}

func TestFiveHundredsAreNeverCached(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	p := startProxy(t, o.URL, nil)
	for range 3 {
		if r := get(t, p.URL+"/503"); r.StatusCode != 503 {
			t.Fatalf("status %d, want 503 relayed", r.StatusCode)
		}
	}
	if n := o.hits.Load(); n != 3 {
		t.Errorf("origin hits = %d, want 3 (a 503 is never stored)", n)
	}
}

func TestTruncatedOriginBodyIsNeverStored(t *testing.T) {
	var calls atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(200)
			w.Write([]byte(strings.Repeat("x", 50)))
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close() // cut the body short
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "whole")
	})
	p := startProxy(t, o.URL, nil)
	if r := get(t, p.URL+"/cut"); r.StatusCode != http.StatusBadGateway {
		t.Fatalf("truncated body: got %d %q, want 502", r.StatusCode, trim(r.Body))
	}
	expect(t, get(t, p.URL+"/cut"), 200, "MISS", "whole")
	expect(t, get(t, p.URL+"/cut"), 200, "HIT", "whole")
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
