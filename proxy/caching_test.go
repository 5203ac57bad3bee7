package proxy_test

// What the app stores and how it serves a hit, through the real Fiber app in front of a real
// origin: the key, the headers of a hit (Age, ETag, Cache-Status), HEAD and conditional requests
// from the entry, what passes through and is never stored, and unsafe requests clearing the GET.

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

func TestMissThenHitWithAgeETagAndCacheStatus(t *testing.T) {
	t.Parallel()
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("Link", "</a>; rel=preload")
		w.Header().Add("Link", "</b>; rel=preload")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.RequestURI())
	})
	p := newTestApp(t, o.URL)

	r := p.get(t, "/api/prices?pair=ALGO-USD")
	expect(t, r, 200, "MISS", `{"path":"/api/prices?pair=ALGO-USD"}`)
	if got := r.Header.Get("Cache-Status"); got != "swrproxy; fwd=miss; stored" {
		t.Errorf("Cache-Status = %q", got)
	}
	r = p.get(t, "/api/prices?pair=ALGO-USD")
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
	t.Parallel()
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.URL.RawQuery)
	})
	p := newTestApp(t, o.URL)
	expect(t, p.get(t, "/x?a=1"), 200, "MISS", "a=1")
	expect(t, p.get(t, "/x?a=2"), 200, "MISS", "a=2")
	expect(t, p.get(t, "/x?a=1"), 200, "HIT", "a=1")
	expect(t, p.get(t, "/x?a=2"), 200, "HIT", "a=2")
}

func TestUncacheableResponsesPassThrough(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path string
		header     []string
		reqHeader  []string
	}{
		{"no-store", "/ns", []string{"Cache-Control", "no-store"}, nil},
		{"private", "/pv", []string{"Cache-Control", "private, max-age=60"}, nil},
		{"set-cookie", "/sc", []string{"Cache-Control", "max-age=60", "Set-Cookie", "id=1"}, nil},
		{"authorization", "/au", []string{"Cache-Control", "max-age=60"}, []string{"Authorization", "Bearer x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				for i := 0; i < len(tt.header); i += 2 {
					w.Header().Set(tt.header[i], tt.header[i+1])
				}
				fmt.Fprint(w, "per-user")
			})
			p := newTestApp(t, o.URL)
			for range 3 {
				r := p.get(t, tt.path, tt.reqHeader...)
				expect(t, r, 200, "BYPASS", "per-user")
			}
			if n := o.hits.Load(); n != 3 {
				t.Errorf("origin hits = %d, want 3", n)
			}
		})
	}
}

func TestAuthorizedRequestMayFillAPublicEntry(t *testing.T) {
	t.Parallel()
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		fmt.Fprint(w, "public")
	})
	p := newTestApp(t, o.URL)
	expect(t, p.get(t, "/pub", "Authorization", "Bearer a"), 200, "MISS", "public")
	expect(t, p.get(t, "/pub"), 200, "HIT", "public")
}

func TestConditionalRequestsAreAnswered304FromTheEntry(t *testing.T) {
	t.Parallel()
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"abc"`)
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Vary", "Accept-Encoding")
		fmt.Fprint(w, "representation")
	})
	p := newTestApp(t, o.URL)
	p.get(t, "/c")
	tests := []struct {
		name   string
		hdr    []string
		status int
	}{
		{"strong match", []string{"If-None-Match", `"abc"`}, 304},
		{"weak match as nginx gzip sends it", []string{"If-None-Match", `W/"abc"`}, 304},
		{"list", []string{"If-None-Match", `"x", W/"abc"`}, 304},
		{"star", []string{"If-None-Match", `*`}, 304},
		{"no match", []string{"If-None-Match", `"other"`}, 200},
		{"if-modified-since same date", []string{"If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}, 304},
		{"if-modified-since earlier", []string{"If-Modified-Since", "Sun, 01 Jan 2006 15:04:05 GMT"}, 200},
		{"if-none-match wins over if-modified-since", []string{"If-None-Match", `"other"`, "If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := p.get(t, "/c", tt.hdr...)
			if r.StatusCode != tt.status || r.Header.Get("X-Cache") != "HIT" {
				t.Fatalf("got %d %s, want %d HIT", r.StatusCode, r.Header.Get("X-Cache"), tt.status)
			}
			if tt.status == 304 {
				if r.Body != "" {
					t.Errorf("304 with a body %q", r.Body)
				}
				for _, h := range []string{"ETag", "Cache-Control", "Vary", "Date", "Age"} {
					if r.Header.Get(h) == "" {
						t.Errorf("304 without %s", h)
					}
				}
				if r.Header.Get("Content-Type") != "" {
					t.Errorf("304 carries Content-Type %q", r.Header.Get("Content-Type"))
				}
			} else if r.Body != "representation" {
				t.Errorf("200 body %q", r.Body)
			}
		})
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin hits = %d: conditional requests must be answered from cache", n)
	}
}

func TestHeadIsAnsweredFromTheGetEntry(t *testing.T) {
	t.Parallel()
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "twelve bytes")
	})
	p := newTestApp(t, o.URL)
	p.get(t, "/h")
	r := p.do(t, http.MethodHead, "/h", nil)
	expect(t, r, 200, "HIT", "")
	if r.Body != "" || r.ContentLength != 12 {
		t.Errorf("HEAD body %q, Content-Length %d; want none and 12", r.Body, r.ContentLength)
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin hits = %d, want 1", n)
	}
}

func TestAPrivateAnswerToOneClientDoesNotMakeTheURLUncacheable(t *testing.T) {
	t.Parallel()
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			w.Header().Set("Cache-Control", "private")
			fmt.Fprint(w, "yours")
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "everyone's")
	})
	p := newTestApp(t, o.URL)
	expect(t, p.get(t, "/mixed", "Authorization", "Bearer u1"), 200, "BYPASS", "yours")
	expect(t, p.get(t, "/mixed"), 200, "MISS", "everyone's")
	expect(t, p.get(t, "/mixed"), 200, "HIT", "everyone's")
	expect(t, p.get(t, "/mixed", "Authorization", "Bearer u2"), 200, "BYPASS", "yours")
}

// TestAServerErrorIsStoredOnlyWithExplicitFreshness is negative caching (RFC 9111 §3, §4.2.1): a
// 503 that says max-age=60 is stored and served while fresh, so a failing origin is asked once
// per lifetime, not once per client; a 503 without explicit freshness is never stored (no
// heuristic for it, RFC 9111 §4.2.2).
func TestAServerErrorIsStoredOnlyWithExplicitFreshness(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cacheControl string
		wantHits     int64
	}{
		{"max-age=60", 1},
		{"", 3},
	}
	for _, tt := range tests {
		o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			if tt.cacheControl != "" {
				w.Header().Set("Cache-Control", tt.cacheControl)
			}
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		p := newTestApp(t, o.URL)
		for range 3 {
			if r := p.get(t, "/503"); r.StatusCode != 503 {
				t.Fatalf("Cache-Control %q: status %d, want the 503", tt.cacheControl, r.StatusCode)
			}
		}
		if n := o.hits.Load(); n != tt.wantHits {
			t.Errorf("Cache-Control %q: origin hits = %d, want %d", tt.cacheControl, n, tt.wantHits)
		}
	}
}

func TestTruncatedOriginBodyIsNeverStored(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
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
	p := newTestApp(t, o.URL)
	if r := p.get(t, "/cut"); r.StatusCode != http.StatusBadGateway {
		t.Fatalf("truncated body: got %d %q, want 502", r.StatusCode, trim(r.Body))
	}
	expect(t, p.get(t, "/cut"), 200, "MISS", "whole")
	expect(t, p.get(t, "/cut"), 200, "HIT", "whole")
}

func TestSuccessfulUnsafeRequestInvalidatesTheGet(t *testing.T) {
	t.Parallel()
	var version atomic.Int64
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			version.Add(1)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "v%d", version.Load())
	})
	p := newTestApp(t, o.URL)
	expect(t, p.get(t, "/item"), 200, "MISS", "v0")
	expect(t, p.get(t, "/item"), 200, "HIT", "v0")
	if r := p.do(t, http.MethodPost, "/item", nil); r.StatusCode != 204 || r.Header.Get("X-Cache") != "BYPASS" {
		t.Fatalf("POST: %d %s", r.StatusCode, r.Header.Get("X-Cache"))
	}
	expect(t, p.get(t, "/item"), 200, "MISS", "v1")
}
