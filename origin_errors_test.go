package main

// A failing origin, end to end: stale-if-error, 502 without a copy, and error or truncated answers never stored.

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

func TestOriginFailureServesStaleIfErrorThenErrors(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		// Age equal to max-age: the copy is stale on arrival, with one second of stale-if-error.
		w.Header().Set("Cache-Control", "max-age=1, stale-if-error=1")
		w.Header().Set("Age", "1")
		fmt.Fprint(w, "good")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_STALE_WHILE_REVALIDATE": "0", "SWR_REFRESH_WINDOW": "0"})
	expect(t, get(t, p.URL+"/e"), 200, "MISS", "good")
	failing.Store(true)
	r := get(t, p.URL+"/e")
	expect(t, r, 200, "STALE", "good")
	if got := r.Header.Get("Cache-Status"); got != "swrproxy; fwd=stale; detail=stale-if-error" {
		t.Errorf("Cache-Status = %q", got)
	}
	// Past the stale-if-error window the origin's own error is relayed, and it is not cached.
	// The window's end is what is under test: only time passing gets the copy there.
	time.Sleep(1100 * time.Millisecond) // past the stale-if-error window of 1 s
	r = get(t, p.URL+"/e")
	if r.StatusCode != 500 || r.Header.Get("X-Cache") == "HIT" {
		t.Fatalf("past the window got %d %s, want the origin's 500", r.StatusCode, r.Header.Get("X-Cache"))
	}
	failing.Store(false)
	expect(t, get(t, p.URL+"/e"), 200, "MISS", "good")
}

func TestOriginDownServesStaleAndA502WithoutCopy(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1")
		w.Header().Set("Age", "1") // stale on arrival
		fmt.Fprint(w, "cached")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_STALE_WHILE_REVALIDATE": "0", "SWR_STALE_IF_ERROR": "1h", "SWR_REFRESH_WINDOW": "0"})
	expect(t, get(t, p.URL+"/d"), 200, "MISS", "cached")
	o.Close() // connection refused from now on
	expect(t, get(t, p.URL+"/d"), 200, "STALE", "cached")
	r := get(t, p.URL+"/never-cached")
	if r.StatusCode != http.StatusBadGateway {
		t.Fatalf("uncached key with origin down: %d, want 502", r.StatusCode)
	}
}

func TestA429DuringRevalidationKeepsServingTheStaleCopy(t *testing.T) {
	t.Parallel()
	var limited atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if limited.Load() {
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		w.Header().Set("Cache-Control", "max-age=1, stale-if-error=3600")
		w.Header().Set("Age", "1") // stale on arrival
		fmt.Fprint(w, "good")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_STALE_WHILE_REVALIDATE": "0", "SWR_REFRESH_WINDOW": "0"})
	expect(t, get(t, p.URL+"/rl"), 200, "MISS", "good")
	limited.Store(true)
	for range 3 {
		expect(t, get(t, p.URL+"/rl"), 200, "STALE", "good")
	}
	limited.Store(false)
	expect(t, get(t, p.URL+"/rl"), 200, "MISS", "good")
}
