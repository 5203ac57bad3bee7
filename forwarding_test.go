package main

// What reaches the origin, end to end: forwarding and hop-by-hop fields, and requests never forwarded
// (the reserved /_swr/ prefix, bad targets).

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestForwardedAndHopByHopHeaders(t *testing.T) {
	t.Parallel()
	seen := make(chan http.Header, 1)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		seen <- h
		w.Header().Set("Connection", "X-Origin-Hop")
		w.Header().Set("X-Origin-Hop", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		fmt.Fprint(w, "ok")
	})
	p := startProxy(t, o.URL, nil)
	r := get(t, p.URL+"/fwd", "Connection", "X-Client-Hop", "X-Client-Hop", "1", "X-Forwarded-Proto", "https", "X-End", "e2e")
	h := <-seen
	// A cacheable fill forwards only the fields that are the same for everyone with the key.
	if h.Get("X-Client-Hop") != "" || h.Get("X-End") != "" {
		t.Errorf("fill: origin saw X-Client-Hop=%q X-End=%q, want neither", h.Get("X-Client-Hop"), h.Get("X-End"))
	}
	if h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("X-Forwarded-Proto") != "https" || h.Get("X-Forwarded-Host") != "" {
		t.Errorf("fill: X-Forwarded-* = %q %q %q, want the client, its proto, and no unkeyed host",
			h.Get("X-Forwarded-For"), h.Get("X-Forwarded-Proto"), h.Get("X-Forwarded-Host"))
	}
	do(http.MethodPost, p.URL+"/fwd", "Connection", "X-Client-Hop", "X-Client-Hop", "1", "X-End", "e2e")
	h = <-seen
	if !strings.HasPrefix(h.Get("X-Forwarded-Host"), "127.0.0.1:") {
		t.Errorf("pass-through: X-Forwarded-Host = %q, want the client's Host", h.Get("X-Forwarded-Host"))
	}
	// A pass-through carries the client's end-to-end fields, never the hop-by-hop ones.
	if h.Get("X-Client-Hop") != "" || h.Get("X-End") != "e2e" {
		t.Errorf("pass-through: origin saw X-Client-Hop=%q X-End=%q", h.Get("X-Client-Hop"), h.Get("X-End"))
	}
	if r.Header.Get("X-Origin-Hop") != "" || r.Header.Get("Keep-Alive") != "" {
		t.Errorf("client got hop-by-hop fields %q %q", r.Header.Get("X-Origin-Hop"), r.Header.Get("Keep-Alive"))
	}
}

func TestReservedPrefixIsNeverForwarded(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "origin") })
	p := startProxy(t, o.URL, nil)
	for _, path := range []string{"/_swr/invalidate", "/_swr/nope", "/%5Fswr/nope", "/x/../_swr/nope", "/_SWR/nope", "/_Swr"} {
		if r := do(http.MethodGet, p.URL+path); r.StatusCode != 404 {
			t.Errorf("GET %s: %d %q, want 404", path, r.StatusCode, trim(r.Body))
		}
	}
	if n := o.hits.Load(); n != 0 {
		t.Errorf("origin hits = %d, want 0", n)
	}
	if r := get(t, p.URL+"/x?q=/_swr/"); r.Body != "origin" {
		t.Errorf("a query mentioning /_swr/ must reach the origin: %q", r.Body)
	}
}

func TestBadRequestTargetsAreRejectedNotForwarded(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "origin") })
	p := startProxy(t, o.URL, nil)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		r := rawRequest(t, p.URL, method+" /%zz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(r, "HTTP/1.1 400") {
			t.Errorf("%s /%%zz: %q, want 400", method, firstLine(r))
		}
	}
	if n := o.hits.Load(); n != 0 {
		t.Errorf("origin hits = %d, want 0", n)
	}
}

func TestForwardedFieldsOutsideTheKeyDoNotReachAFill(t *testing.T) {
	t.Parallel()
	seen := make(chan http.Header, 4)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.Header().Set("Cache-Control", "max-age=60")
	})
	p := startProxy(t, o.URL, nil)
	get(t, p.URL+"/f", "Forwarded", "host=evil.example", "X-Forwarded-Port", "1", "X-Forwarded-Prefix", "/evil", "X-Host", "evil.example")
	h := <-seen
	for _, f := range []string{"Forwarded", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Host"} {
		if h.Get(f) != "" {
			t.Errorf("fill forwarded %s: %q", f, h.Get(f))
		}
	}
}
