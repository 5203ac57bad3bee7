package upstream

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// newOrigin starts a real httptest origin serving h until the test ends.
func newOrigin(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// newClient returns a client of base (the origin's URL plus an optional path).
func newClient(t *testing.T, base string, timeout time.Duration) *Client {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %q: %v", base, err)
	}
	return New(u, timeout)
}

// get sends a GET of uri through c, failing the test on error. The body is closed when the test ends.
func get(t *testing.T, c *Client, uri string, h http.Header) *http.Response {
	t.Helper()
	resp, err := c.Do(t.Context(), &Request{Method: http.MethodGet, URI: uri, Header: h})
	if err != nil {
		t.Fatalf("Do(GET %s): %v", uri, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

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

func TestHopByHopResponseFieldsAreRemoved(t *testing.T) {
	srv := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Connection", "X-Hop-A, x-hop-b")
		h.Add("Connection", " X-Hop-C ,,")
		h.Set("X-Hop-A", "1")
		h.Set("X-Hop-B", "2")
		h.Set("X-Hop-C", "3")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Proxy-Connection", "keep-alive")
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("Te", "trailers")
		h.Set("Upgrade", "h2c")
		h.Add("Set-Cookie", "a=1")
		h.Add("Set-Cookie", "b=2")
		h.Add("Cache-Control", "max-age=60")
		h.Add("Cache-Control", "stale-while-revalidate=30")
		h.Add("Vary", "Accept-Encoding")
		h.Add("Vary", "Accept-Language")
		h.Set("X-End", "kept")
		w.(http.Flusher).Flush() // chunked: Transfer-Encoding too
		io.WriteString(w, "body")
	})
	resp := get(t, newClient(t, srv.URL, 5*time.Second), "/", nil)

	for _, name := range []string{"Connection", "X-Hop-A", "X-Hop-B", "X-Hop-C", "Keep-Alive", "Proxy-Connection",
		"Proxy-Authenticate", "Te", "Upgrade", "Transfer-Encoding", "Trailer"} {
		if vs := resp.Header.Values(name); len(vs) > 0 {
			t.Errorf("hop-by-hop %s = %q reached the caller", name, vs)
		}
	}
	kept := map[string][]string{
		"Set-Cookie":    {"a=1", "b=2"},
		"Cache-Control": {"max-age=60", "stale-while-revalidate=30"},
		"Vary":          {"Accept-Encoding", "Accept-Language"},
		"X-End":         {"kept"},
	}
	for name, want := range kept {
		if got := resp.Header.Values(name); !slices.Equal(got, want) {
			t.Errorf("end-to-end %s = %q, want %q", name, got, want)
		}
	}
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "body" {
		t.Errorf("body = %q, %v; want body", b, err)
	}
}

func TestRemoveHopByHop(t *testing.T) {
	tests := []struct {
		name     string
		in, want http.Header
	}{
		{"nothing to remove",
			http.Header{"Content-Type": {"text/plain"}, "Set-Cookie": {"a=1", "b=2"}},
			http.Header{"Content-Type": {"text/plain"}, "Set-Cookie": {"a=1", "b=2"}}},
		{"standard fields",
			http.Header{"Connection": {"keep-alive"}, "Keep-Alive": {"timeout=5"}, "Proxy-Connection": {"close"},
				"Proxy-Authenticate": {"Basic"}, "Proxy-Authorization": {"Basic x"}, "Te": {"trailers"},
				"Trailer": {"X-T"}, "Transfer-Encoding": {"chunked"}, "Upgrade": {"websocket"}, "Etag": {`"a"`}},
			http.Header{"Etag": {`"a"`}}},
		{"fields Connection names, in every line, any case",
			http.Header{"Connection": {"x-a , X-B", "x-c,,"}, "X-A": {"1"}, "X-B": {"2"}, "X-C": {"3"}, "X-D": {"4"}},
			http.Header{"X-D": {"4"}}},
		{"Connection naming an end-to-end field",
			http.Header{"Connection": {"Cache-Control"}, "Cache-Control": {"no-store"}, "Vary": {"Accept"}},
			http.Header{"Vary": {"Accept"}}},
		{"empty", http.Header{}, http.Header{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.in.Clone()
			RemoveHopByHop(h)
			if len(h) != len(tt.want) {
				t.Errorf("RemoveHopByHop(%v) = %v, want %v", tt.in, h, tt.want)
			}
			for name, want := range tt.want {
				if got := h[name]; !slices.Equal(got, want) {
					t.Errorf("RemoveHopByHop(%v)[%s] = %q, want %q", tt.in, name, got, want)
				}
			}
		})
	}
}

func TestIsHopByHop(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"Connection", true},
		{"Keep-Alive", true},
		{"Transfer-Encoding", true},
		{"transfer-encoding", true},
		{"Te", true},
		{"Upgrade", true},
		{"Proxy-Authorization", true},
		{"Content-Length", false},
		{"Cache-Control", false},
		{"Set-Cookie", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsHopByHop(tt.name); got != tt.want {
			t.Errorf("IsHopByHop(%q) = %v, want %v", tt.name, got, tt.want)
		}
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

func TestAnOriginThatNeverAnswersTimesOut(t *testing.T) {
	stop := make(chan struct{})
	srv := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	t.Cleanup(func() { close(stop) }) // before srv.Close, which waits for handlers
	tests := []struct {
		name       string
		timeout    time.Duration // the client's
		ctxTimeout time.Duration // the caller's
	}{
		// The caller's 10s is a backstop: a client that never times out fails on elapsed, not by hanging.
		{"client timeout", 200 * time.Millisecond, 10 * time.Second},
		{"caller deadline", 10 * time.Second, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, srv.URL, tt.timeout)
			ctx, cancel := context.WithTimeout(t.Context(), tt.ctxTimeout)
			defer cancel()
			start := time.Now()
			resp, err := c.Do(ctx, &Request{Method: http.MethodGet, URI: "/slow"})
			elapsed := time.Since(start)
			if resp != nil {
				resp.Body.Close()
			}
			var ue *Error
			if !errors.As(err, &ue) {
				t.Fatalf("Do = %v, %v; want an *upstream.Error", resp, err)
			}
			if !ue.Timeout() {
				t.Errorf("Timeout() = false for %v, want true", err)
			}
			if ue.Target != srv.URL+"/slow" {
				t.Errorf("Target = %q, want %q", ue.Target, srv.URL+"/slow")
			}
			if elapsed > 5*time.Second {
				t.Errorf("Do returned after %v, want about 200ms", elapsed)
			}
		})
	}
}

func TestARefusedConnectionIsNotATimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	c := newClient(t, "http://"+addr, 5*time.Second)
	resp, err := c.Do(t.Context(), &Request{Method: http.MethodGet, URI: "/"})
	var ue *Error
	if !errors.As(err, &ue) {
		t.Fatalf("Do = %v, %v; want an *upstream.Error", resp, err)
	}
	if ue.Timeout() {
		t.Errorf("Timeout() = true for %v, want false", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Do error = %v, want it to wrap ECONNREFUSED", err)
	}
	if !strings.HasPrefix(err.Error(), "upstream http://"+addr+"/: ") {
		t.Errorf("Error() = %q, want it to start with the target", err.Error())
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

func TestIdleTimeoutCutsOnlyAStalledBody(t *testing.T) {
	const idle = 200 * time.Millisecond
	stop := make(chan struct{})
	srv := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		switch r.URL.Path {
		case "/stall":
			io.WriteString(w, "first part")
			w.(http.Flusher).Flush()
			select { // then nothing, until the client gives up
			case <-r.Context().Done():
			case <-stop:
			}
		case "/trickle":
			for i := range 12 { // a byte every 50ms for 600ms: never idle for long
				if i > 0 {
					time.Sleep(50 * time.Millisecond)
				}
				w.Write([]byte{byte('a' + i)})
				w.(http.Flusher).Flush()
			}
		}
	})
	t.Cleanup(func() { close(stop) })
	c := newClient(t, srv.URL, 5*time.Second)

	tests := []struct {
		path     string
		wantBody string
		wantErr  bool
	}{
		{"/stall", "first part", true},
		{"/trickle", "abcdefghijkl", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			resp, err := c.Do(ctx, &Request{Method: http.MethodGet, URI: tt.path})
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			body := IdleTimeout(resp.Body, idle, cancel)
			start := time.Now()
			got, err := io.ReadAll(body)
			elapsed := time.Since(start)
			body.Close()
			if (err != nil) != tt.wantErr {
				t.Errorf("reading %s: error %v, want error: %v", tt.path, err, tt.wantErr)
			}
			if string(got) != tt.wantBody {
				t.Errorf("read %q from %s, want %q", got, tt.path, tt.wantBody)
			}
			if elapsed > 5*time.Second {
				t.Errorf("reading %s took %v, want well under 5s", tt.path, elapsed)
			}
			if ctx.Err() == nil {
				t.Error("Close did not cancel the request's context")
			}
		})
	}
}
