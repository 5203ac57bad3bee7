package upstream

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// seen records what the origin received, for the test goroutine to read.
type seen struct {
	mu  sync.Mutex
	req []*http.Request
}

func (s *seen) record(r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.req = append(s.req, r.Clone(context.Background()))
}

func (s *seen) all() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.req)
}

func TestTheRequestTargetIsSentAsIs(t *testing.T) {
	tests := []struct {
		base string // path appended to the origin's URL
		uri  string
		want string // r.RequestURI at the origin
	}{
		{"", "/a%2Fb/c?x=1&y=%20", "/a%2Fb/c?x=1&y=%20"},
		{"", "/", "/"},
		{"", "/%7Euser/a;b,c=d@e:f", "/%7Euser/a;b,c=d@e:f"},
		{"", "/a%41?q=a+b&q=%2B&q=%zz&q=%", "/a%41?q=a+b&q=%2B&q=%zz&q=%"},
		{"", "/x?", "/x?"},
		{"", "/x?a=[1]&b={2}|3", "/x?a=[1]&b={2}|3"},
		{"", "//double//slash/", "//double//slash/"},
		{"", "/a/./../b", "/a/./../b"},
		{"", "/caf%C3%A9", "/caf%C3%A9"},
		{"", "/a%2Fb/{c}", "/a%2Fb/{c}"},
		{"", "/search/a|b", "/search/a|b"},
		{"", "x", "/x"},
		{"", "", "/"},
		{"/api", "/x", "/api/x"},
		{"/api/", "/x?y=1", "/api/x?y=1"},
		{"/api", "/", "/api/"},
		{"/a%2Fb", "/c%2Fd", "/a%2Fb/c%2Fd"},
	}
	srv := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Uri", r.RequestURI)
	})
	for _, tt := range tests {
		t.Run(tt.base+" "+tt.uri, func(t *testing.T) {
			c := newClient(t, srv.URL+tt.base, 5*time.Second)
			resp := get(t, c, tt.uri, nil)
			if got := resp.Header.Get("X-Request-Uri"); got != tt.want {
				t.Errorf("base %q + %q reached the origin as %q, want %q", tt.base, tt.uri, got, tt.want)
			}
		})
	}
}

func TestTheOriginSeesTheUpstreamHost(t *testing.T) {
	var got seen
	srv := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { got.record(r) })
	host := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		name   string
		base   string
		header http.Header
	}{
		{"no header", srv.URL, nil},
		{"client's Host field", srv.URL, http.Header{"Host": {"client.example"}, "X-Forwarded-Host": {"client.example"}}},
		{"base with a path", srv.URL + "/api", http.Header{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			get(t, newClient(t, tt.base, 5*time.Second), "/x", tt.header)
			reqs := got.all()
			r := reqs[len(reqs)-1]
			if r.Host != host {
				t.Errorf("origin saw Host %q, want the upstream's %q", r.Host, host)
			}
			if want := tt.header.Get("X-Forwarded-Host"); r.Header.Get("X-Forwarded-Host") != want {
				t.Errorf("X-Forwarded-Host = %q, want %q forwarded as is", r.Header.Get("X-Forwarded-Host"), want)
			}
		})
	}
}

func TestRedirectsAreRelayedNotFollowed(t *testing.T) {
	var got seen
	srv := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		got.record(r)
		if code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/")); err == nil {
			http.Redirect(w, r, "/target", code)
		}
	})
	c := newClient(t, srv.URL, 5*time.Second)
	for _, code := range []int{301, 302, 303, 307, 308} {
		resp := get(t, c, "/"+strconv.Itoa(code), nil)
		if resp.StatusCode != code || resp.Header.Get("Location") != "/target" {
			t.Errorf("GET /%d = %d, Location %q; want %d, /target", code, resp.StatusCode, resp.Header.Get("Location"), code)
		}
	}
	for _, r := range got.all() {
		if r.URL.Path == "/target" {
			t.Errorf("the client followed a redirect to %s", r.URL)
		}
	}
}

func TestCompressedBodiesPassThroughUntouched(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, strings.Repeat("compressible ", 1000))
	zw.Close()
	tests := []struct {
		name           string
		acceptEncoding string // sent by the caller
	}{
		{"caller sent no Accept-Encoding", ""},
		{"caller accepts gzip", "gzip"},
	}
	var got seen
	srv := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		got.record(r)
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", strconv.Itoa(gz.Len()))
		w.Write(gz.Bytes())
	})
	c := newClient(t, srv.URL, 5*time.Second)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.acceptEncoding != "" {
				h.Set("Accept-Encoding", tt.acceptEncoding)
			}
			resp := get(t, c, "/z", h)
			reqs := got.all()
			if ae := reqs[len(reqs)-1].Header.Get("Accept-Encoding"); ae != tt.acceptEncoding {
				t.Errorf("origin got Accept-Encoding %q, want the caller's %q", ae, tt.acceptEncoding)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil || !bytes.Equal(body, gz.Bytes()) {
				t.Errorf("body: %d bytes, error %v; want the %d gzip bytes as sent", len(body), err, gz.Len())
			}
			if ce := resp.Header.Get("Content-Encoding"); ce != "gzip" || resp.Uncompressed {
				t.Errorf("Content-Encoding = %q, Uncompressed = %v; want gzip, false", ce, resp.Uncompressed)
			}
			if resp.ContentLength != int64(gz.Len()) {
				t.Errorf("ContentLength = %d, want %d", resp.ContentLength, gz.Len())
			}
		})
	}
}

func TestTheRequestBodyIsForwarded(t *testing.T) {
	type received struct {
		body   string
		length int64
		te     []string
	}
	var mu sync.Mutex
	var last received
	srv := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		last = received{string(b), r.ContentLength, r.TransferEncoding}
		mu.Unlock()
	})
	c := newClient(t, srv.URL, 5*time.Second)
	tests := []struct {
		name   string
		body   io.Reader
		length int64
		want   received
	}{
		{"known length", strings.NewReader("abc"), 3, received{"abc", 3, nil}},
		{"unknown length", strings.NewReader("abc"), -1, received{"abc", -1, []string{"chunked"}}},
		{"empty", strings.NewReader(""), 0, received{"", 0, nil}},
		{"none", nil, 0, received{"", 0, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Do(t.Context(), &Request{Method: http.MethodPost, URI: "/p", Body: tt.body, ContentLength: tt.length})
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			if last.body != tt.want.body || last.length != tt.want.length || !slices.Equal(last.te, tt.want.te) {
				t.Errorf("origin got body %q, length %d, Transfer-Encoding %q; want %q, %d, %q",
					last.body, last.length, last.te, tt.want.body, tt.want.length, tt.want.te)
			}
		})
	}
}

// OPTIONS * asks the server itself (RFC 9112 §3.2.4): it reaches the origin in the asterisk form,
// not as a resource named "/*" (nor under the base path).
func TestTheAsteriskFormIsSentAsIs(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Uri", r.RequestURI)
	}))
	srv.Config.DisableGeneralOptionsHandler = true // else net/http answers OPTIONS * itself
	srv.Start()
	t.Cleanup(srv.Close)
	for _, base := range []string{"", "/api"} {
		c := newClient(t, srv.URL+base, 5*time.Second)
		resp, err := c.Do(t.Context(), &Request{Method: http.MethodOptions, URI: "*"})
		if err != nil {
			t.Fatalf("OPTIONS * (base %q): %v", base, err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Request-Uri"); got != "*" {
			t.Errorf("OPTIONS * with base %q reached the origin as %q, want *", base, got)
		}
	}
}
