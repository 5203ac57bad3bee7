package main

// What is stored and how a hit is served, end to end through run: the key, the headers of a hit
// (Age, ETag, Cache-Status), HEAD and conditional requests from the entry, and what passes through.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
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

func TestUncacheableResponsesPassThrough(t *testing.T) {
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
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				for i := 0; i < len(tt.header); i += 2 {
					w.Header().Set(tt.header[i], tt.header[i+1])
				}
				fmt.Fprint(w, "per-user")
			})
			p := startProxy(t, o.URL, nil)
			for range 3 {
				r := get(t, p.URL+tt.path, tt.reqHeader...)
				expect(t, r, 200, "BYPASS", "per-user")
			}
			if n := o.hits.Load(); n != 3 {
				t.Errorf("origin hits = %d, want 3", n)
			}
		})
	}
}

func TestAuthorizedRequestMayFillAPublicEntry(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		fmt.Fprint(w, "public")
	})
	p := startProxy(t, o.URL, nil)
	expect(t, get(t, p.URL+"/pub", "Authorization", "Bearer a"), 200, "MISS", "public")
	expect(t, get(t, p.URL+"/pub"), 200, "HIT", "public")
}

func TestConditionalRequestsGet304(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"abc"`)
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Vary", "Accept-Encoding")
		fmt.Fprint(w, "representation")
	})
	p := startProxy(t, o.URL, nil)
	get(t, p.URL+"/c")
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
			r := get(t, p.URL+"/c", tt.hdr...)
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
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "twelve bytes")
	})
	p := startProxy(t, o.URL, nil)
	get(t, p.URL+"/h")
	r := do(http.MethodHead, p.URL+"/h")
	expect(t, r, 200, "HIT", "")
	if r.Body != "" || r.ContentLength != 12 {
		t.Errorf("HEAD body %q, Content-Length %d; want none and 12", r.Body, r.ContentLength)
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin hits = %d, want 1", n)
	}
}

func TestAPrivateAnswerToOneClientDoesNotMakeTheURLUncacheable(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			w.Header().Set("Cache-Control", "private")
			fmt.Fprint(w, "yours")
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "everyone's")
	})
	p := startProxy(t, o.URL, nil)
	expect(t, get(t, p.URL+"/mixed", "Authorization", "Bearer u1"), 200, "BYPASS", "yours")
	expect(t, get(t, p.URL+"/mixed"), 200, "MISS", "everyone's")
	expect(t, get(t, p.URL+"/mixed"), 200, "HIT", "everyone's")
	expect(t, get(t, p.URL+"/mixed", "Authorization", "Bearer u2"), 200, "BYPASS", "yours")
}
