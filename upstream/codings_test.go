package upstream

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/rawhttp"
)

// rawOrigin answers every request on its own connection with resp (bytes as written), and
// counts the requests.
func rawOrigin(t *testing.T, resp func() []byte) (url string, hits *atomic.Int64) {
	t.Helper()
	o := rawhttp.NewOrigin(t, func(int64) []byte { return resp() })
	return "http://" + o.Addr, &o.Hits
}

func chunk(b []byte) string { return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(b), b) }

func gzipped(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	io.WriteString(w, s)
	w.Close()
	return b.Bytes()
}

func deflated(s string) []byte {
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	io.WriteString(w, s)
	w.Close()
	return b.Bytes()
}

// TestTransferCodingsGoDoesNotDecodeAreDecoded: RFC 9112 §6.1 lets an origin apply gzip or
// deflate as transfer codings, with chunked last; Go's client refuses them, which made every
// such response a 502. A GET or HEAD is asked again and read by doCodings, which removes the
// codings (RFC 9112 §6.3 framing: chunked last, else to the close).
func TestTransferCodingsGoDoesNotDecodeAreDecoded(t *testing.T) {
	tests := []struct {
		name string
		resp string
	}{
		{"gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nCache-Control: max-age=60\r\n\r\n" + chunk(gzipped("hello"))},
		{"deflate, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: deflate, chunked\r\n\r\n" + chunk(deflated("hello"))},
		{"gzip and chunked on two lines", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(gzipped("hello"))},
		{"identity, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk([]byte("hello"))},
		{"gzip to the close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\n" + string(gzipped("hello"))},
		{"an interim response first", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + chunk(gzipped("hello"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, hits := rawOrigin(t, func() []byte { return []byte(tt.resp) })
			c := newClient(t, u, 5*time.Second)
			resp, err := c.Do(context.Background(), &Request{Method: http.MethodGet, URI: "/x", Header: http.Header{}})
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(b) != "hello" || resp.StatusCode != 200 {
				t.Fatalf("got %d %q (%v), want 200 \"hello\"", resp.StatusCode, b, err)
			}
			if resp.Header.Get("Transfer-Encoding") != "" || resp.Header.Get("Content-Length") != "" || resp.ContentLength != -1 {
				t.Errorf("header %v, length %d: want no Transfer-Encoding or Content-Length, length unknown", resp.Header, resp.ContentLength)
			}
			if resp.Header.Get("Link") != "" {
				t.Errorf("the interim response's Link reached the final response")
			}
			if n := hits.Load(); n != 2 {
				t.Errorf("origin requests = %d, want 2 (Go's client, then doCodings)", n)
			}
		})
	}
}

func TestTransferCodingsThatCannotBeDecodedStayErrors(t *testing.T) {
	tests := []struct {
		name, method, resp string
	}{
		{"an unknown coding", http.MethodGet, "HTTP/1.1 200 OK\r\nTransfer-Encoding: compress, chunked\r\n\r\n" + chunk([]byte("x"))},
		{"chunked twice", http.MethodGet, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n" + chunk([]byte("x"))},
		{"a broken gzip body", http.MethodGet, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + chunk([]byte("not gzip"))},
		{"a header block over the bound", http.MethodGet, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nX-Big: " +
			strings.Repeat("x", MaxResponseHeaderBytes) + "\r\n\r\n" + chunk(gzipped("x"))},
		{"too many interim responses", http.MethodGet, strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 9) + "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + chunk(gzipped("x"))},
		{"a POST is not asked twice", http.MethodPost, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + chunk(gzipped("x"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, hits := rawOrigin(t, func() []byte { return []byte(tt.resp) })
			c := newClient(t, u, 5*time.Second)
			r := &Request{Method: tt.method, URI: "/x", Header: http.Header{}}
			if tt.method == http.MethodPost {
				r.Body, r.ContentLength = strings.NewReader("data"), 4
			}
			resp, err := c.Do(context.Background(), r)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				t.Fatalf("got %d, want an error", resp.StatusCode)
			}
			if tt.method == http.MethodPost && hits.Load() != 1 {
				t.Errorf("origin requests = %d, want 1: a request with a body is never sent twice", hits.Load())
			}
		})
	}
}

// TestARetryAnsweredWithoutTransferCodingsIsRefused: the origin's second answer frames its body
// by Content-Length; read to the close, bytes past the length would become the body (security
// review: "helloSMUGGLED" was stored for everyone).
// A 101 on the retry (which asked for no upgrade) is refused too: skipped as an interim
// response, the bytes after it would be read as the answer.
func TestARetryAnsweredWithoutTransferCodingsIsRefused(t *testing.T) {
	for _, second := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloSMUGGLED",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nSet-Cookie: injected=1\r\n\r\n" + chunk(gzipped("tunnel")),
	} {
		var n atomic.Int64
		u, _ := rawOrigin(t, func() []byte {
			if n.Add(1) == 1 {
				return []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n" + string(gzipped("hello")))
			}
			return []byte(second)
		})
		c := newClient(t, u, 5*time.Second)
		resp, err := c.Do(context.Background(), &Request{Method: http.MethodGet, URI: "/x", Header: http.Header{}})
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Errorf("retry answered %q: got %d %q, want an error", second[:30], resp.StatusCode, b)
		}
	}
}

func TestAHEADWithTransferCodingsHasNoBody(t *testing.T) {
	u, _ := rawOrigin(t, func() []byte {
		return []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nCache-Control: max-age=60\r\n\r\n")
	})
	c := newClient(t, u, 5*time.Second)
	resp, err := c.Do(context.Background(), &Request{Method: http.MethodHead, URI: "/x", Header: http.Header{}})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(b) != 0 || resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "max-age=60" {
		t.Errorf("HEAD: %d %q %v %v, want 200 with the fields and no body", resp.StatusCode, b, err, resp.Header)
	}
}

// FuzzReadCodedResponse feeds arbitrary origin bytes to the reader of transfer-coded responses:
// it must never panic, and a body it returns must end (bounded here) without hanging.
func FuzzReadCodedResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + chunk(gzipped("hello"))))
	f.Add([]byte("HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: deflate\r\n\r\n" + string(deflated("x"))))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 204 No Content\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, _ := http.NewRequest(http.MethodGet, "http://origin.example/", nil)
		resp, err := readCodedResponse(bytes.NewReader(b), req, 0, io.NopCloser(nil))
		if err != nil {
			return
		}
		if resp.StatusCode < 200 || resp.StatusCode > 999 {
			t.Fatalf("status %d accepted", resp.StatusCode)
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	})
}
