package main

// Request methods outside Fiber's list, on raw sockets straight to swrproxy and through the
// nginx template: any token is a method (RFC 9110 §9.1) and goes to the origin; a method that
// is not a token is a malformed request line.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/rawhttp"
)

func TestUnknownMethodsReachTheOriginOnARawSocket(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.Method)
	})
	p := startProxy(t, o.URL, nil)
	direct := strings.TrimPrefix(p.URL, "http://")
	via := strings.TrimPrefix(startNginx(t, direct), "http://")
	for _, addr := range []string{direct, via} {
		res, err := rawhttp.Exchange(addr,
			"M-SEARCH /ssdp HTTP/1.1\r\nHost: x\r\nMan: \"ssdp:discover\"\r\n\r\n"+
				"BREW /pot HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntea"+
				"GET /pot HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if b := res.Bodies(); len(b) != 3 || b[0] != "M-SEARCH" || b[1] != "BREW" || b[2] != "GET" {
			t.Errorf("%s: bodies %q, want the origin's M-SEARCH, BREW, GET", addr, b)
		}
	}
	for _, raw := range []string{"GE(T /a HTTP/1.1\r\nHost: x\r\n\r\n", "G\"ET /a HTTP/1.1\r\nHost: x\r\n\r\n"} {
		res, err := rawhttp.Exchange(direct, raw, 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Responses) != 1 || res.Responses[0].StatusCode != 400 || res.Responses[0].Header.Get("X-Cache") != "" {
			t.Errorf("%q: %v, want swrproxy's own 400", raw, res.Responses)
		}
	}
	if n := o.hits.Load(); n != 6 {
		t.Errorf("origin hits = %d, want 6 (each BREW cleared /pot, RFC 9111 §4.4, so each GET filled it)", n)
	}
}
