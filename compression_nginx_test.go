package main

// Compression stored once behind the shipped nginx template: swrproxy's codings pass through
// nginx untouched (its gzip filter skips a response with Content-Encoding), their strong ETags
// stay strong, and Vary names Accept-Encoding once.

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/swrproxy/swrproxy/httpcache"
)

func TestCodedRepliesPassThroughTheNginxTemplateUntouched(t *testing.T) {
	t.Parallel()
	body := compressibleJSON()
	o, _ := compressionOrigin(t, body)
	p := startProxy(t, o.URL, nil)
	n := startNginx(t, strings.TrimPrefix(p.URL, "http://"))
	for _, tt := range []struct {
		accept, coding, tag string
	}{
		{"gzip, deflate, br", "br", `"j1:swr-br"`},
		{"gzip", "gzip", `"j1:swr-gzip"`},
		{"", "", `"j1"`},
		{"deflate", "", `"j1"`},
	} {
		direct := get(t, p.URL+"/n", "Accept-Encoding", tt.accept)
		r := get(t, n+"/n", "Accept-Encoding", tt.accept)
		if r.StatusCode != 200 || r.Header.Get("Content-Encoding") != tt.coding || r.Header.Get("ETag") != tt.tag {
			t.Errorf("through nginx, Accept-Encoding %q: %d Content-Encoding %q ETag %s; want %q and swrproxy's strong %s",
				tt.accept, r.StatusCode, r.Header.Get("Content-Encoding"), r.Header.Get("ETag"), tt.coding, tt.tag)
		}
		if r.Body != direct.Body {
			t.Errorf("through nginx, Accept-Encoding %q: the body differs from swrproxy's (%d bytes, %d direct): nginx recoded it",
				tt.accept, len(r.Body), len(direct.Body))
		}
		if got := decodeReply(t, r); got != body {
			t.Errorf("through nginx, Accept-Encoding %q: does not decode to the origin's body", tt.accept)
		}
		if v := r.Header.Values("Vary"); len(v) != 1 || v[0] != "Accept-Encoding" {
			t.Errorf("through nginx, Accept-Encoding %q: Vary %q, want Accept-Encoding once", tt.accept, v)
		}
		nm := get(t, n+"/n", "Accept-Encoding", tt.accept, "If-None-Match", tt.tag)
		if nm.StatusCode != http.StatusNotModified || nm.Header.Get("ETag") != tt.tag {
			t.Errorf("through nginx, Accept-Encoding %q, If-None-Match %s: %d ETag %s; want 304 with the same tag",
				tt.accept, tt.tag, nm.StatusCode, nm.Header.Get("ETag"))
		}
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin requests = %d, want 1", n)
	}
}

func TestWhatNginxGzipsItselfNamesAcceptEncodingInVaryOnce(t *testing.T) {
	t.Parallel()
	body := compressibleJSON()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/stream": // not stored: streamed by swrproxy, gzipped by nginx
			w.Header().Set("Cache-Control", "no-store")
		case "/no-transform": // stored as it came: swrproxy may not encode it (nginx does anyway)
			w.Header().Set("Cache-Control", "max-age=600, no-transform")
		case "/two-types": // sent as its last Content-Type, text/html, which nginx gzips
			w.Header()["Content-Type"] = []string{"image/png", "text/html"}
			w.Header().Set("Cache-Control", "max-age=600, no-transform")
		}
		io.WriteString(w, body)
	})
	p := startProxy(t, o.URL, nil)
	n := startNginx(t, strings.TrimPrefix(p.URL, "http://"))
	for _, path := range []string{"/stream", "/no-transform", "/two-types"} {
		for _, accept := range []string{"gzip", ""} {
			r := get(t, n+path, "Accept-Encoding", accept)
			if r.StatusCode != 200 || decodeReply(t, r) != body {
				t.Fatalf("%s, Accept-Encoding %q: %d, Content-Encoding %q", path, accept, r.StatusCode, r.Header.Get("Content-Encoding"))
			}
			if v := r.Header.Values("Vary"); len(v) != 1 || v[0] != "Accept-Encoding" {
				t.Errorf("%s, Accept-Encoding %q (Content-Encoding %q): Vary %q, want Accept-Encoding once", path, accept,
					r.Header.Get("Content-Encoding"), v)
			}
		}
	}
}

// TestEveryTypeNginxGzipsIsOneSwrproxyCallsCompressible: the template's gzip_vary is off, so a
// reply nginx may gzip must say Vary: Accept-Encoding itself; swrproxy says it for the types
// httpcache.Compressible names, which must therefore cover every type of gzip_types (and
// text/html, which nginx always gzips).
func TestEveryTypeNginxGzipsIsOneSwrproxyCallsCompressible(t *testing.T) {
	b, err := os.ReadFile("nginx/templates/default.conf.template")
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), ";")); len(f) > 1 && f[0] == "gzip_types" {
			types = append(types, f[1:]...)
		}
	}
	if len(types) == 0 {
		t.Fatal("no gzip_types in the template")
	}
	for _, ct := range append(types, "text/html") {
		if !httpcache.Compressible(ct) {
			t.Errorf("nginx gzips %s, which httpcache.Compressible does not name: its replies would lack Vary: Accept-Encoding", ct)
		}
	}
}
