package main

// Revalidation with the origin, end to end: 304s renew the stored entry (ETag, Last-Modified, no-cache).

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/rawhttp"
)

func TestRevalidationWith304RenewsTheEntryWithoutABody(t *testing.T) {
	// Not parallel: its renewed entry is fresh for one second only.
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
		// Age equal to max-age: the copy is stale on arrival, and with no stale window the next
		// request revalidates. The 304 says nothing of Age: the renewed entry is fresh for 1 s.
		w.Header().Set("Age", "1")
		fmt.Fprint(w, "body v1")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_STALE_WHILE_REVALIDATE": "0", "SWR_REFRESH_WINDOW": "0"})
	expect(t, get(t, p.URL+"/r"), 200, "MISS", "body v1")
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

func TestNoCacheResponsesAreStoredAndRevalidatedEveryTime(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
	var full, notModified atomic.Int64
	const lm = "Mon, 02 Jan 2006 15:04:05 GMT"
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1")
		w.Header().Set("Age", "1") // stale on arrival: the next request revalidates
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
	if r := get(t, p.URL+"/lm"); r.Body != "dated" {
		t.Fatalf("body %q", r.Body)
	}
	if full.Load() != 1 || notModified.Load() != 1 {
		t.Errorf("origin sent %d bodies and %d 304s, want 1 and 1", full.Load(), notModified.Load())
	}
}

// TestAnIfModifiedSinceThatIsNotAnHTTPDateGetsTheWholeBody: RFC 9110 §13.1.3, a recipient MUST
// ignore an If-Modified-Since that is not a valid HTTP-date. On raw sockets, straight to swrproxy
// and through the nginx template: a valid later date gets 304, a one-digit hour, another zone or a
// doubled space gets the 200.
func TestAnIfModifiedSinceThatIsNotAnHTTPDateGetsTheWholeBody(t *testing.T) {
	t.Parallel()
	const lastModified = "Mon, 01 Jan 2024 10:00:00 GMT"
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Last-Modified", lastModified)
		fmt.Fprint(w, "body")
	})
	p := startProxy(t, o.URL, nil)
	expect(t, get(t, p.URL+"/ims"), 200, "MISS", "body")
	tests := []struct {
		ims    string
		status int
	}{
		{"Tue, 02 Jan 2024 10:00:00 GMT", 304},
		{"Tue, 02 Jan 2024 1:00:00 GMT", 200},
		{"Tue, 02 Jan 2024 10:00:00 UTC", 200},
		{"Tue,  02 Jan 2024 10:00:00 GMT", 200},
	}
	var raw strings.Builder
	for _, tt := range tests {
		fmt.Fprintf(&raw, "GET /ims HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: %s\r\n\r\n", tt.ims)
	}
	n := startNginx(t, strings.TrimPrefix(p.URL, "http://"))
	for _, via := range []string{strings.TrimPrefix(p.URL, "http://"), strings.TrimPrefix(n, "http://")} {
		res, err := rawhttp.Exchange(via, raw.String(), 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Responses) != len(tests) {
			t.Fatalf("%s: %d responses to %d requests", via, len(res.Responses), len(tests))
		}
		for i, tt := range tests {
			if got := res.Responses[i].StatusCode; got != tt.status {
				t.Errorf("%s: If-Modified-Since %q: %d, want %d", via, tt.ims, got, tt.status)
			}
		}
	}
}
