package main

// Stale-while-revalidate and refresh-ahead, end to end: a stale copy is served at once while it is
// refreshed, and background refreshes ask the origin what the client asked, without its credentials.

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/testenv"
)

func TestStaleIsServedWithoutWaitingThenRefreshed(t *testing.T) {
	t.Parallel()
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
	testenv.WaitFor(t, 5*time.Second, "the entry to go stale", func() bool {
		return get(t, p.URL+"/s").Header.Get("X-Cache") == "STALE"
	})
	// The origin is blocked, yet the stale copy comes at once.
	r := get(t, p.URL+"/s")
	expect(t, r, 200, "STALE", "v1")
	if got := r.Header.Get("Cache-Status"); got != "swrproxy; fwd=stale; detail=revalidating" {
		t.Errorf("Cache-Status = %q", got)
	}
	close(release)
	testenv.WaitFor(t, 5*time.Second, "the refreshed body", func() bool { return get(t, p.URL+"/s").Body == "v2" })
}

func TestRefreshAheadAsksTheOriginWhatTheClientAsked(t *testing.T) {
	t.Parallel()
	seen := make(chan http.Header, 16)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.Header().Set("Cache-Control", "max-age=1")
		fmt.Fprint(w, "x")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_REFRESH_WINDOW": "1m"})
	hdr := []string{"Accept", "application/json", "User-Agent", "poller/1.0", "X-Forwarded-Proto", "https", "Cookie", "secret=1"}
	get(t, p.URL+"/ahead", hdr...)
	first := <-seen
	get(t, p.URL+"/ahead", hdr...) // demand: a hit after the store
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

func TestRefreshesDoNotReplayAClientsCredentials(t *testing.T) {
	t.Parallel()
	seen := make(chan http.Header, 16)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.Header().Set("Cache-Control", "max-age=1")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_REFRESH_WINDOW": "1m"})
	get(t, p.URL+"/k", "X-Api-Key", "secret-key", "Referer", "https://x/?token=t", "Accept", "text/plain")
	<-seen
	get(t, p.URL+"/k", "X-Api-Key", "secret-key", "Referer", "https://x/?token=t", "Accept", "text/plain") // demand: a hit after the store
	select {
	case h := <-seen:
		if h.Get("X-Api-Key") != "" || h.Get("Referer") != "" || h.Get("Accept") != "text/plain" {
			t.Errorf("refresh sent X-Api-Key=%q Referer=%q Accept=%q", h.Get("X-Api-Key"), h.Get("Referer"), h.Get("Accept"))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no refresh within 5s")
	}
}
