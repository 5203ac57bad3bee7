package main

// Bodies that are streamed rather than stored, end to end: large answers and uploads, including an origin
// that answers an upload before reading it.

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestLargeBodiesAreStreamedNotStored(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Query().Get("cl") == "no" {
			w.(http.Flusher).Flush() // chunked: the size is only known while reading
		}
		w.Write(big)
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_MAX_OBJECT_BYTES": "256KiB"})
	for _, path := range []string{"/big", "/big?cl=no"} {
		for range 2 {
			r := get(t, p.URL+path)
			if r.StatusCode != 200 || r.Header.Get("X-Cache") != "BYPASS" || sha256.Sum256([]byte(r.Body)) != sha256.Sum256(big) {
				t.Fatalf("%s: %d %s, %d bytes", path, r.StatusCode, r.Header.Get("X-Cache"), len(r.Body))
			}
		}
	}
}

func TestUploadsAreStreamedToTheOrigin(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	})
	p := startProxy(t, o.URL, nil)
	body := bytes.Repeat([]byte("upload"), 3<<20) // 18 MiB
	res, err := client.Post(p.URL+"/upload", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	got, _ := io.ReadAll(res.Body)
	if want := fmt.Sprintf("%d %x", len(body), sha256.Sum256(body)); string(got) != want {
		t.Fatalf("origin saw %q, want %q", got, want)
	}
}

func TestAnOriginThatAnswersBeforeReadingTheUploadDoesNotCrashTheProxy(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusUnauthorized) // without reading the upload
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "alive")
	})
	p := startProxy(t, o.URL, nil)
	body := bytes.Repeat([]byte("x"), 8<<20)
	for range 5 {
		res, err := client.Post(p.URL+"/upload", "application/octet-stream", bytes.NewReader(body))
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusUnauthorized {
				t.Errorf("status %d, want the origin's 401", res.StatusCode)
			}
		}
	}
	expect(t, get(t, p.URL+"/after"), 200, "MISS", "alive")
}

func TestAnEarlyAnswerToAnUploadEndsTheClientConnection(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden) // without reading the upload
	})
	p := startProxy(t, o.URL, nil)
	// A declared 1 MB body of which only a request-looking prefix is sent: what is left must not
	// be parsed as a second request on the same connection.
	r := rawRequest(t, p.URL, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"+strings.Repeat("z", 300000))
	if !strings.HasPrefix(r, "HTTP/1.1 403") || strings.Count(r, "HTTP/1.1 ") != 1 {
		t.Fatalf("got %q, want one 403 and the connection closed", r)
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin hits = %d, want 1 (no smuggled request)", n)
	}
}
