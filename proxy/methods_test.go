package proxy_test

// Methods outside Fiber's list (RFC 9110 §9.1: any token) are passed through, and a successful
// one invalidates the URL's cached GET like any method not known to be safe (RFC 9111 §4.4).

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/swrproxy/swrproxy/proxy"
)

func TestUnknownMethodsArePassedThroughRFC9110Section9_1(t *testing.T) {
	t.Parallel()
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		fmt.Fprintf(w, "%s %s %q", r.Method, r.URL.RequestURI(), b)
	})
	p := newTestApp(t, o.URL)
	for _, m := range []string{"M-SEARCH", "BREW", "x.y!z~", "VERSION-CONTROL"} {
		r := p.do(t, m, "/dev?x=1", strings.NewReader("payload"))
		want := fmt.Sprintf("%s /dev?x=1 %q", m, "payload")
		if r.StatusCode != 200 || r.Body != want || r.Header.Get("X-Cache") != "BYPASS" || r.Header.Get("Cache-Status") != "swrproxy; fwd=method" {
			t.Errorf("%s: %d X-Cache=%q Cache-Status=%q %q; want 200 BYPASS %q", m, r.StatusCode,
				r.Header.Get("X-Cache"), r.Header.Get("Cache-Status"), r.Body, want)
		}
	}
	// /_swr/ is never the origin's, whatever the method.
	if r := p.do(t, "M-SEARCH", "/_swr/x", nil); r.StatusCode != 404 {
		t.Errorf("M-SEARCH /_swr/x: %d, want 404", r.StatusCode)
	}
	if n := o.hits.Load(); n != 4 {
		t.Errorf("origin hits = %d, want 4", n)
	}
}

func TestMethodsNotKnownToBeSafeInvalidateRFC9111Section4_4(t *testing.T) {
	t.Parallel()
	var version atomic.Int64
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			if r.Header.Get("X-Fail") != "" {
				w.WriteHeader(http.StatusConflict)
				return
			}
			version.Add(1)
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "v%d", version.Load())
	})
	p := newTestApp(t, o.URL)
	tests := []struct {
		method     string
		invalidate bool
	}{
		{"M-SEARCH", true}, // unknown: its safety is unknown
		{"MKCOL", true},    // WebDAV, unsafe
		{"LOCK", true},
		{"PROPFIND", false}, // WebDAV, safe (RFC 4918 §9.1)
		{"REPORT", false},
		{http.MethodOptions, false},
	}
	for _, tt := range tests {
		path := "/item-" + strings.ToLower(tt.method)
		first := p.get(t, path)
		expect(t, p.get(t, path), 200, "HIT", first.Body)
		// An error status invalidates nothing: the same URL is still a hit.
		if r := p.do(t, tt.method, path, nil, "X-Fail", "1"); r.StatusCode != http.StatusConflict {
			t.Fatalf("%s answered with an error: %d", tt.method, r.StatusCode)
		}
		expect(t, p.get(t, path), 200, "HIT", first.Body)
		if r := p.do(t, tt.method, path, nil); r.StatusCode != 200 {
			t.Fatalf("%s: %d", tt.method, r.StatusCode)
		}
		r := p.get(t, path)
		switch {
		case tt.invalidate && r.Header.Get("X-Cache") != "MISS":
			t.Errorf("after a successful %s the GET is %s, want a MISS", tt.method, r.Header.Get("X-Cache"))
		case !tt.invalidate && r.Header.Get("X-Cache") != "HIT":
			t.Errorf("after a successful %s the GET is %s, want a HIT", tt.method, r.Header.Get("X-Cache"))
		}
	}
}

// RFC 9111 §4.4: a successful write also invalidates the URIs in its Location and
// Content-Location, but only paths on this origin: another host's URI ("//evil/b", "/\\evil/b",
// an absolute URL) invalidates nothing, so an origin's redirect cannot be used to wipe keys
// elsewhere. Each key invalidated is counted.
func TestAWriteInvalidatesItsLocationOnlyOnThisOrigin(t *testing.T) {
	t.Parallel()
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			if v := r.Header.Get("X-Location"); v != "" {
				w.Header().Set("Location", v)
			}
			if v := r.Header.Get("X-Content-Location"); v != "" {
				w.Header().Set("Content-Location", v)
			}
			w.WriteHeader(http.StatusCreated)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.URL.Path)
	})
	h := newHandler(t, o.URL)
	p := testApp{proxy.NewApp(h, nil)}
	tests := []struct {
		field, value string
		clears       bool
	}{
		{"X-Location", "/b", true},
		{"X-Content-Location", "/b", true},
		{"X-Location", "//evil/b", false},
		{"X-Location", "/\\evil/b", false},
		{"X-Location", "http://evil/b", false},
		{"X-Content-Location", "https://evil/b", false},
		{"X-Location", "b", false}, // relative to the target, not a path: left alone
	}
	for _, tt := range tests {
		p.get(t, "/b")
		expect(t, p.get(t, "/b"), 200, "HIT", "/b")
		before := h.Stats().WriteInvalidations
		if r := p.do(t, http.MethodPost, "/a", nil, tt.field, tt.value); r.StatusCode != http.StatusCreated {
			t.Fatalf("POST /a: %d", r.StatusCode)
		}
		want, count := "HIT", int64(1) // the POST's own target /a
		if tt.clears {
			want, count = "MISS", 2
		}
		if r := p.get(t, "/b"); r.Header.Get("X-Cache") != want {
			t.Errorf("%s: %s: the GET of /b is %s, want %s", tt.field[2:], tt.value, r.Header.Get("X-Cache"), want)
		}
		if got := h.Stats().WriteInvalidations - before; got != count {
			t.Errorf("%s: %s: %d write invalidations counted, want %d", tt.field[2:], tt.value, got, count)
		}
	}
}
