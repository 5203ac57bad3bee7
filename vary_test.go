package main

// Vary, end to end: one variant per value of the fields the origin names, with Accept-Encoding
// normalised and Vary: * never stored.

import (
	"fmt"
	"net/http"
	"testing"
)

func TestVaryKeepsLanguagesApart(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprint(w, "lang="+r.Header.Get("Accept-Language"))
	})
	p := startProxy(t, o.URL, nil)
	expect(t, get(t, p.URL+"/v", "Accept-Language", "en"), 200, "MISS", "lang=en")
	expect(t, get(t, p.URL+"/v", "Accept-Language", "de"), 200, "MISS", "lang=de")
	expect(t, get(t, p.URL+"/v", "Accept-Language", "en"), 200, "HIT", "lang=en")
	expect(t, get(t, p.URL+"/v", "Accept-Language", "de"), 200, "HIT", "lang=de")
	expect(t, get(t, p.URL+"/v"), 200, "MISS", "lang=")
}

func TestAcceptEncodingIsNormalisedForVary(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Encoding")
		fmt.Fprint(w, "ae="+r.Header.Get("Accept-Encoding"))
	})
	p := startProxy(t, o.URL, nil)
	expect(t, get(t, p.URL+"/ae", "Accept-Encoding", "gzip, deflate"), 200, "MISS", "ae=gzip")
	expect(t, get(t, p.URL+"/ae", "Accept-Encoding", "deflate, gzip;q=0.8"), 200, "HIT", "ae=gzip")
	expect(t, get(t, p.URL+"/ae", "Accept-Encoding", "gzip, br"), 200, "MISS", "ae=br")
}

func TestVaryStarIsNotStored(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "*")
		fmt.Fprint(w, "x")
	})
	p := startProxy(t, o.URL, nil)
	get(t, p.URL+"/star")
	expect(t, get(t, p.URL+"/star"), 200, "BYPASS", "x")
	if n := o.hits.Load(); n != 2 {
		t.Errorf("origin hits = %d, want 2", n)
	}
}
