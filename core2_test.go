package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/tiers"
)

func TestOriginFailureServesStaleIfErrorThenErrors(t *testing.T) {
	var failing atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Cache-Control", "max-age=1, stale-if-error=2")
		fmt.Fprint(w, "good")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_STALE_WHILE_REVALIDATE": "0", "SWR_REFRESH_WINDOW": "0"})
	expect(t, get(t, p.URL+"/e"), 200, "MISS", "good")
	failing.Store(true)
	time.Sleep(1100 * time.Millisecond)
	r := get(t, p.URL+"/e")
	expect(t, r, 200, "STALE", "good")
	if got := r.Header.Get("Cache-Status"); got != "swrproxy; fwd=stale; detail=stale-if-error" {
		t.Errorf("Cache-Status = %q", got)
	}
	// Past the stale-if-error window the origin's own error is relayed, and it is not cached.
	time.Sleep(2 * time.Second)
	r = get(t, p.URL+"/e")
	if r.StatusCode != 500 || r.Header.Get("X-Cache") == "HIT" {
		t.Fatalf("past the window got %d %s, want the origin's 500", r.StatusCode, r.Header.Get("X-Cache"))
	}
	failing.Store(false)
	expect(t, get(t, p.URL+"/e"), 200, "MISS", "good")
}

func TestOriginDownServesStaleAndA502WithoutCopy(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1")
		fmt.Fprint(w, "cached")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_STALE_WHILE_REVALIDATE": "0", "SWR_STALE_IF_ERROR": "1h", "SWR_REFRESH_WINDOW": "0"})
	expect(t, get(t, p.URL+"/d"), 200, "MISS", "cached")
	o.Close() // connection refused from now on
	time.Sleep(1100 * time.Millisecond)
	expect(t, get(t, p.URL+"/d"), 200, "STALE", "cached")
	r := get(t, p.URL+"/never-cached")
	if r.StatusCode != http.StatusBadGateway {
		t.Fatalf("uncached key with origin down: %d, want 502", r.StatusCode)
	}
}

func TestFiveHundredsAreNeverCached(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	p := startProxy(t, o.URL, nil)
	for range 3 {
		if r := get(t, p.URL+"/503"); r.StatusCode != 503 {
			t.Fatalf("status %d, want 503 relayed", r.StatusCode)
		}
	}
	if n := o.hits.Load(); n != 3 {
		t.Errorf("origin hits = %d, want 3 (a 503 is never stored)", n)
	}
}

func TestVaryKeepsLanguagesApart(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprint(w, "lang="+r.Header.Get("Accept-Language"))
	})
	p := startProxy(t, o.URL, nil)
	expect(t, get(t, p.URL+"/v", "Accept-Language", "en"), 200, "MISS", "lang=en")
	expect(t, get(t, p.URL+"/v", "Accept-Language", "de"), 200, "MISS", "lang=de")
	expect(t, get(t, p.URL+"/v", "Accept-Language", "en"), 200, "HIT", "lang=en")
	expect(t, get(t, p.URL+"/v", "Accept-Language", "de"), 200, "HIT", "lang=de")
	expect(t, get(t, p.URL+"/v"), 200, "MISS", "lang=")
}

func TestAcceptEncodingIsNormalisedForVary(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Encoding")
		fmt.Fprint(w, "ae="+r.Header.Get("Accept-Encoding"))
	})
	p := startProxy(t, o.URL, nil)
	expect(t, get(t, p.URL+"/ae", "Accept-Encoding", "gzip, deflate"), 200, "MISS", "ae=gzip")
	expect(t, get(t, p.URL+"/ae", "Accept-Encoding", "deflate, gzip;q=0.8"), 200, "HIT", "ae=gzip")
	expect(t, get(t, p.URL+"/ae", "Accept-Encoding", "gzip, br"), 200, "MISS", "ae=br")
}

func TestVaryStarIsNotStored(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "*")
		fmt.Fprint(w, "x")
	})
	p := startProxy(t, o.URL, nil)
	get(t, p.URL+"/star")
	expect(t, get(t, p.URL+"/star"), 200, "BYPASS", "x")
	if n := o.hits.Load(); n != 2 {
		t.Errorf("origin hits = %d, want 2", n)
	}
}

func TestUncacheableResponsesPassThrough(t *testing.T) {
	tests := []struct {
		name, path string
		header     []string
		reqHeader  []string
	}{
		{"no-store", "/ns", []string{"Cache-Control", "no-store"}, nil},
		{"private", "/pv", []string{"Cache-Control", "private, max-age=60"}, nil},
		{"set-cookie", "/sc", []string{"Cache-Control", "max-age=60", "Set-Cookie", "id=1"}, nil},
		{"authorization", "/au", []string{"Cache-Control", "max-age=60"}, []string{"Authorization", "Bearer x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				for i := 0; i < len(tt.header); i += 2 {
					w.Header().Set(tt.header[i], tt.header[i+1])
				}
				fmt.Fprint(w, "per-user")
			})
			p := startProxy(t, o.URL, nil)
			for range 3 {
				r := get(t, p.URL+tt.path, tt.reqHeader...)
				expect(t, r, 200, "BYPASS", "per-user")
			}
			if n := o.hits.Load(); n != 3 {
				t.Errorf("origin hits = %d, want 3", n)
			}
		})
	}
}

func TestAuthorizedRequestMayFillAPublicEntry(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		fmt.Fprint(w, "public")
	})
	p := startProxy(t, o.URL, nil)
	expect(t, get(t, p.URL+"/pub", "Authorization", "Bearer a"), 200, "MISS", "public")
	expect(t, get(t, p.URL+"/pub"), 200, "HIT", "public")
}

func TestTruncatedOriginBodyIsNeverStored(t *testing.T) {
	var calls atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(200)
			w.Write([]byte(strings.Repeat("x", 50)))
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close() // cut the body short
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "whole")
	})
	p := startProxy(t, o.URL, nil)
	if r := get(t, p.URL+"/cut"); r.StatusCode != http.StatusBadGateway {
		t.Fatalf("truncated body: got %d %q, want 502", r.StatusCode, trim(r.Body))
	}
	expect(t, get(t, p.URL+"/cut"), 200, "MISS", "whole")
	expect(t, get(t, p.URL+"/cut"), 200, "HIT", "whole")
}

func TestCorruptL2ValueIsAMissAndIsReplaced(t *testing.T) {
	rs := redistest.Start(t)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "fresh from origin")
	})
	rdb := rs.Client()
	ctx := context.Background()
	if err := rdb.HSet(ctx, tiers.RedisKey("/corrupt"), "v:", "\x01garbage that is not an entry").Err(); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, o.URL, map[string]string{"SWR_REDIS_URL": rs.URL()})
	expect(t, get(t, p.URL+"/corrupt"), 200, "MISS", "fresh from origin")
	v, err := rdb.HGet(ctx, tiers.RedisKey("/corrupt"), "v:").Result()
	if err != nil || strings.Contains(v, "garbage") {
		t.Fatalf("L2 value after the fill: %q, %v; want a valid entry", trim(v), err)
	}
	q := startProxy(t, o.URL, map[string]string{"SWR_REDIS_URL": rs.URL()})
	expect(t, get(t, q.URL+"/corrupt"), 200, "HIT", "fresh from origin")
}

func TestRedisOutageNeverBecomesClientTrouble(t *testing.T) {
	rs := redistest.Start(t)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "body of "+r.URL.Path)
	})
	env := map[string]string{"SWR_REDIS_URL": rs.URL()}
	a := startProxy(t, o.URL, env)
	b := startProxy(t, o.URL, env)
	expect(t, get(t, a.URL+"/warm"), 200, "MISS", "body of /warm")

	rs.Stop()
	for i := range 20 {
		expect(t, get(t, a.URL+"/warm"), 200, "HIT", "body of /warm")
		r := get(t, a.URL+"/cold"+strconv.Itoa(i))
		if r.StatusCode != 200 || r.Body != "body of /cold"+strconv.Itoa(i) {
			t.Fatalf("miss during the outage: %d %q", r.StatusCode, trim(r.Body))
		}
	}

	rs.Restart()
	// Within seconds the L2 is used again: what B stores, A finds there.
	waitFor(t, 10*time.Second, "L2 to be used again", func() bool {
		path := "/after-" + strconv.FormatInt(time.Now().UnixNano(), 10)
		if get(t, b.URL+path).Header.Get("X-Cache") != "MISS" {
			return false
		}
		return get(t, a.URL+path).Header.Get("Cache-Status") == "swrproxy; hit; detail=l2"
	})
}

func TestConditionalRequestsGet304(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"abc"`)
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Vary", "Accept-Encoding")
		fmt.Fprint(w, "representation")
	})
	p := startProxy(t, o.URL, nil)
	get(t, p.URL+"/c")
	tests := []struct {
		name   string
		hdr    []string
		status int
	}{
		{"strong match", []string{"If-None-Match", `"abc"`}, 304},
		{"weak match as nginx gzip sends it", []string{"If-None-Match", `W/"abc"`}, 304},
		{"list", []string{"If-None-Match", `"x", W/"abc"`}, 304},
		{"star", []string{"If-None-Match", `*`}, 304},
		{"no match", []string{"If-None-Match", `"other"`}, 200},
		{"if-modified-since same date", []string{"If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}, 304},
		{"if-modified-since earlier", []string{"If-Modified-Since", "Sun, 01 Jan 2006 15:04:05 GMT"}, 200},
		{"if-none-match wins over if-modified-since", []string{"If-None-Match", `"other"`, "If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, p.URL+"/c", tt.hdr...)
			if r.StatusCode != tt.status || r.Header.Get("X-Cache") != "HIT" {
				t.Fatalf("got %d %s, want %d HIT", r.StatusCode, r.Header.Get("X-Cache"), tt.status)
			}
			if tt.status == 304 {
				if r.Body != "" {
					t.Errorf("304 with a body %q", r.Body)
				}
				for _, h := range []string{"ETag", "Cache-Control", "Vary", "Date", "Age"} {
					if r.Header.Get(h) == "" {
						t.Errorf("304 without %s", h)
					}
				}
				if r.Header.Get("Content-Type") != "" {
					t.Errorf("304 carries Content-Type %q", r.Header.Get("Content-Type"))
				}
			} else if r.Body != "representation" {
				t.Errorf("200 body %q", r.Body)
			}
		})
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin hits = %d: conditional requests must be answered from cache", n)
	}
}

func TestHeadIsAnsweredFromTheGetEntry(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "twelve bytes")
	})
	p := startProxy(t, o.URL, nil)
	get(t, p.URL+"/h")
	r := do(http.MethodHead, p.URL+"/h")
	expect(t, r, 200, "HIT", "")
	if r.Body != "" || r.ContentLength != 12 {
		t.Errorf("HEAD body %q, Content-Length %d; want none and 12", r.Body, r.ContentLength)
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin hits = %d, want 1", n)
	}
}

func TestSuccessfulUnsafeRequestInvalidatesTheGet(t *testing.T) {
	var version atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			version.Add(1)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "v%d", version.Load())
	})
	p := startProxy(t, o.URL, nil)
	expect(t, get(t, p.URL+"/item"), 200, "MISS", "v0")
	expect(t, get(t, p.URL+"/item"), 200, "HIT", "v0")
	if r := do(http.MethodPost, p.URL+"/item"); r.StatusCode != 204 || r.Header.Get("X-Cache") != "BYPASS" {
		t.Fatalf("POST: %d %s", r.StatusCode, r.Header.Get("X-Cache"))
	}
	expect(t, get(t, p.URL+"/item"), 200, "MISS", "v1")
}

func TestLargeBodiesAreStreamedNotStored(t *testing.T) {
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

func TestForwardedAndHopByHopHeaders(t *testing.T) {
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

func TestHealthzAnswers(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {})
	p := startProxy(t, o.URL, nil)
	if r := get(t, p.URL+"/_swr/healthz"); r.StatusCode != 200 {
		t.Fatalf("healthz: %d", r.StatusCode)
	}
	r := get(t, p.URL+"/_swr/readyz")
	if r.StatusCode != 200 || !strings.Contains(r.Body, `"origin":"ok"`) || !strings.Contains(r.Body, `"redis":"disabled"`) {
		t.Fatalf("readyz: %d %s", r.StatusCode, r.Body)
	}
}

func TestInFlightRequestCompletesOnShutdown(t *testing.T) {
	entered := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		time.Sleep(500 * time.Millisecond)
		fmt.Fprint(w, "finished")
	})
	p := startProxy(t, o.URL, nil)
	got := make(chan reply, 1)
	go func() { got <- do(http.MethodGet, p.URL+"/slow") }()
	<-entered
	p.cancel() // what SIGTERM does through signal.NotifyContext
	r := <-got
	if r.StatusCode != 200 || r.Body != "finished" {
		t.Fatalf("in-flight request: %d %q", r.StatusCode, trim(r.Body))
	}
	if err := <-p.done; err != nil {
		t.Fatalf("run returned %v, want nil", err)
	}
	p.done <- nil // for the cleanup's stop
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(p.URL, "http://"), time.Second); err == nil {
		t.Error("listener still accepting after shutdown")
	}
}

func TestAPrivateAnswerToOneClientDoesNotMakeTheURLUncacheable(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			w.Header().Set("Cache-Control", "private")
			fmt.Fprint(w, "yours")
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "everyone's")
	})
	p := startProxy(t, o.URL, nil)
	expect(t, get(t, p.URL+"/mixed", "Authorization", "Bearer u1"), 200, "BYPASS", "yours")
	expect(t, get(t, p.URL+"/mixed"), 200, "MISS", "everyone's")
	expect(t, get(t, p.URL+"/mixed"), 200, "HIT", "everyone's")
	expect(t, get(t, p.URL+"/mixed", "Authorization", "Bearer u2"), 200, "BYPASS", "yours")
}

func TestUnkeyedRequestFieldsCannotPoisonTheCache(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		host := r.Header.Get("X-Forwarded-Host")
		if host == "" {
			host = "www.example.com"
		}
		fmt.Fprintf(w, `<script src="https://%s/app.js"></script> %s %s`, host, r.Header.Get("X-Original-Url"), r.Header.Get("X-Forwarded-Proto"))
	})
	p := startProxy(t, o.URL, nil)
	r := get(t, p.URL+"/page", "X-Forwarded-Host", "evil.example", "X-Original-URL", "/admin", "X-Forwarded-Proto", "gopher")
	expect(t, r, 200, "MISS", `<script src="https://www.example.com/app.js"></script>  http`)
	expect(t, get(t, p.URL+"/page"), 200, "HIT", `<script src="https://www.example.com/app.js"></script>  http`)

	// With the host in the key, the origin may see it: each host has its own entry.
	q := startProxy(t, o.URL, map[string]string{"SWR_KEY_HOST": "true"})
	r = get(t, q.URL+"/page", "X-Forwarded-Host", "evil.example")
	if !strings.Contains(r.Body, "https://127.0.0.1:") {
		t.Errorf("with SWR_KEY_HOST the origin should see the keyed Host, got %q", r.Body)
	}
}

func TestAnOriginThatAnswersBeforeReadingTheUploadDoesNotCrashTheProxy(t *testing.T) {
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
