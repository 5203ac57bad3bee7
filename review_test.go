package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCollapsedRequestsNeverGetAnotherUsersPrivateResponse(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond)
		c, _ := r.Cookie("session")
		name := "anonymous"
		if c != nil {
			name = c.Value
		}
		w.Header().Set("Cache-Control", "private")
		w.Header().Set("Set-Cookie", "seen="+name)
		fmt.Fprint(w, "account of "+name)
	})
	p := startProxy(t, o.URL, nil)
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for i := range 40 {
		wg.Go(func() {
			user := "user" + strconv.Itoa(i)
			r := do(http.MethodGet, p.URL+"/account", "Cookie", "session="+user)
			if r.Body != "account of "+user || r.Header.Get("Set-Cookie") != "seen="+user {
				wrong.Add(1)
			}
		})
	}
	wg.Wait()
	if n := wrong.Load(); n > 0 {
		t.Fatalf("%d of 40 users got someone else's private page", n)
	}
}

func TestConcurrentRequestsShareOneOriginErrorPage(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	})
	p := startProxy(t, o.URL, nil)
	var wg sync.WaitGroup
	replies := make([]reply, 20)
	for i := range replies {
		wg.Go(func() { replies[i] = do(http.MethodGet, p.URL+"/struggling") })
	}
	wg.Wait()
	for _, r := range replies {
		if r.StatusCode != 503 || r.Body != "overloaded\n" || r.Header.Get("Retry-After") != "5" {
			t.Fatalf("got %d %q, want the origin's 503 page", r.StatusCode, r.Body)
		}
	}
	if n := o.hits.Load(); n > 2 {
		t.Errorf("origin hits = %d for 20 concurrent requests of a failing URL, want 1", n)
	}
}

func TestA429DuringRevalidationKeepsServingTheStaleCopy(t *testing.T) {
	var limited atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if limited.Load() {
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		w.Header().Set("Cache-Control", "max-age=1, stale-if-error=3600")
		fmt.Fprint(w, "good")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_STALE_WHILE_REVALIDATE": "0", "SWR_REFRESH_WINDOW": "0"})
	expect(t, get(t, p.URL+"/rl"), 200, "MISS", "good")
	limited.Store(true)
	time.Sleep(1100 * time.Millisecond)
	for range 3 {
		expect(t, get(t, p.URL+"/rl"), 200, "STALE", "good")
	}
	limited.Store(false)
	expect(t, get(t, p.URL+"/rl"), 200, "MISS", "good")
}

func TestNoCacheResponsesAreStoredAndRevalidatedEveryTime(t *testing.T) {
	var full, notModified atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", `"nc1"`)
		if r.Header.Get("If-None-Match") == `"nc1"` {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		full.Add(1)
		fmt.Fprint(w, "revalidate me")
	})
	p := startProxy(t, o.URL, nil)
	for range 3 {
		if r := get(t, p.URL+"/nc"); r.Body != "revalidate me" {
			t.Fatalf("body %q", r.Body)
		}
	}
	if full.Load() != 1 || notModified.Load() != 2 {
		t.Errorf("origin sent %d bodies and %d 304s, want 1 and 2", full.Load(), notModified.Load())
	}
}

func TestLastModifiedAloneIsEnoughToRevalidate(t *testing.T) {
	var full, notModified atomic.Int64
	const lm = "Mon, 02 Jan 2006 15:04:05 GMT"
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1")
		w.Header().Set("Last-Modified", lm)
		if r.Header.Get("If-None-Match") == "" && r.Header.Get("If-Modified-Since") == lm {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		full.Add(1)
		fmt.Fprint(w, "dated")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_STALE_WHILE_REVALIDATE": "0", "SWR_REFRESH_WINDOW": "0"})
	get(t, p.URL+"/lm")
	time.Sleep(1100 * time.Millisecond)
	if r := get(t, p.URL+"/lm"); r.Body != "dated" {
		t.Fatalf("body %q", r.Body)
	}
	if full.Load() != 1 || notModified.Load() != 1 {
		t.Errorf("origin sent %d bodies and %d 304s, want 1 and 1", full.Load(), notModified.Load())
	}
}

func TestRefreshAheadAsksTheOriginWhatTheClientAsked(t *testing.T) {
	seen := make(chan http.Header, 16)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.Header().Set("Cache-Control", "max-age=1")
		fmt.Fprint(w, "x")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_REFRESH_WINDOW": "1m"})
	hdr := []string{"Accept", "application/json", "User-Agent", "poller/1.0", "X-Forwarded-Proto", "https", "Cookie", "secret=1"}
	get(t, p.URL+"/ahead", hdr...)
	first := <-seen
	get(t, p.URL+"/ahead", hdr...) // demand: a hit after the store
	var refresh http.Header
	select {
	case refresh = <-seen:
	case <-time.After(5 * time.Second):
		t.Fatal("no refresh-ahead within 5s")
	}
	for _, h := range []string{"Accept", "User-Agent", "X-Forwarded-Proto"} {
		if refresh.Get(h) != first.Get(h) {
			t.Errorf("refresh sent %s=%q, the fill %q", h, refresh.Get(h), first.Get(h))
		}
	}
	if refresh.Get("Cookie") != "" {
		t.Errorf("refresh replayed the client's Cookie %q", refresh.Get("Cookie"))
	}
}

func TestBadRequestTargetsAreRejectedNotForwarded(t *testing.T) {
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

func TestAFieldTheClientHidesWithConnectionCannotKeyAVariant(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		lang := r.Header.Get("Accept-Language")
		if lang == "" {
			lang = "en"
		}
		fmt.Fprint(w, "page in "+lang)
	})
	p := startProxy(t, o.URL, nil)
	get(t, p.URL+"/l", "Accept-Language", "fr", "Connection", "Accept-Language") // the attacker
	if r := get(t, p.URL+"/l", "Accept-Language", "fr"); r.Body != "page in fr" {
		t.Fatalf("a French reader got %q", r.Body)
	}
}

func TestForwardedFieldsOutsideTheKeyDoNotReachAFill(t *testing.T) {
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

func TestRefreshesDoNotReplayAClientsCredentials(t *testing.T) {
	seen := make(chan http.Header, 16)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.Header().Set("Cache-Control", "max-age=1")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_REFRESH_WINDOW": "1m"})
	get(t, p.URL+"/k", "X-Api-Key", "secret-key", "Referer", "https://x/?token=t", "Accept", "text/plain")
	<-seen
	get(t, p.URL+"/k", "X-Api-Key", "secret-key", "Referer", "https://x/?token=t", "Accept", "text/plain") // demand: a hit after the store
	select {
	case h := <-seen:
		if h.Get("X-Api-Key") != "" || h.Get("Referer") != "" || h.Get("Accept") != "text/plain" {
			t.Errorf("refresh sent X-Api-Key=%q Referer=%q Accept=%q", h.Get("X-Api-Key"), h.Get("Referer"), h.Get("Accept"))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no refresh within 5s")
	}
}

func TestAnEarlyAnswerToAnUploadEndsTheClientConnection(t *testing.T) {
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

// rawRequest writes raw bytes to the proxy and returns everything it answers until it closes
// the connection or 3 s pass.
func rawRequest(t *testing.T, base, raw string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(conn)
	return string(b)
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\r\n"); return l }
