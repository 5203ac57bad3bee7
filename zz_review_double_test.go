package main

import (
	"fmt"
	"net/http"
	"testing"
)

func TestReviewFirstMissWithVaryOriginCostsTwoOriginRequests(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("Vary", "Origin")
		fmt.Fprintf(w, "origin=%q", r.Header.Get("Origin"))
	})
	p := startProxy(t, o.URL, nil)
	for i := 0; i < 10; i++ {
		get(t, p.URL+fmt.Sprintf("/api/item?id=%d", i), "Origin", "https://app.example")
	}
	t.Logf("10 client requests (distinct keys, one Origin): %d origin requests", o.hits.Load())
}
