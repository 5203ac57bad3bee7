package main

// Compression stored once (SWR_COMPRESS, on by default): what a client gets from the running
// swrproxy (run on a loopback listener) for each Accept-Encoding, the framing of a coded reply on
// the wire, and one origin request for every client whatever it accepts.

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/swrproxy/swrproxy/internal/testenv"
)

// compressibleJSON is about 16 KiB of JSON.
func compressibleJSON() string {
	var b strings.Builder
	b.WriteString(`{"prices":[`)
	for i := 0; b.Len() < 16<<10; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"pair":"ASSET%d-USD","price":%d.%04d,"open":true}`, i, i*7%13, i*7919%10000)
	}
	b.WriteString("]}")
	return b.String()
}

// decodeReply is the body of r decoded per its Content-Encoding.
func decodeReply(t *testing.T, r reply) string {
	t.Helper()
	return string(testenv.Decode(t, r.Header.Get("Content-Encoding"), []byte(r.Body)))
}

// compressionOrigin serves body as cacheable JSON and records the Accept-Encoding of each request.
func compressionOrigin(t *testing.T, body string) (*origin, func() []string) {
	var mu sync.Mutex
	var asked []string
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", `"j1"`)
		w.Header().Set("Vary", "Accept-Encoding") // as most compression middleware says, always
		io.WriteString(w, body)
	})
	return o, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), asked...) }
}

func TestClientsGetTheCodingTheyAcceptDecodingToTheOriginsBytes(t *testing.T) {
	t.Parallel()
	body := compressibleJSON()
	o, asked := compressionOrigin(t, body)
	p := startProxy(t, o.URL, map[string]string{"SWR_INVALIDATE_SECRET": secret}) // SWR_COMPRESS: the default, br,gzip
	for _, tt := range []struct{ accept, coding, tag string }{
		{"gzip, deflate, br, zstd", "br", `"j1:swr-br"`},
		{"gzip", "gzip", `"j1:swr-gzip"`},
		{"x-gzip;q=0.9, br;q=0.1", "gzip", `"j1:swr-gzip"`},
		{"", "", `"j1"`},
	} {
		r := get(t, p.URL+"/p", "Accept-Encoding", tt.accept)
		if r.StatusCode != 200 || r.Header.Get("Content-Encoding") != tt.coding || r.Header.Get("ETag") != tt.tag {
			t.Fatalf("Accept-Encoding %q: %d Content-Encoding %q ETag %s, want %q %s", tt.accept, r.StatusCode,
				r.Header.Get("Content-Encoding"), r.Header.Get("ETag"), tt.coding, tt.tag)
		}
		if got := decodeReply(t, r); got != body {
			t.Errorf("Accept-Encoding %q: decoded body differs from the origin's (%d bytes, want %d)", tt.accept, len(got), len(body))
		}
		if tt.coding != "" && len(r.Body) > len(body)/2 {
			t.Errorf("Accept-Encoding %q: %d bytes on the wire for %d", tt.accept, len(r.Body), len(body))
		}
		if v := r.Header.Values("Vary"); len(v) != 1 || v[0] != "Accept-Encoding" {
			t.Errorf("Accept-Encoding %q: Vary %q, want Accept-Encoding once", tt.accept, v)
		}
	}
	if got := asked(); len(got) != 1 || got[0] != "identity" {
		t.Errorf("the origin was asked %q, want once, for identity", got)
	}
	_, stats := getStats(t, p)
	if stats["compressed_gzip"] != float64(1) || stats["compressed_br"] != float64(1) {
		t.Errorf("stats: compressed_gzip %v, compressed_br %v; want 1 each", stats["compressed_gzip"], stats["compressed_br"])
	}
}

func TestACodedReplyIsFramedByItsOwnLength(t *testing.T) {
	t.Parallel()
	body := compressibleJSON()
	o, _ := compressionOrigin(t, body)
	p := startProxy(t, o.URL, nil)
	get(t, p.URL+"/f") // fill
	// Two requests on one connection, the first a coded GET, the second a coded HEAD: each
	// reply's Content-Length is its coding's length, and the HEAD's has no body.
	raw := "GET /f HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n" +
		"HEAD /f HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\n\r\n" +
		"GET /f HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	out := rawRequest(t, p.URL, raw)
	br := bufio.NewReader(strings.NewReader(out))
	var gzLen int
	for i, want := range []struct {
		method, coding string
	}{{"GET", "gzip"}, {"HEAD", "br"}, {"GET", ""}} {
		res, err := http.ReadResponse(br, &http.Request{Method: want.method})
		if err != nil {
			t.Fatalf("reply %d: %v\n%s", i+1, err, trim(out))
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		n, _ := strconv.Atoi(res.Header.Get("Content-Length"))
		switch {
		case res.Header.Get("Content-Encoding") != want.coding || res.Header.Get("Transfer-Encoding") != "" || len(res.TransferEncoding) != 0:
			t.Errorf("reply %d: Content-Encoding %q, Transfer-Encoding %q; want %q and a Content-Length", i+1,
				res.Header.Get("Content-Encoding"), res.TransferEncoding, want.coding)
		case want.method == "HEAD" && (len(b) != 0 || n == 0 || n >= gzLen):
			t.Errorf("HEAD reply: Content-Length %d, %d body bytes; want br's length (below gzip's %d) and no body", n, len(b), gzLen)
		case want.method == "GET" && n != len(b):
			t.Errorf("reply %d: Content-Length %d, body %d bytes", i+1, n, len(b))
		}
		if i == 0 {
			gzLen = n
			if got := decodeReply(t, reply{Response: res, Body: string(b)}); got != body {
				t.Error("the gzip reply on the wire does not decode to the origin's body")
			}
		}
		if i == 2 && string(b) != body {
			t.Error("the identity reply is not the origin's body")
		}
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("%d bytes after the third reply: %q", len(rest), trim(string(rest)))
	}
}

func TestManyClientsWithDifferentAcceptEncodingsMakeOneOriginRequest(t *testing.T) {
	t.Parallel()
	body := compressibleJSON()
	o, asked := compressionOrigin(t, body)
	p := startProxy(t, o.URL, nil)
	accepts := []string{"", "gzip", "br", "gzip, deflate, br", "br;q=0", "identity", "*", "gzip;q=0, br;q=0", "x-gzip", "deflate"}
	var wg sync.WaitGroup
	replies := make([]reply, 100)
	start := make(chan struct{})
	for i := range replies {
		wg.Go(func() {
			<-start
			replies[i] = do(http.MethodGet, p.URL+"/many", "Accept-Encoding", accepts[i%len(accepts)])
		})
	}
	close(start)
	wg.Wait()
	for i, r := range replies {
		if r.StatusCode != 200 {
			t.Fatalf("client %d (Accept-Encoding %q): %d %q", i, accepts[i%len(accepts)], r.StatusCode, trim(r.Body))
		}
		if got := decodeReply(t, r); got != body {
			t.Fatalf("client %d (Accept-Encoding %q, Content-Encoding %q): not the origin's body", i, accepts[i%len(accepts)], r.Header.Get("Content-Encoding"))
		}
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin requests = %d (Accept-Encoding %q), want exactly 1", n, asked())
	}
}
