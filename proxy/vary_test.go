package proxy_test

// Vary, through the real Fiber app: one variant per value of the fields the origin names, with
// Accept-Encoding normalised and Vary: * never stored.

import (
	"fmt"
	"net/http"
	"testing"
)

func TestVaryKeepsLanguagesApart(t *testing.T) {
	t.Parallel()
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprint(w, "lang="+r.Header.Get("Accept-Language"))
	})
	p := newTestApp(t, o.URL)
	expect(t, p.get(t, "/v", "Accept-Language", "en"), 200, "MISS", "lang=en")
	expect(t, p.get(t, "/v", "Accept-Language", "de"), 200, "MISS", "lang=de")
	expect(t, p.get(t, "/v", "Accept-Language", "en"), 200, "HIT", "lang=en")
	expect(t, p.get(t, "/v", "Accept-Language", "de"), 200, "HIT", "lang=de")
	expect(t, p.get(t, "/v"), 200, "MISS", "lang=")
}

func TestAcceptEncodingIsNormalisedForVary(t *testing.T) {
	t.Parallel()
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Encoding")
		fmt.Fprint(w, "ae="+r.Header.Get("Accept-Encoding"))
	})
	p := newTestApp(t, o.URL)
	expect(t, p.get(t, "/ae", "Accept-Encoding", "gzip, deflate"), 200, "MISS", "ae=gzip")
	expect(t, p.get(t, "/ae", "Accept-Encoding", "deflate, gzip;q=0.8"), 200, "HIT", "ae=gzip")
	expect(t, p.get(t, "/ae", "Accept-Encoding", "gzip, br"), 200, "MISS", "ae=br")
}

func TestVaryStarIsNotStored(t *testing.T) {
	t.Parallel()
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "*")
		fmt.Fprint(w, "x")
	})
	p := newTestApp(t, o.URL)
	p.get(t, "/star")
	expect(t, p.get(t, "/star"), 200, "BYPASS", "x")
	if n := o.hits.Load(); n != 2 {
		t.Errorf("origin hits = %d, want 2", n)
	}
}
